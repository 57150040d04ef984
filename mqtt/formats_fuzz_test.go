package mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/edgegw/edgegw"
)

// fuzzInfluxSubs are the subscriptions FuzzInflux decodes with.
var fuzzInfluxSubs = []Subscription{
	{Topic: "lp/{site}", Format: "influx"},
	{Topic: "lp/{site}", Format: "influx", Booleans: true, Influx: InfluxOptions{Precision: "s"}},
}

func FuzzInflux(f *testing.F) {
	for _, s := range []string{
		"home,room=Living\\ Room temp=21.1,hum=35.9,co=0i 1641024000\nhome,room=Kitchen temp=21.0,hum=35.9,co=0i 1641024000\n",
		"# comment\n\nm,t=a v=1,s=\"x\",b=true 5\r\nbad line\nm v=2u\n",
		"m s=\"unclosed\nm v=1\nm s=\"a\\\"b\",v=2 3\n",
		"m,site=x v=1 -9223372036854775808\nm v=1e999\nm,a=1,a=2 v=1\n",
		"m\\ x,t\\,k=v\\=w f\\ k=1i\n",
	} {
		f.Add([]byte(s))
	}
	routers := make([]*router, len(fuzzInfluxSubs))
	for i, sub := range fuzzInfluxSubs {
		routers[i] = mustRouter(f, false, sub)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		for i, r := range routers {
			checkInfluxPayload(t, r, fuzzInfluxSubs[i], payload)
		}
	})
}

// checkInfluxPayload decodes payload on topic lp/s1 and compares with
// referenceInflux.
func checkInfluxPayload(t *testing.T, r *router, sub Subscription, payload []byte) {
	t.Helper()
	rs, err := r.decode(nil, "lp/s1", payload, arrival)
	var re *RejectError
	if err != nil && !errors.As(err, &re) {
		t.Fatalf("decode(%q) error %T is not a *RejectError", payload, err)
	}
	checkReadings(t, rs)
	for _, rd := range rs {
		if nameProblem([]byte(rd.Field)) != "" {
			t.Fatalf("decode(%q) read field name %q", payload, rd.Field)
		}
	}
	want, skipped := referenceInflux(payload, sub, "s1")
	if !sameAsReference(t, payload, rs, err, want, "decoding each line alone gives") {
		return
	}
	for _, reason := range []string{skipBadLine, skipStringField, skipBooleanField} {
		if r.sk.count(reason) != skipped[reason] {
			t.Fatalf("decode(%q) skipped %+v; decoding each line alone skips %v", payload, r.sk.list, skipped)
		}
	}
}

// referenceInflux decodes each line of payload alone with lineprotocol and
// returns the readings of the lines that decode whole (as lineProtocol
// writes them, in order) and the parts skipped, by reason.
func referenceInflux(payload []byte, sub Subscription, site string) ([]string, map[string]int) {
	unit := map[string]int64{"": 1, "ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[sub.Influx.Precision]
	var out []string
	skipped := map[string]int{}
	for _, line := range bytes.Split(payload, []byte("\n")) {
		dec := lineprotocol.NewDecoderWithBytes(line)
		for dec.Next() {
			lines, strs, bools, badNames, ok := referencePoint(dec, sub.Booleans, unit, site)
			if !ok {
				skipped[skipBadLine]++
				continue
			}
			skipped[skipBadName] += badNames
			out = append(out, lines...)
			skipped[skipStringField] += strs
			skipped[skipBooleanField] += bools
		}
	}
	return out, skipped
}

// trailingBackslash reports a name line protocol cannot write back: the
// decoder reads one at the end of a line, the encoder refuses it.
func trailingBackslash(b []byte) bool { return len(b) > 0 && b[len(b)-1] == '\\' }

func referencePoint(dec *lineprotocol.Decoder, booleans bool, unit int64, site string) (lines []string, strs, bools, badNames int, ok bool) {
	m, err := dec.Measurement()
	if err != nil {
		return nil, 0, 0, 0, false
	}
	badSeries := trailingBackslash(m)
	measurement := string(m)
	tags := map[string]string{"site": site}
	seen := map[string]bool{}
	for {
		k, v, err := dec.NextTag()
		if err != nil || (k != nil && seen[string(k)]) {
			return nil, 0, 0, 0, false
		}
		if k == nil {
			break
		}
		badSeries = badSeries || trailingBackslash(k) || trailingBackslash(v)
		seen[string(k)] = true
		tags[string(k)] = string(v)
	}
	var ts []edgegw.Tag
	for k, v := range tags {
		ts = append(ts, edgegw.Tag{Key: k, Value: v})
	}
	series := edgegw.SeriesKey(measurement, ts)
	type fv struct {
		k string
		v float64
	}
	var fields []fv
	for {
		k, v, err := dec.NextField()
		if err != nil {
			return nil, 0, 0, 0, false
		}
		if k == nil {
			break
		}
		if trailingBackslash(k) {
			badNames++
			continue
		}
		switch v.Kind() {
		case lineprotocol.String:
			strs++
		case lineprotocol.Bool:
			if !booleans {
				bools++
				continue
			}
			x := 0.0
			if v.BoolV() {
				x = 1
			}
			fields = append(fields, fv{string(k), x})
		default:
			var x float64
			switch n := v.Interface().(type) {
			case int64:
				x = float64(n)
			case uint64:
				x = float64(n)
			case float64:
				x = n
			}
			fields = append(fields, fv{string(k), x})
		}
	}
	when := new(big.Int).SetInt64(arrival)
	tb, err := dec.TimeBytes()
	if err != nil {
		return nil, 0, 0, 0, false
	}
	if tb != nil {
		n, ok := new(big.Int).SetString(string(tb), 10)
		if !ok {
			return nil, 0, 0, 0, false
		}
		when = n.Mul(n, big.NewInt(unit))
		if !when.IsInt64() {
			return nil, 0, 0, 0, false
		}
	}
	if badSeries {
		return nil, 0, 0, 1, true // the series cannot be written: the line is skipped
	}
	for _, f := range fields {
		lines = append(lines, lineProtocol([]edgegw.Reading{{Series: series, Field: f.k, Value: f.v, Time: when.Int64()}}))
	}
	return lines, strs, bools, badNames, true
}

// fuzzSenMLSub is the subscription FuzzSenML decodes with.
var fuzzSenMLSub = Subscription{Topic: "senml/{device}", Format: "senml", Measurement: "senml", Booleans: true,
	SenML: SenMLOptions{DeviceSeparator: ":"}}

func FuzzSenML(f *testing.F) {
	for _, s := range []string{
		`[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]`,
		`[{"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,"bu":"A","bver":5,"n":"voltage","u":"V","v":120.1},{"n":"current","t":-5,"v":1.2},{"n":"current","v":1.7}]`,
		`[{"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1},{"n":"label","vs":"Machine Room"},{"n":"open","vb":false},{"n":"nfc-reader","vd":"aGkgCg"}]`,
		`[{"bn":"m:","bs":10,"bv":1,"n":"e","s":5,"v":2,"t":-0.5},{"n":"x","t":1e300,"v":1},{"bn":5},{"n":"y","v":1}]`,
		`[{"n":"a","v":1e999},{"n":"b\u0001","v":1},{"x_":1}]`,
		`{"n":"a","v":1}`, `[]`, `[1]`, `[{"n":"a","v":1,"v":2}]`,
	} {
		f.Add([]byte(s))
	}
	r := mustRouter(f, false, fuzzSenMLSub)
	f.Fuzz(func(t *testing.T, payload []byte) {
		rs, err := r.decode(nil, "senml/d1", payload, arrival)
		var re *RejectError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("decode(%q) error %T is not a *RejectError", payload, err)
		}
		checkReadings(t, rs)
		for _, rd := range rs {
			if nameProblem([]byte(rd.Field)) != "" {
				t.Fatalf("decode(%q) read field name %q", payload, rd.Field)
			}
		}
		valid := json.Valid(payload)
		if err == nil && !valid {
			t.Fatalf("decode(%q) accepted invalid JSON: %v", payload, rs)
		}
		want, ok := referenceSenML(payload)
		if !ok {
			return
		}
		sameAsReference(t, payload, rs, err, want, "encoding/json and math/big resolve")
	})
}

// senmlMember is one label of a record, in order.
type senmlMember struct {
	label string
	raw   json.RawMessage
}

// referenceSenML resolves payload with encoding/json and math/big as
// fuzzSenMLSub on topic senml/d1 should, for packs it models: it reports
// false for invalid JSON and for packs with a label of the wrong type, a
// repeated label, more than one value, text that is not valid UTF-8 or
// holds control characters, a label ending in '_', a bver, or a number
// with a large exponent.
func referenceSenML(payload []byte) ([]string, bool) {
	if !json.Valid(payload) {
		return nil, false
	}
	records, ok := senmlRecords(payload)
	if !ok {
		return nil, false
	}
	kinds := map[string]string{"bn": "s", "bu": "s", "n": "s", "u": "s", "vs": "s", "vd": "s",
		"bt": "n", "bv": "n", "bs": "n", "v": "n", "s": "n", "t": "n", "ut": "n", "vb": "b"}
	var (
		bn, bu string
		bt     = new(big.Int)
		bv, bs float64
		out    []string
	)
	ns := func(raw json.RawMessage) (*big.Int, bool) {
		r, ok := new(big.Rat).SetString(string(raw))
		if !ok {
			return nil, false
		}
		r.Mul(r, big.NewRat(1e9, 1))
		return new(big.Int).Quo(r.Num(), r.Denom()), true // toward zero
	}
	for _, rec := range records {
		has := map[string]json.RawMessage{}
		values := 0
		for _, m := range rec {
			if _, dup := has[m.label]; dup || m.label == "bver" || strings.HasSuffix(m.label, "_") {
				return nil, false
			}
			k, known := kinds[m.label]
			if !known {
				continue
			}
			has[m.label] = m.raw
			switch k {
			case "s":
				var s string
				if m.raw[0] != '"' || json.Unmarshal(m.raw, &s) != nil || !utf8.Valid(m.raw) || nameProblem([]byte(s)) != "" && s != "" {
					return nil, false
				}
			case "n":
				if c := m.raw[0]; c != '-' && (c < '0' || c > '9') {
					return nil, false
				}
				if i := bytes.IndexAny(m.raw, "eE"); i >= 0 && len(m.raw)-i > 4 {
					return nil, false
				}
			case "b":
				if string(m.raw) != "true" && string(m.raw) != "false" {
					return nil, false
				}
			}
			switch m.label {
			case "v", "vs", "vb", "vd":
				values++
			}
		}
		if values > 1 {
			return nil, false
		}
		str := func(l string) string {
			var s string
			json.Unmarshal(has[l], &s)
			return s
		}
		num := func(l string) float64 {
			f, _ := strconv.ParseFloat(string(has[l]), 64)
			return f
		}
		regular := false
		for l := range has {
			if !strings.HasPrefix(l, "b") {
				regular = true
			}
		}
		if has["bn"] != nil {
			bn = str("bn")
		}
		if has["bu"] != nil {
			bu = str("bu")
		}
		if has["bt"] != nil {
			n, _ := ns(has["bt"])
			if !n.IsInt64() {
				return nil, false // a base that is out of range
			}
			bt = n
		}
		if has["bv"] != nil {
			bv = num("bv")
		}
		if has["bs"] != nil {
			bs = num("bs")
		}
		if !regular {
			continue
		}
		name := bn + str("n")
		if name == "" || values == 0 && has["s"] == nil {
			continue
		}
		when := new(big.Int)
		if has["t"] != nil {
			n, _ := ns(has["t"])
			if !n.IsInt64() {
				continue
			}
			when = n
		}
		when.Add(when, bt)
		if when.Cmp(big.NewInt(senmlRelative)) < 0 {
			when.Add(when, big.NewInt(arrival))
		}
		if !when.IsInt64() {
			continue
		}
		unit := bu
		if has["u"] != nil {
			unit = str("u")
		}
		tags := []edgegw.Tag{{Key: "device", Value: "d1"}, {Key: "unit", Value: unit}}
		field := name
		if i := strings.LastIndex(name, ":"); i >= 0 {
			tags[0].Value, field = name[:i], name[i+1:]
			if tags[0].Value == "" || field == "" {
				continue
			}
		}
		series := edgegw.SeriesKey("senml", tags)
		add := func(field string, v float64) {
			if !math.IsInf(v, 0) {
				out = append(out, lineProtocol([]edgegw.Reading{{Series: series, Field: field, Value: v, Time: when.Int64()}}))
			}
		}
		switch {
		case has["v"] != nil:
			add(field, bv+num("v"))
		case has["vb"] != nil:
			add(field, map[string]float64{"true": 1, "false": 0}[string(has["vb"])])
		}
		if has["s"] != nil {
			add(field+"_sum", bs+num("s"))
		}
	}
	return out, true
}

// senmlRecords returns the members of each record of a JSON array of
// objects, in order; false for anything else.
func senmlRecords(payload []byte) ([][]senmlMember, bool) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, false
	}
	var records [][]senmlMember
	for dec.More() {
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			return nil, false
		}
		var rec []senmlMember
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, false
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, false
			}
			rec = append(rec, senmlMember{label: tok.(string), raw: raw})
		}
		if _, err := dec.Token(); err != nil {
			return nil, false
		}
		records = append(records, rec)
	}
	if _, err := dec.Token(); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return records, true
}

// sameAsReference fails unless a decode's readings (or its rejection, when
// the reference reads nothing) equal the reference's lines, which the
// reference names. It reports whether the decode read readings to check
// further.
func sameAsReference(t *testing.T, payload []byte, rs []edgegw.Reading, err error, want []string, reference string) bool {
	t.Helper()
	if err != nil {
		if len(want) != 0 {
			t.Fatalf("decode(%q) rejected %v; %s\n%s", payload, err, reference, strings.Join(want, ""))
		}
		return false
	}
	got := strings.SplitAfter(lineProtocol(rs), "\n")
	got = got[:len(got)-1]
	if !slices.Equal(got, want) {
		t.Fatalf("decode(%q) =\n%s\n%s\n%s", payload, strings.Join(got, ""), reference, strings.Join(want, ""))
	}
	return true
}
