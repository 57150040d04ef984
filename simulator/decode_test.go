package simulator_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/edgegw/edgegw"
)

// The tests decode every payload on their own, as the gateway's decoders
// read them (decoder-spec: format json with its defaults, json with
// time_key "readings.*.ts", influx, senml with device_separator ":"), with
// encoding/json and the line-protocol decoder, and compare the readings
// with the truth file.

// point is one reading as the gateway sees it, written like a truth line
// with the value formatted as strconv.FormatFloat(v, 'g', -1, 64).
func point(series, field string, v float64, ns int64) string {
	return fmt.Sprintf("%s %s=%s %d", series, field, strconv.FormatFloat(v, 'g', -1, 64), ns)
}

// truthPoint is point of a truth line.
func truthPoint(t *testing.T, l line) string {
	t.Helper()
	v, err := strconv.ParseFloat(l.value, 64)
	if err != nil {
		t.Fatalf("truth value %q: %v", l.value, err)
	}
	return point(l.series, l.field, v, l.ts)
}

// shape names how the payloads of a run are to be read.
type shape struct {
	format string // json, influx or senml
	batch  int
	nested bool
}

// decodeMessage returns the readings of one message, as points, failing t
// when the message is not what the simulator documents for sh.
func decodeMessage(t *testing.T, sh shape, m msg) []string {
	t.Helper()
	levels := strings.Split(m.topic, "/")
	fail := func(format string, args ...any) []string {
		t.Helper()
		t.Fatalf("message %s %s: %s", m.topic, m.payload, fmt.Sprintf(format, args...))
		return nil
	}
	switch {
	case sh.format == "json" && sh.batch == 1 && !sh.nested:
		// sensors/{site}/{device}/{field}, {"value":..,"ts":..}
		if len(levels) != 4 {
			return fail("want a topic prefix/site/device/field")
		}
		ms := members(t, []byte(m.payload))
		if len(ms) != 2 || ms[0].name != "value" || ms[1].name != "ts" {
			return fail(`want {"value":..,"ts":..}`)
		}
		return []string{point(topicSeries(levels), levels[3], number(t, ms[0].raw), msToNs(t, ms[1].raw))}
	case sh.format == "json":
		// sensors/{site}/{device}; an array of objects, or with nested
		// {"readings":[...]} whose elements are records (time_key
		// "readings.*.ts"): each object's ts is its time, its other members
		// its fields, named as they are.
		if len(levels) != 3 {
			return fail("want a topic prefix/site/device")
		}
		raw := json.RawMessage(m.payload)
		if sh.nested {
			ms := members(t, raw)
			if len(ms) != 1 || ms[0].name != "readings" {
				return fail(`want {"readings":[...]}`)
			}
			raw = ms[0].raw
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return fail("want an array of objects: %v", err)
		}
		var out []string
		for _, e := range elems {
			ms := members(t, e)
			if len(ms) < 2 || ms[0].name != "ts" {
				return fail("element %s: want ts and at least one field", e)
			}
			ns := msToNs(t, ms[0].raw)
			for _, f := range ms[1:] {
				out = append(out, point(topicSeries(levels), f.name, number(t, f.raw), ns))
			}
		}
		return out
	case sh.format == "influx":
		if len(levels) != 3 {
			return fail("want a topic prefix/site/device")
		}
		if !strings.HasSuffix(m.payload, "\n") {
			return fail("want every line to end with a newline")
		}
		var out []string
		dec := lineprotocol.NewDecoderWithBytes([]byte(m.payload))
		for dec.Next() {
			meas, err := dec.Measurement()
			if err != nil {
				return fail("measurement: %v", err)
			}
			var tags []edgegw.Tag
			for {
				k, v, err := dec.NextTag()
				if err != nil {
					return fail("tag: %v", err)
				}
				if k == nil {
					break
				}
				tags = append(tags, edgegw.Tag{Key: string(k), Value: string(v)})
			}
			// The line's tags are the topic's: either may be read.
			series := edgegw.SeriesKey(string(meas), tags)
			if series != topicSeries(levels) {
				return fail("series %s, but the topic names %s", series, topicSeries(levels))
			}
			type fv struct {
				name string
				v    float64
			}
			var fs []fv
			for {
				k, v, err := dec.NextField()
				if err != nil {
					return fail("field: %v", err)
				}
				if k == nil {
					break
				}
				if v.Kind() != lineprotocol.Float {
					return fail("field %s is %v, want a float", k, v.Kind())
				}
				fs = append(fs, fv{string(k), v.FloatV()})
			}
			ts, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
			if err != nil || ts.IsZero() {
				return fail("want a timestamp in ns: %v", err)
			}
			for _, f := range fs {
				out = append(out, point(series, f.name, f.v, ts.UnixNano()))
			}
		}
		return out
	case sh.format == "senml":
		// sensors/{site}/+ with senml.device_separator ":": RFC 8428
		// resolution, time = bt + t in float64 seconds, rounded to ns.
		if len(levels) != 3 {
			return fail("want a topic prefix/site/device")
		}
		var recs []json.RawMessage
		if err := json.Unmarshal([]byte(m.payload), &recs); err != nil || len(recs) == 0 {
			return fail("want a non-empty array of records: %v", err)
		}
		var out []string
		bn, bt := "", 0.0
		for _, rec := range recs {
			n, v, tm := "", math.NaN(), 0.0
			for _, f := range members(t, rec) {
				switch f.name {
				case "bn":
					bn = str(t, f.raw)
				case "bt":
					bt = number(t, f.raw)
				case "n":
					n = str(t, f.raw)
				case "v":
					v = number(t, f.raw)
				case "t":
					tm = number(t, f.raw)
				default:
					return fail("record %s: unexpected member %s", rec, f.name)
				}
			}
			at := bt + tm
			if math.IsNaN(v) || at < 1<<28 {
				return fail("record %s: want a value and an absolute time", rec)
			}
			name := bn + n
			i := strings.LastIndex(name, ":")
			if i < 0 {
				return fail("record %s: name %q has no device separator", rec, name)
			}
			tags := []edgegw.Tag{{Key: "site", Value: levels[1]}, {Key: "device", Value: name[:i]}}
			out = append(out, point(edgegw.SeriesKey("sensors", tags), name[i+1:], v, int64(math.Round(at*1e9))))
		}
		return out
	}
	return fail("no decoder for %+v", sh)
}

// topicSeries is the series key the subscription sensors/{site}/{device}
// (or .../{field}) gives a topic.
func topicSeries(levels []string) string {
	return edgegw.SeriesKey("sensors", []edgegw.Tag{{Key: "site", Value: levels[1]}, {Key: "device", Value: levels[2]}})
}

type member struct {
	name string
	raw  json.RawMessage
}

// members decodes a JSON object into its members in order; a repeated name
// fails t (the gateway rejects it).
func members(t *testing.T, raw []byte) []member {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s: want an object (%v)", raw, err)
	}
	var out []member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		var m member
		m.name = tok.(string)
		if err := dec.Decode(&m.raw); err != nil {
			t.Fatalf("%s: member %s: %v", raw, m.name, err)
		}
		if seen[m.name] {
			t.Fatalf("%s: member %s twice", raw, m.name)
		}
		seen[m.name] = true
		out = append(out, m)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		t.Fatalf("%s: unterminated object (%v)", raw, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("%s: data after the object", raw)
	}
	return out
}

// number reads a JSON number.
func number(t *testing.T, raw json.RawMessage) float64 {
	t.Helper()
	var n json.Number
	if len(raw) == 0 || raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
		t.Fatalf("%s: want a JSON number", raw)
	}
	v, err := n.Float64()
	if err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return v
}

// msToNs reads a JSON integer of ms as ns.
func msToNs(t *testing.T, raw json.RawMessage) int64 {
	t.Helper()
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		t.Fatalf("ts %s: want an integer of ms", raw)
	}
	return ms * int64(time.Millisecond)
}

// str reads a JSON string.
func str(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s: want a string", raw)
	}
	return s
}
