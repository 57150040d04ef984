package mqtt

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/edgegw/edgegw"
)

// Reasons a message is rejected, as carried by RejectError.Reason and used as
// the reason label of edgegw_readings_rejected_total.
const (
	reasonBadTopic        = "bad_topic"         // the topic matches no subscription, or a placeholder level is empty or not a name
	reasonBadPayload      = "bad_payload"       // the payload is not in the subscription's format
	reasonBadNumber       = "bad_number"        // the value is not a number
	reasonBadTime         = "bad_time"          // the time member is not a time
	reasonNoValue         = "no_value"          // the payload holds no value
	reasonNonFinite       = "non_finite"        // the value is NaN or ±Inf, or overflows float64
	reasonDuplicateKey    = "duplicate_key"     // a JSON object repeats a member name
	reasonTooLarge        = "too_large"         // the payload is over Options.MaxPayloadBytes
	reasonTooManyReadings = "too_many_readings" // the message holds over Options.MaxReadingsPerMessage readings
)

// reasons lists every reason, so that each counter exists from the start.
var reasons = []string{reasonBadTopic, reasonBadPayload, reasonBadNumber, reasonBadTime, reasonNoValue, reasonNonFinite,
	reasonDuplicateKey, reasonTooLarge, reasonTooManyReadings}

// Reasons a part of an accepted message is skipped, as used by skips.add and
// as the reason label of edgegw_readings_skipped_total. The rest of the
// message is read.
const (
	skipBadName      = "bad_name"      // a field name, tag key or tag value InfluxDB cannot take
	skipStringField  = "string_field"  // a string (or data) value where a number is read
	skipBooleanField = "boolean_field" // a boolean, with booleans: false
	skipBadLine      = "bad_line"      // a line-protocol line that does not parse
	skipBadRecord    = "bad_record"    // a SenML record that does not resolve
	skipBadNumber    = "bad_number"    // a numeric string (numeric_strings) that is not a number
	skipNonFinite    = "non_finite"    // a number beyond float64
	skipStateWord    = "state_word"    // a value payload that is a state, like unavailable or OFF
)

// skipReasons lists every skip reason, so that each counter exists from the start.
var skipReasons = []string{skipBadName, skipStringField, skipBooleanField, skipBadLine, skipBadRecord, skipBadNumber, skipNonFinite, skipStateWord}

// assumeNoZone is the reason a reading is stamped with its arrival time
// although its payload has a time: the time has no zone and none is set.
// It is counted in edgegw_readings_time_assumed_total.
const assumeNoZone = "no_zone"

// skip is what a message lost to one reason: how many parts, and what the
// first of them was.
type skip struct {
	reason string
	n      int
	detail string
}

// skips collects what a decoder skipped in one message. The router resets
// it before each message; the client reads it after.
type skips struct {
	list []skip
}

func (s *skips) reset() { s.list = s.list[:0] }

// add counts one part skipped for reason; detail, formatted only for the
// first part of a reason in a message, says what it was and what would be
// accepted.
func (s *skips) add(reason, format string, args ...any) { s.addN(reason, 1, format, args...) }

// addN counts n parts skipped for reason, as add does.
func (s *skips) addN(reason string, n int, format string, args ...any) {
	for i := range s.list {
		if s.list[i].reason == reason {
			s.list[i].n += n
			return
		}
	}
	s.list = append(s.list, skip{reason: reason, n: n, detail: fmt.Sprintf(format, args...)})
}

// again counts one more part skipped for reason when the message already
// has one, and reports whether it did, so that a caller whose detail costs
// something builds it only for the first: if !sk.again(r) { sk.add(r, ...) }.
func (s *skips) again(reason string) bool {
	for i := range s.list {
		if s.list[i].reason == reason {
			s.list[i].n++
			return true
		}
	}
	return false
}

// count returns the parts skipped for reason.
func (s *skips) count(reason string) int {
	for _, k := range s.list {
		if k.reason == reason {
			return k.n
		}
	}
	return 0
}

// nameProblem says why b cannot be an InfluxDB measurement, field name, tag
// key or tag value, or returns "": line protocol cannot carry an empty name,
// invalid UTF-8, a control character or a trailing backslash.
func nameProblem(b []byte) string {
	if len(b) == 0 {
		return "empty"
	}
	if !utf8.Valid(b) {
		return "not valid UTF-8"
	}
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return "holds a control character"
		}
	}
	if b[len(b)-1] == '\\' {
		return "ends with a backslash, which line protocol cannot carry"
	}
	return ""
}

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
	// extended slice; it adds to sk the parts it skipped. On error it
	// returns dst as it was given and a *RejectError.
	decode(dst []edgegw.Reading, t *topicInfo, payload []byte, arrival int64, sk *skips) ([]edgegw.Reading, error)
}

// acceptedFormats names the formats newDecoder knows, for error messages.
const acceptedFormats = "value, json, influx, senml"

// newDecoder returns the decoder of sub.Format.
func newDecoder(sub Subscription, tmpl *template, arrivalTime bool) (decoder, error) {
	switch sub.Format {
	case "value":
		if !tmpl.hasField {
			return nil, fmt.Errorf("format value needs the topic to name the field: add a {field} level to %q", sub.Topic)
		}
		return newValueDecoder(sub)
	case "json":
		return newJSONDecoder(sub, arrivalTime)
	case "influx":
		return newInfluxDecoder(sub, arrivalTime)
	case "senml":
		return newSenMLDecoder(sub, arrivalTime)
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
	index       int // in Options.Subscriptions
	tmpl        *template
	measurement string
	dec         decoder
}

// maxCachedTopics bounds the topic cache; past it the cache starts afresh.
const maxCachedTopics = 100_000

// router decodes a message by the first subscription whose template matches
// its topic. It is not safe for concurrent use.
type router struct {
	routes      []route
	cache       map[string]*topicInfo
	maxPayload  int
	maxReadings int
	// sk holds what the last decode skipped.
	sk skips
}

// Default limits of a message.
const (
	defaultMaxPayloadBytes       = 256 << 10
	defaultMaxReadingsPerMessage = 10_000
)

// SubscriptionError is a problem with one of Options.Subscriptions.
type SubscriptionError struct {
	// Index is the subscription's index in Options.Subscriptions.
	Index int
	Topic string
	Err   error
}

func (e *SubscriptionError) Error() string {
	return fmt.Sprintf("subscription %d (topic %q): %v", e.Index, e.Topic, e.Err)
}

func (e *SubscriptionError) Unwrap() error { return e.Err }

// CheckSubscriptions returns the problems of subs as New would find them,
// each a *SubscriptionError, joined; nil when there are none.
func CheckSubscriptions(subs []Subscription, arrivalTime bool) error {
	_, err := newRouter(subs, arrivalTime)
	return err
}

// newRouter returns the router of subs with the default limits; its error
// lists every problem.
func newRouter(subs []Subscription, arrivalTime bool) (*router, error) {
	r := &router{cache: make(map[string]*topicInfo), maxPayload: defaultMaxPayloadBytes, maxReadings: defaultMaxReadingsPerMessage}
	var errs []error
	for i, sub := range subs {
		rt, err := newRoute(sub, arrivalTime)
		if err != nil {
			errs = append(errs, &SubscriptionError{Index: i, Topic: sub.Topic, Err: err})
			continue
		}
		for _, earlier := range r.routes {
			if earlier.tmpl.covers(rt.tmpl) {
				errs = append(errs, &SubscriptionError{Index: i, Topic: sub.Topic, Err: fmt.Errorf(
					"can never match: subscription %d (topic %q) comes first and matches every topic this one does; list the narrower one first", earlier.index, earlier.tmpl.text)})
				break
			}
		}
		rt.index = i
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
	// Format influx takes the measurement from each line.
	if !tmpl.hasMeasurement && sub.Measurement == "" && sub.Format != "influx" {
		return route{}, errors.New("measurement is empty and the topic has no {measurement} level; set measurement")
	}
	if m := sub.Measurement; m != "" {
		p := nameProblem([]byte(m))
		if p == "" && m[0] == '#' {
			p = "starts with #, which line protocol reads as a comment"
		}
		if p != "" {
			return route{}, fmt.Errorf("measurement %q %s; use a name like sensors", m, p)
		}
	}
	dec, err := newDecoder(sub, tmpl, arrivalTime)
	if err != nil {
		return route{}, err
	}
	return route{tmpl: tmpl, measurement: sub.Measurement, dec: dec}, nil
}

// decode appends to dst the readings of a message and returns the extended
// slice; on error it returns dst unchanged and a *RejectError. r.sk holds
// what it skipped.
func (r *router) decode(dst []edgegw.Reading, topic string, payload []byte, arrival int64) ([]edgegw.Reading, error) {
	r.sk.reset()
	if len(payload) > r.maxPayload {
		return dst, &RejectError{Reason: reasonTooLarge, Msg: fmt.Sprintf("payload on %s is %d bytes; at most %d are accepted (mqtt.max_payload_bytes)", topic, len(payload), r.maxPayload)}
	}
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
	start := len(dst)
	out, err := t.dec.decode(dst, t, payload, arrival, &r.sk)
	if err != nil {
		r.sk.reset() // a rejected message counts once, as rejected
		return out[:start], err
	}
	if n := len(out) - start; n > r.maxReadings {
		r.sk.reset()
		return out[:start], &RejectError{Reason: reasonTooManyReadings, Msg: fmt.Sprintf("payload on %s holds %d readings; at most %d are accepted in one message (mqtt.max_readings_per_message)", topic, n, r.maxReadings)}
	}
	return out, nil
}

func (r *router) lookup(topic string) (*topicInfo, error) {
	for _, rt := range r.routes {
		m, ok := rt.tmpl.match(topic)
		if !ok {
			continue
		}
		t := &topicInfo{name: topic, measurement: rt.measurement, tags: m.tags, field: m.field, dec: rt.dec}
		if rt.tmpl.hasMeasurement {
			t.measurement = m.measurement
			if p := nameProblem([]byte(t.measurement)); p != "" {
				return nil, &RejectError{Reason: reasonBadTopic, Msg: fmt.Sprintf("topic %q: the {measurement} level of %s is %s; a measurement name is non-empty UTF-8 text without control characters", topic, rt.tmpl.text, p)}
			}
		}
		if rt.tmpl.hasField {
			if p := nameProblem([]byte(m.field)); p != "" {
				return nil, &RejectError{Reason: reasonBadTopic, Msg: fmt.Sprintf("topic %q: the {field} level of %s is %s; a field name is non-empty UTF-8 text without control characters", topic, rt.tmpl.text, p)}
			}
		}
		for _, tag := range m.tags {
			if p := nameProblem([]byte(tag.Value)); p != "" {
				return nil, &RejectError{Reason: reasonBadTopic, Msg: fmt.Sprintf("topic %q: the {%s} level of %s is %s; a tag value is non-empty UTF-8 text without control characters", topic, tag.Key, rt.tmpl.text, p)}
			}
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
type valueDecoder struct {
	booleans bool
	suffix   *regexp.Regexp // nil: none
}

func newValueDecoder(sub Subscription) (*valueDecoder, error) {
	d := &valueDecoder{booleans: sub.Booleans}
	if sub.Value.UnitSuffix != "" {
		re, err := regexp.Compile(sub.Value.UnitSuffix)
		if err != nil {
			return nil, fmt.Errorf("value unit_suffix %q is not a regular expression: %v", sub.Value.UnitSuffix, err)
		}
		if !strings.HasSuffix(sub.Value.UnitSuffix, "$") {
			re = regexp.MustCompile("(?:" + sub.Value.UnitSuffix + ")$")
		}
		d.suffix = re
	}
	return d, nil
}

// stateWords are payloads that say a sensor has no value now, as Home
// Assistant, ESPHome and others publish them; they are skipped and counted.
var stateWords = []string{"unavailable", "unknown", "none", "null", "nan", "-nan", "n/a", "na", "-", "--", "offline", "online"}

// trimValue removes white space and trailing NULs around a value payload.
func trimValue(b []byte) []byte {
	return bytes.TrimFunc(b, func(r rune) bool {
		return r == 0 || r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
	})
}

const valueAccepted = "format value expects one number like 23.5, 1e3 or -7"

func (d *valueDecoder) decode(dst []edgegw.Reading, t *topicInfo, payload []byte, arrival int64, sk *skips) ([]edgegw.Reading, error) {
	b := trimValue(payload)
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		// A state published as a JSON string, as Home Assistant's
		// statestream does: "23.5", "unavailable".
		b = trimValue(b[1 : len(b)-1])
	}
	if d.suffix != nil {
		if loc := d.suffix.FindIndex(b); loc != nil {
			b = trimValue(b[:loc[0]])
		}
	}
	if len(b) == 0 {
		return dst, rejectPayload(reasonNoValue, t.name, payload, "empty; %s", valueAccepted)
	}
	v, reason := parseNumber(b)
	switch reason {
	case "":
	default:
		// Not a finite number: a state word (NaN among them), else rejected.
		if v, ok := boolWord(b); ok {
			if d.booleans {
				return append(dst, edgegw.Reading{Series: t.series, Field: t.field, Value: v, Time: arrival}), nil
			}
			sk.add(skipStateWord, "payload %s on %s is a state, not a reading; set booleans: true to read ON/OFF and true/false as 1/0", quotePayload(payload), t.name)
			return dst, nil
		}
		for _, w := range stateWords {
			if bytes.EqualFold(b, []byte(w)) {
				sk.add(skipStateWord, "payload %s on %s is a state, not a reading", quotePayload(payload), t.name)
				return dst, nil
			}
		}
		if reason == reasonNonFinite {
			return dst, rejectPayload(reason, t.name, payload, "not a finite number; %s", valueAccepted)
		}
		return dst, rejectPayload(reason, t.name, payload, "not a number; %s", valueAccepted)
	}
	return append(dst, edgegw.Reading{Series: t.series, Field: t.field, Value: v, Time: arrival}), nil
}

// boolWord reads ON/OFF and true/false, in any case, as 1 and 0.
func boolWord(b []byte) (float64, bool) {
	switch {
	case bytes.EqualFold(b, []byte("on")), bytes.EqualFold(b, []byte("true")):
		return 1, true
	case bytes.EqualFold(b, []byte("off")), bytes.EqualFold(b, []byte("false")):
		return 0, true
	}
	return 0, false
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
