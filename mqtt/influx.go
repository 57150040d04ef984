package mqtt

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/edgegw/edgegw"
)

// influxAccepted says what format influx reads, for skip details and
// rejections.
const influxAccepted = `format influx expects InfluxDB line protocol, one point a line, like "home,room=kitchen temp=21.5,co=3i 1700000000000000000"`

// influxPrecisions are the units of line-protocol timestamps, in ns.
var influxPrecisions = map[string]int64{"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}

// influxDecoder decodes format influx: InfluxDB line protocol, read with
// lineprotocol.Decoder. Each float, integer or unsigned field of a line is a
// reading; the series is the line's measurement with the topic's tags and
// the line's (the line's win). The {measurement} and {field} levels of the
// topic and Subscription.Measurement are not used.
type influxDecoder struct {
	unitNs      int64
	booleans    bool
	arrivalTime bool

	names  interner          // field names
	series map[string]string // lookup key (see point) -> series key
	key    []byte            // scratch: the lookup key of the current line
	tagAt  []int             // scratch: offsets in key of each line tag: key start, key end, value start, value end
	tags   []edgegw.Tag      // scratch: the tags of a series being built
}

// newInfluxDecoder returns the decoder of format influx.
func newInfluxDecoder(sub Subscription, arrivalTime bool) (decoder, error) {
	p := sub.Influx.Precision
	if p == "" {
		p = "ns"
	}
	unit, ok := influxPrecisions[p]
	if !ok {
		return nil, fmt.Errorf("influx.precision %q is unknown; accepted: ns, us, ms, s", sub.Influx.Precision)
	}
	return &influxDecoder{
		unitNs:      unit,
		booleans:    sub.Booleans,
		arrivalTime: arrivalTime,
		names:       interner{max: maxInterned},
		series:      make(map[string]string),
	}, nil
}

// influxState is the decoding of one payload.
type influxState struct {
	d       *influxDecoder
	t       *topicInfo
	payload []byte
	arrival int64
	tl      tally
}

func (d *influxDecoder) decode(dst []edgegw.Reading, t *topicInfo, payload []byte, arrival int64, sk *skips) ([]edgegw.Reading, error) {
	start := len(dst)
	st := influxState{d: d, t: t, payload: payload, arrival: arrival}
	if bytes.IndexByte(payload, '"') < 0 {
		// Without quotes no value spans a newline, and the decoder
		// resumes at the next line after an error.
		dst = st.chunk(dst, payload, 1)
	} else {
		dst = st.lines(dst)
	}
	return dst, st.tl.finish(len(dst) > start, sk, t.name, payload, "no point: the payload is empty or holds only comments; "+influxAccepted)
}

// lines decodes a payload that holds quotes. The decoder reads a string
// field value across newlines, so a line whose string does not close (which
// InfluxDB does not accept either) would take the lines after it with it;
// such a line is decoded alone. The others are decoded together.
func (st *influxState) lines(dst []edgegw.Reading) []edgegw.Reading {
	b := st.payload
	run, runLine := 0, 1 // start and line number of the lines not decoded yet
	line := 1
	for p := 0; p < len(b); line++ {
		end := bytes.IndexByte(b[p:], '\n')
		if end < 0 {
			end = len(b)
		} else {
			end += p
		}
		if !stringsClose(b[p:end]) {
			if p > run {
				dst = st.chunk(dst, b[run:p], runLine)
			}
			dst = st.chunk(dst, b[p:end], line)
			run, runLine = end+1, line+1
		}
		p = end + 1
	}
	if run < len(b) {
		dst = st.chunk(dst, b[run:], runLine)
	}
	return dst
}

// stringsClose reports whether every string field value that
// lineprotocol.Decoder would start in line also ends in it. It follows the
// decoder's grammar; where a line is not well formed before its first string,
// the decoder stops at the error and starts no string, and stringsClose
// answers true only when it is sure of that.
func stringsClose(line []byte) bool {
	if bytes.IndexByte(line, '"') < 0 {
		return true
	}
	i := 0
	for i < len(line) && line[i] == ' ' {
		i++
	}
	if i < len(line) && line[i] == '#' {
		return true // a comment
	}
	// The measurement and tags end at the first space not escaped.
	for ; i < len(line); i++ {
		if c := line[i]; c == '\\' && i+1 < len(line) && isKeyEscape(line[i+1]) {
			i++
		} else if c == ' ' {
			break
		}
	}
	for {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		// A field key ends at '='; any other end is a syntax error.
		for ; i < len(line); i++ {
			c := line[i]
			if c == '\\' && i+1 < len(line) && isKeyEscape(line[i+1]) {
				i++
				continue
			}
			if c == '=' {
				break
			}
			if c == ',' || c == ' ' || c == '\r' || c < 0x20 || c == 0x7f {
				return true
			}
		}
		if i >= len(line) {
			return true
		}
		i++ // '='
		if i < len(line) && line[i] == '"' {
			for i++; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte(`\"nrt`, line[i+1]) >= 0 {
					i++
				}
			}
			if i >= len(line) {
				return false
			}
			i++ // closing quote
		} else {
			for i < len(line) && line[i] != ',' && line[i] != ' ' && line[i] != '\r' {
				i++
			}
		}
		if i < len(line) && line[i] == ',' {
			i++
			continue
		}
		// A space starts the timestamp, which holds no string; anything
		// else is the end of the line or a syntax error.
		return true
	}
}

// isKeyEscape reports whether a backslash before c escapes it in a
// measurement, tag key, tag value or field key.
func isKeyEscape(c byte) bool { return c == ' ' || c == ',' || c == '=' }

// chunk decodes the lines in b, the first of which is line number line of the
// payload. A line that does not parse is skipped with what it had read.
func (st *influxState) chunk(dst []edgegw.Reading, b []byte, line int) []edgegw.Reading {
	dec := lineprotocol.NewDecoderWithBytes(b)
	for dec.Next() {
		mark, saved := len(dst), st.tl
		var err error
		if dst, err = st.point(dec, dst); err != nil {
			dst, st.tl = dst[:mark], saved
			st.skipLine(err, line)
		}
	}
	return dst
}

// pointSkip is why a whole line was skipped, when the decoder read it.
type pointSkip struct {
	code int
	what string
}

func (e *pointSkip) Error() string { return e.what }

// skipLine counts a line skipped for err.
func (st *influxState) skipLine(err error, line int) {
	var ps *pointSkip
	if errors.As(err, &ps) {
		if st.tl.add(ps.code) {
			st.tl.what[ps.code] = ps.what
		}
		return
	}
	if !st.tl.add(tallyBadLine) {
		return
	}
	var de *lineprotocol.DecodeError
	if errors.As(err, &de) {
		st.tl.what[tallyBadLine] = fmt.Sprintf("line %d column %d: %v; %s", line+int(de.Line)-1, de.Column, de.Err, influxAccepted)
	} else {
		st.tl.what[tallyBadLine] = fmt.Sprintf("%v; %s", err, influxAccepted)
	}
}

// point appends the readings of the line dec is at. On error it returns the
// extended slice (the caller drops what the line added).
func (st *influxState) point(dec *lineprotocol.Decoder, dst []edgegw.Reading) ([]edgegw.Reading, error) {
	d, t := st.d, st.t
	m, err := dec.Measurement()
	if err != nil {
		return dst, err
	}
	// The lookup key of the series: the topic's series key, then the
	// measurement and each tag key and value as the line has them,
	// separated by NUL, which neither may hold.
	d.key = append(append(append(d.key[:0], t.series...), 0), m...)
	mEnd := len(d.key)
	d.tagAt = d.tagAt[:0]
	for {
		k, v, err := dec.NextTag()
		if err != nil {
			return dst, err
		}
		if k == nil {
			break
		}
		d.key = append(d.key, 0)
		ks := len(d.key)
		d.key = append(append(append(d.key, k...), 0), v...)
		d.tagAt = append(d.tagAt, ks, ks+len(k), ks+len(k)+1, len(d.key))
	}
	measurement := d.key[len(t.series)+1 : mEnd]
	series, err := st.seriesKey(measurement)
	if err != nil {
		// A line that does not parse is a bad line, whatever its names.
		for {
			k, _, ferr := dec.NextField()
			if ferr != nil {
				return dst, ferr
			}
			if k == nil {
				break
			}
		}
		if _, terr := dec.TimeBytes(); terr != nil {
			return dst, terr
		}
		return dst, err
	}
	mark := len(dst)
	for {
		k, v, err := dec.NextField()
		if err != nil {
			return dst, err
		}
		if k == nil {
			break
		}
		if p := nameProblem(k); p != "" {
			if st.tl.add(tallyBadName) {
				st.tl.what[tallyBadName] = fmt.Sprintf("measurement %q: field key %q: %s; a field key is non-empty UTF-8 text without control characters", measurement, k, p)
			}
			continue
		}
		var x float64
		switch v.Kind() {
		case lineprotocol.Float:
			x = v.FloatV()
		case lineprotocol.Int:
			x = float64(v.IntV())
		case lineprotocol.Uint:
			x = float64(v.UintV())
		case lineprotocol.Bool:
			if !d.booleans {
				if st.tl.add(tallyBooleanField) {
					st.tl.what[tallyBooleanField] = fmt.Sprintf("measurement %q: field %q is a boolean; format influx reads float, integer and unsigned fields, and boolean ones as 1 and 0 with booleans: true", measurement, k)
				}
				continue
			}
			if v.BoolV() {
				x = 1
			}
		default:
			if st.tl.add(tallyStringField) {
				st.tl.what[tallyStringField] = fmt.Sprintf("measurement %q: field %q is a string; format influx reads float (1.5), integer (2i), unsigned (3u) and, with booleans: true, boolean fields", measurement, k)
			}
			continue
		}
		dst = append(dst, edgegw.Reading{Series: series, Field: d.names.get(k), Value: x})
	}
	tb, err := dec.TimeBytes()
	if err != nil {
		return dst, err
	}
	when := st.arrival
	if tb != nil {
		ts, err := strconv.ParseInt(string(tb), 10, 64)
		ns, ok := ts*d.unitNs, err == nil && ts <= math.MaxInt64/d.unitNs && ts >= math.MinInt64/d.unitNs
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return dst, &pointSkip{tallyBadLine, fmt.Sprintf("measurement %q: timestamp %q is not an integer; %s", measurement, tb, influxAccepted)}
		}
		if !d.arrivalTime {
			if !ok {
				return dst, &pointSkip{tallyBadLine, fmt.Sprintf("measurement %q: timestamp %s in %s is out of range: nanoseconds since 1970 must fit in 64 bits (years 1678-2262)", measurement, tb, precisionName(d.unitNs))}
			}
			when = ns
		}
	}
	for i := mark; i < len(dst); i++ {
		dst[i].Time = when
	}
	return dst, nil
}

func precisionName(unitNs int64) string {
	for name, u := range influxPrecisions {
		if u == unitNs {
			return name
		}
	}
	return "ns"
}

// seriesKey returns the series key of the current line, whose lookup key is
// in d.key and whose tags are at d.tagAt. A line whose series cannot be
// built is skipped whole: reading it without a tag would merge series.
func (st *influxState) seriesKey(measurement []byte) (string, error) {
	d, t := st.d, st.t
	if s, ok := d.series[string(d.key)]; ok {
		return s, nil
	}
	if p := nameProblem(measurement); p != "" {
		return "", &pointSkip{tallyBadName, fmt.Sprintf("measurement %q: %s; a measurement is non-empty UTF-8 text without control characters", measurement, p)}
	}
	d.tags = append(d.tags[:0], t.tags...)
	nTopic := len(d.tags)
	for i := 0; i < len(d.tagAt); i += 4 {
		k, v := d.key[d.tagAt[i]:d.tagAt[i+1]], d.key[d.tagAt[i+2]:d.tagAt[i+3]]
		for _, b := range [][]byte{k, v} {
			if p := nameProblem(b); p != "" {
				return "", &pointSkip{tallyBadName, fmt.Sprintf("measurement %q: tag %q=%q: %q: %s; the line is skipped, as its series would be wrong without the tag", measurement, k, v, b, p)}
			}
		}
		for j := 0; j < i; j += 4 {
			if bytes.Equal(k, d.key[d.tagAt[j]:d.tagAt[j+1]]) {
				return "", &pointSkip{tallyBadLine, fmt.Sprintf("measurement %q: tag key %q appears twice; InfluxDB refuses such a line", measurement, k)}
			}
		}
		key, value := string(k), string(v)
		if j := slices.IndexFunc(d.tags[:nTopic], func(tag edgegw.Tag) bool { return tag.Key == key }); j >= 0 {
			d.tags[j].Value = value // the line's tag wins
		} else {
			d.tags = append(d.tags, edgegw.Tag{Key: key, Value: value})
		}
	}
	slices.SortFunc(d.tags, func(a, b edgegw.Tag) int { return strings.Compare(a.Key, b.Key) })
	s := string(edgegw.AppendSeriesKey(nil, string(measurement), d.tags))
	if len(d.series) >= maxInterned {
		clear(d.series)
	}
	d.series[string(d.key)] = s
	return s, nil
}

// Codes of the skip reasons a tally counts.
const (
	tallyBadLine = iota
	tallyBadRecord
	tallyBadName
	tallyStringField
	tallyBooleanField
	tallyNonFinite
	numTally
)

// skipNames are the skip reasons of the tally codes.
var skipNames = [numTally]string{skipBadLine, skipBadRecord, skipBadName, skipStringField, skipBooleanField, skipNonFinite}

// tally counts what a decoder skips in one message. It is a value, so that
// what a line or record counted before it turned out bad can be taken back
// by restoring a copy.
type tally struct {
	n     [numTally]int
	what  [numTally]string // the first part skipped for each reason
	order [numTally]uint8  // the reasons in the order they were first seen
	count int              // reasons seen
}

// add counts one part skipped for code and reports whether it is the first:
// then the caller sets what[code].
func (tl *tally) add(code int) bool {
	tl.n[code]++
	if tl.n[code] > 1 {
		return false
	}
	tl.order[tl.count] = uint8(code)
	tl.count++
	return true
}

// finish ends a message: with readings, it adds the counts to sk; without,
// it returns the no_value rejection, naming the first part skipped or, when
// nothing was, saying empty.
func (tl *tally) finish(read bool, sk *skips, topic string, payload []byte, empty string) error {
	switch {
	case read:
		tl.flush(sk, topic, payload)
		return nil
	case tl.count == 0:
		return rejectPayload(reasonNoValue, topic, payload, "%s", empty)
	}
	return rejectPayload(reasonNoValue, topic, payload, "no readings: %s", tl.what[tl.order[0]])
}

// flush adds the counts to sk, with details naming the message.
func (tl *tally) flush(sk *skips, topic string, payload []byte) {
	for _, c := range tl.order[:tl.count] {
		sk.addN(skipNames[c], tl.n[c], "payload %s on %s: %s", quotePayload(payload), topic, tl.what[c])
	}
}
