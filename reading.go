// Package edgegw holds the values that flow through the gateway: a Reading,
// decoded from an MQTT message; a Rollup, the aggregate of one series over
// one window, bound for InfluxDB; and a Packet, the identity of the message
// a batch held, committed with it. It imports only the standard library so
// that every stage can share it.
//
// A series is named by its key: the measurement and its tags sorted by key,
// written as in InfluxDB line protocol ("sensors,device=d1,site=s1"). The key
// is built once per topic by the decoders and is compared as a plain string
// everywhere else.
package edgegw

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Reading is one sensor value at one instant.
type Reading struct {
	// Series is the series key built by SeriesKey.
	Series string
	// Field names the measured quantity, e.g. "temperature".
	Field string
	// Value is the measured value; never NaN or ±Inf.
	Value float64
	// Time is the event time in nanoseconds since the Unix epoch.
	Time int64
}

// Tag is one tag of a series.
type Tag struct {
	Key, Value string
}

// Rollup is the aggregate of one series over one window: one point upstream.
type Rollup struct {
	// Series is the series key of the readings aggregated.
	Series string
	// Start is the window start in nanoseconds since the Unix epoch; it is
	// the point's timestamp.
	Start int64
	// Fields are the point's fields sorted by name, e.g. temperature_mean.
	Fields []Field
}

// Field is one field of a Rollup.
type Field struct {
	// Name is <field>_<aggregate>, e.g. "temperature_count".
	Name string
	// Value is the aggregate's value.
	Value float64
	// Integer marks a field written as an integer (the counts); Value then
	// holds a whole number.
	Integer bool
}

// ErrSeriesKey is returned by SplitSeriesKey for a key SeriesKey could not
// have produced.
var ErrSeriesKey = errors.New("malformed series key")

// SeriesKey returns the series key of measurement and tags: the measurement,
// then ",key=value" for each tag sorted by key, escaped as in line protocol.
// Tags with an empty key or value are left out, as InfluxDB does. SeriesKey
// sorts tags in place.
func SeriesKey(measurement string, tags []Tag) string {
	return string(AppendSeriesKey(nil, measurement, tags))
}

// AppendSeriesKey appends the series key of measurement and tags to dst, as
// SeriesKey does, and returns the extended slice.
func AppendSeriesKey(dst []byte, measurement string, tags []Tag) []byte {
	if !sort.SliceIsSorted(tags, func(i, j int) bool { return tags[i].Key < tags[j].Key }) {
		sort.Slice(tags, func(i, j int) bool { return tags[i].Key < tags[j].Key })
	}
	dst = appendEscaped(dst, measurement, ", ")
	for _, t := range tags {
		if t.Key == "" || t.Value == "" {
			continue
		}
		dst = append(dst, ',')
		dst = appendEscaped(dst, t.Key, ",= ")
		dst = append(dst, '=')
		dst = appendEscaped(dst, t.Value, ",= ")
	}
	return dst
}

func appendEscaped(dst []byte, s, special string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if strings.IndexByte(special, c) >= 0 || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return dst
}

// SplitSeriesKey returns the measurement and tags named by a series key built
// by SeriesKey.
func SplitSeriesKey(key string) (measurement string, tags []Tag, err error) {
	var cur strings.Builder
	var tagKey string
	inKey := false // reading a tag key (before its '=')
	end := func() error {
		switch {
		case measurement == "" && !inKey && tags == nil && tagKey == "":
			measurement = cur.String()
			if measurement == "" {
				return fmt.Errorf("%w %q: empty measurement", ErrSeriesKey, key)
			}
		case inKey || tagKey == "" || cur.Len() == 0:
			return fmt.Errorf("%w %q: a tag is not key=value", ErrSeriesKey, key)
		default:
			tags = append(tags, Tag{Key: tagKey, Value: cur.String()})
		}
		cur.Reset()
		tagKey = ""
		return nil
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '\\':
			if i+1 == len(key) {
				return "", nil, fmt.Errorf("%w %q: trailing backslash", ErrSeriesKey, key)
			}
			i++
			cur.WriteByte(key[i])
		case c == ',':
			if err := end(); err != nil {
				return "", nil, err
			}
			inKey = true
		case c == '=' && inKey:
			tagKey = cur.String()
			cur.Reset()
			inKey = false
			if tagKey == "" {
				return "", nil, fmt.Errorf("%w %q: empty tag key", ErrSeriesKey, key)
			}
		default:
			cur.WriteByte(c)
		}
	}
	if err := end(); err != nil {
		return "", nil, err
	}
	return measurement, tags, nil
}
