package mqtt

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/edgegw/edgegw"
)

// Reasons a message is rejected, as carried by RejectError.Reason and used as
// the reason label of edgegw_readings_rejected_total.
const (
	reasonBadTopic   = "bad_topic"   // the topic matches no subscription, or names an empty field
	reasonBadPayload = "bad_payload" // the payload is not in the subscription's format
	reasonBadNumber  = "bad_number"  // the value is not a number
	reasonBadTime    = "bad_time"    // the time member is not a time
	reasonNoValue    = "no_value"    // the payload holds no value
	reasonNonFinite  = "non_finite"  // the value is NaN or ±Inf, or overflows float64
)

// reasons lists every reason, so that each counter exists from the start.
var reasons = []string{reasonBadTopic, reasonBadPayload, reasonBadNumber, reasonBadTime, reasonNoValue, reasonNonFinite}

// RejectError is returned for a message that cannot be decoded. The message
// is still acknowledged (it would fail the same way if delivered again); it is
// counted by Reason and logged.
type RejectError struct {
	// Reason is a stable snake_case label: bad_topic, bad_payload,
	// bad_number, bad_time, no_value or non_finite.
	Reason string
	// Msg says what is wrong and what would be accepted.
	Msg string
}

func (e *RejectError) Error() string { return e.Msg }

// rejectPayload returns a RejectError about payload received on topic.
func rejectPayload(reason, topic string, payload []byte, format string, args ...any) error {
	return &RejectError{Reason: reason, Msg: fmt.Sprintf("payload %s on %s: ", quotePayload(payload), topic) + fmt.Sprintf(format, args...)}
}

// quotePayload quotes at most the first 64 bytes of a payload for a message.
func quotePayload(p []byte) string {
	const max = 64
	if len(p) > max {
		return strconv.Quote(string(p[:max])) + fmt.Sprintf("... (%d bytes)", len(p))
	}
	return strconv.Quote(string(p))
}

// decoder turns the payload of one message into readings. A decoder is the
// seam for payload formats; newDecoder picks one by name. Decoders are not
// safe for concurrent use.
type decoder interface {
	// decode appends to dst the readings in payload, received at arrival
	// (ns since the epoch) on the topic described by t, and returns the
	// extended slice. On error it returns dst as it was given.
	decode(dst []edgegw.Reading, t *topicInfo, payload []byte, arrival int64) ([]edgegw.Reading, error)
}

// acceptedFormats names the formats newDecoder knows, for error messages.
const acceptedFormats = "value, json"

// newDecoder returns the decoder of sub.Format.
func newDecoder(sub Subscription, tmpl *template, arrivalTime bool) (decoder, error) {
	switch sub.Format {
	case "value":
		if !tmpl.hasField {
			return nil, fmt.Errorf("format value needs the topic to name the field: add a {field} level to %q", sub.Topic)
		}
		return valueDecoder{}, nil
	case "json":
		return newJSONDecoder(sub.JSON, arrivalTime)
	case "influx", "senml":
		return nil, fmt.Errorf("format %q is not supported yet; accepted: %s", sub.Format, acceptedFormats)
	case "":
		return nil, fmt.Errorf("format is empty; accepted: %s", acceptedFormats)
	default:
		return nil, fmt.Errorf("format %q is unknown; accepted: %s", sub.Format, acceptedFormats)
	}
}

// topicInfo is what a received topic means: computed once per topic and
// cached, so that a known topic costs one map lookup.
type topicInfo struct {
	name        string       // the topic as received
	measurement string       // from {measurement} or the subscription
	tags        []edgegw.Tag // from the topic's placeholders, sorted by key
	series      string       // edgegw.SeriesKey(measurement, tags)
	field       string       // from {field}; "" when the payload names fields
	dec         decoder
}

// route is one subscription: its template, default measurement and decoder.
type route struct {
	tmpl        *template
	measurement string
	dec         decoder
}

// maxCachedTopics bounds the topic cache; past it the cache starts afresh.
const maxCachedTopics = 100_000

// router decodes a message by the first subscription whose template matches
// its topic. It is not safe for concurrent use.
type router struct {
	routes []route
	cache  map[string]*topicInfo
}

// newRouter returns the router of subs; its error lists every problem.
func newRouter(subs []Subscription, arrivalTime bool) (*router, error) {
	r := &router{cache: make(map[string]*topicInfo)}
	var errs []error
	for i, sub := range subs {
		rt, err := newRoute(sub, arrivalTime)
		if err != nil {
			errs = append(errs, fmt.Errorf("subscription %d (topic %q): %w", i, sub.Topic, err))
			continue
		}
		r.routes = append(r.routes, rt)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

func newRoute(sub Subscription, arrivalTime bool) (route, error) {
	tmpl, err := parseTemplate(sub.Topic)
	if err != nil {
		return route{}, err
	}
	if !tmpl.hasMeasurement && sub.Measurement == "" {
		return route{}, errors.New("measurement is empty and the topic has no {measurement} level; set measurement")
	}
	dec, err := newDecoder(sub, tmpl, arrivalTime)
	if err != nil {
		return route{}, err
	}
	return route{tmpl: tmpl, measurement: sub.Measurement, dec: dec}, nil
}

// decode appends to dst the readings of a message and returns the extended
// slice; on error it returns dst unchanged and a *RejectError.
func (r *router) decode(dst []edgegw.Reading, topic string, payload []byte, arrival int64) ([]edgegw.Reading, error) {
	t := r.cache[topic]
	if t == nil {
		var err error
		if t, err = r.lookup(topic); err != nil {
			return dst, err
		}
		if len(r.cache) >= maxCachedTopics {
			clear(r.cache)
		}
		r.cache[topic] = t
	}
	return t.dec.decode(dst, t, payload, arrival)
}

func (r *router) lookup(topic string) (*topicInfo, error) {
	for _, rt := range r.routes {
		m, ok := rt.tmpl.match(topic)
		if !ok {
			continue
		}
		t := &topicInfo{name: topic, measurement: rt.measurement, tags: m.tags, field: m.field, dec: rt.dec}
		if rt.tmpl.hasMeasurement {
			if m.measurement == "" {
				return nil, &RejectError{Reason: reasonBadTopic, Msg: fmt.Sprintf("topic %q: the {measurement} level of %s is empty", topic, rt.tmpl.text)}
			}
			t.measurement = m.measurement
		}
		if rt.tmpl.hasField && m.field == "" {
			return nil, &RejectError{Reason: reasonBadTopic, Msg: fmt.Sprintf("topic %q: the {field} level of %s is empty", topic, rt.tmpl.text)}
		}
		slices.SortFunc(t.tags, func(a, b edgegw.Tag) int { return strings.Compare(a.Key, b.Key) })
		t.series = string(edgegw.AppendSeriesKey(nil, t.measurement, t.tags))
		return t, nil
	}
	names := make([]string, len(r.routes))
	for i, rt := range r.routes {
		names[i] = rt.tmpl.text
	}
	return nil, &RejectError{Reason: reasonBadTopic, Msg: fmt.Sprintf("topic %q matches none of the subscriptions %s (a persistent session keeps the subscriptions of an earlier configuration until the broker expires it)", topic, strings.Join(names, ", "))}
}

// valueDecoder decodes format value: the payload is one number, the topic
// names the field, and the time is the arrival time.
type valueDecoder struct{}

func (valueDecoder) decode(dst []edgegw.Reading, t *topicInfo, payload []byte, arrival int64) ([]edgegw.Reading, error) {
	b := bytes.TrimSpace(payload)
	if len(b) == 0 {
		return dst, rejectPayload(reasonNoValue, t.name, payload, "empty; format value expects one number like 23.5")
	}
	v, reason := parseNumber(b)
	switch reason {
	case "":
	case reasonNonFinite:
		return dst, rejectPayload(reason, t.name, payload, "not a finite number; format value expects one number like 23.5")
	default:
		return dst, rejectPayload(reason, t.name, payload, "not a number; format value expects one number like 23.5")
	}
	return append(dst, edgegw.Reading{Series: t.series, Field: t.field, Value: v, Time: arrival}), nil
}

// parseNumber parses a decimal number. It returns reasonBadNumber for text
// that is not one (hexadecimal and digit separators included) and
// reasonNonFinite for NaN, ±Inf and numbers beyond float64.
func parseNumber(b []byte) (float64, string) {
	if bytes.ContainsAny(b, "xX_") {
		return 0, reasonBadNumber
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, reasonNonFinite
	}
	if err != nil {
		return 0, reasonBadNumber
	}
	return v, ""
}

// interner returns one string per distinct byte sequence, so that known
// names and tag values cost no allocation. It forgets everything once it
// holds max entries.
type interner struct {
	m   map[string]string
	max int
}

func (in *interner) get(b []byte) string {
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	if in.m == nil {
		in.m = make(map[string]string)
	}
	if len(in.m) >= in.max {
		clear(in.m)
	}
	s := string(b)
	in.m[s] = s
	return s
}
