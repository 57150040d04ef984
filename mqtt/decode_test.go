package mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/edgegw/edgegw"
)

var update = flag.Bool("update", false, "rewrite testdata/*/want.lp and want.err from the decoders' output")

// arrival is the arrival time of every message in the decoder tests.
const arrival = int64(1_700_000_000_000_000_000)

// caseSubscription is the subscription.json of a testdata case: the keys of
// one item of mqtt.subscriptions, plus arrival_time (window.time: arrival).
type caseSubscription struct {
	Topic       string `json:"topic"`
	Format      string `json:"format"`
	Measurement string `json:"measurement"`
	Booleans    bool   `json:"booleans"`
	JSON        struct {
		TimeKey        string   `json:"time_key"`
		TimeUnit       string   `json:"time_unit"`
		TimeFormat     string   `json:"time_format"`
		TimeZone       string   `json:"time_zone"`
		ValueKey       string   `json:"value_key"`
		TagKeys        []string `json:"tag_keys"`
		Fields         []string `json:"fields"`
		Exclude        []string `json:"exclude"`
		NumericStrings []string `json:"numeric_strings"`
	} `json:"json"`
	Influx struct {
		Precision string `json:"precision"`
	} `json:"influx"`
	SenML struct {
		DeviceSeparator string `json:"device_separator"`
	} `json:"senml"`
	Value struct {
		UnitSuffix string `json:"unit_suffix"`
	} `json:"value"`
	ArrivalTime bool `json:"arrival_time"`
}

// readCaseSubscription reads a subscription.json; members it leaves out take
// the config's defaults (time_key ts, time_unit ms, value_key value).
func readCaseSubscription(t *testing.T, name string) (Subscription, bool) {
	t.Helper()
	var cs caseSubscription
	cs.JSON.TimeKey, cs.JSON.TimeUnit, cs.JSON.ValueKey = "ts", "ms", "value"
	dec := json.NewDecoder(bytes.NewReader(readFile(t, name)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cs); err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	j := cs.JSON
	return Subscription{Topic: cs.Topic, Format: cs.Format, Measurement: cs.Measurement, Booleans: cs.Booleans,
		JSON: JSONOptions{TimeKey: j.TimeKey, TimeUnit: j.TimeUnit, TimeFormat: j.TimeFormat, TimeZone: j.TimeZone,
			ValueKey: j.ValueKey, TagKeys: j.TagKeys, Fields: j.Fields, Exclude: j.Exclude, NumericStrings: j.NumericStrings},
		Influx: InfluxOptions{Precision: cs.Influx.Precision},
		SenML:  SenMLOptions{DeviceSeparator: cs.SenML.DeviceSeparator},
		Value:  ValueOptions{UnitSuffix: cs.Value.UnitSuffix},
	}, cs.ArrivalTime
}

// lineProtocol writes readings as "series field=value ts" lines.
func lineProtocol(rs []edgegw.Reading) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s %s=%s %d\n", r.Series, r.Field, strconv.FormatFloat(r.Value, 'g', -1, 64), r.Time)
	}
	return b.String()
}

// skipLines writes what a decode skipped as line-protocol comments:
// "# skipped <reason> x<n>: <detail>".
func skipLines(sk *skips) string {
	var b strings.Builder
	for _, k := range sk.list {
		verb := "skipped"
		if k.reason == assumeNoZone {
			verb = "assumed"
		}
		fmt.Fprintf(&b, "# %s %s x%d: %s\n", verb, k.reason, k.n, k.detail)
	}
	return b.String()
}

// TestTestdata decodes each testdata/<case>/payload received on topic with
// the case's subscription.json, and compares with want.lp (the readings) or
// want.err (the reason, then the message).
func TestTestdata(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/subscription.json")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no testdata cases: %v", err)
	}
	for _, f := range dirs {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			sub, arrivalTime := readCaseSubscription(t, f)
			r, err := newRouter([]Subscription{sub}, arrivalTime)
			if err != nil {
				t.Fatalf("newRouter(%+v): %v", sub, err)
			}
			topic := strings.TrimSuffix(string(readFile(t, filepath.Join(dir, "topic"))), "\n")
			payload := readFile(t, filepath.Join(dir, "payload"))
			rs, err := r.decode(nil, topic, payload, arrival)
			var got, wantFile string
			if err != nil {
				var re *RejectError
				if !errors.As(err, &re) {
					t.Fatalf("decode: error %T %v is not a *RejectError", err, err)
				}
				if len(rs) != 0 {
					t.Errorf("decode returned %d readings with its error; want none", len(rs))
				}
				got, wantFile = re.Reason+"\n"+re.Msg+"\n", filepath.Join(dir, "want.err")
			} else {
				got, wantFile = lineProtocol(rs)+skipLines(&r.sk), filepath.Join(dir, "want.lp")
			}
			if *update {
				os.Remove(filepath.Join(dir, "want.err"))
				os.Remove(filepath.Join(dir, "want.lp"))
				if err := os.WriteFile(wantFile, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatalf("decode gave %s; read the expectation: %v\ngot:\n%s", filepath.Base(wantFile), err, got)
			}
			if got != string(want) {
				t.Errorf("decode(%q, %q):\ngot:\n%s\nwant:\n%s", topic, payload, got, want)
			}
		})
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustRouter(t testing.TB, arrivalTime bool, subs ...Subscription) *router {
	t.Helper()
	r, err := newRouter(subs, arrivalTime)
	if err != nil {
		t.Fatalf("newRouter: %v", err)
	}
	return r
}

var (
	valueSub = Subscription{Topic: "sensors/{site}/{device}/{field}", Format: "value", Measurement: "sensors"}
	jsonSub  = Subscription{Topic: "sensors/{site}/{device}", Format: "json", Measurement: "sensors",
		JSON: JSONOptions{TimeKey: "ts", TimeUnit: "ms", TagKeys: []string{"unit"}}}
)

func TestValueDecoder(t *testing.T) {
	r := mustRouter(t, false, valueSub)
	for _, tc := range []struct {
		payload string
		want    float64
		reason  string
		skip    string
	}{
		{payload: "23.45", want: 23.45},
		{payload: "  -7\n", want: -7},
		{payload: "1e3", want: 1000},
		{payload: "0", want: 0},
		{payload: "abc", reason: "bad_number"},
		{payload: "23.5 C", reason: "bad_number"},
		{payload: "0x10", reason: "bad_number"},
		{payload: "1_000", reason: "bad_number"},
		{payload: "55\x00", want: 55},
		{payload: "55\x00\x00\n", want: 55},
		{payload: "2.5E-2", want: 0.025},
		{payload: "NaN", skip: "state_word"},
		{payload: "unavailable", skip: "state_word"},
		{payload: "None", skip: "state_word"},
		{payload: "ON", skip: "state_word"},
		{payload: "23,5", reason: "bad_number"},
		{payload: `"23.5"`, want: 23.5},
		{payload: `"unavailable"`, skip: "state_word"},
		{payload: `"`, reason: "bad_number"},
		{payload: "-Inf", reason: "non_finite"},
		{payload: "1e400", reason: "non_finite"},
		{payload: "", reason: "no_value"},
		{payload: " \t", reason: "no_value"},
	} {
		rs, err := r.decode(nil, "sensors/s1/d1/temperature", []byte(tc.payload), arrival)
		if tc.reason != "" {
			var re *RejectError
			if !errors.As(err, &re) || re.Reason != tc.reason {
				t.Errorf("decode(%q) = %v, %v; want a rejection for %s", tc.payload, rs, err, tc.reason)
			}
			continue
		}
		if tc.skip != "" {
			if err != nil || len(rs) != 0 || r.sk.count(tc.skip) != 1 {
				t.Errorf("decode(%q) = %v, %v, skipped %+v; want nothing read and one %s skip", tc.payload, rs, err, r.sk.list, tc.skip)
			}
			continue
		}
		want := []edgegw.Reading{{Series: "sensors,device=d1,site=s1", Field: "temperature", Value: tc.want, Time: arrival}}
		if err != nil || len(rs) != 1 || rs[0] != want[0] {
			t.Errorf("decode(%q) = %v, %v; want %v", tc.payload, rs, err, want)
		}
	}
}

func TestValueRejectMessage(t *testing.T) {
	r := mustRouter(t, false, valueSub)
	_, err := r.decode(nil, "sensors/s1/d1/temperature", []byte("abc"), arrival)
	want := `payload "abc" on sensors/s1/d1/temperature: not a number; format value expects one number like 23.5, 1e3 or -7`
	if err == nil || err.Error() != want {
		t.Errorf("decode(abc) error = %v; want %s", err, want)
	}
}

func TestJSONTimes(t *testing.T) {
	for _, tc := range []struct {
		unit, ts string
		want     int64
		bad      bool
	}{
		{unit: "s", ts: "1700000000", want: 1700000000e9},
		{unit: "s", ts: "1700000000.123456789", want: 1700000000123456789},
		{unit: "s", ts: "1700000000.1234567899", want: 1700000000123456789},
		{unit: "s", ts: "1.7e9", want: 1700000000e9},
		{unit: "ms", ts: "1700000000123", want: 1700000000123e6},
		{unit: "ms", ts: "1700000000123.5", want: 1700000000123500000},
		{unit: "us", ts: "1700000000123456", want: 1700000000123456e3},
		{unit: "ns", ts: "1700000000123456789", want: 1700000000123456789},
		{unit: "ns", ts: "-5", want: -5},
		{unit: "ms", ts: `"2023-11-14T22:13:20.5Z"`, want: 1700000000500000000},
		{unit: "ms", ts: `"2023-11-15T00:13:20+02:00"`, want: 1700000000e9},
		{unit: "s", ts: "9300000000000", bad: true},
		{unit: "ns", ts: "99999999999999999999", bad: true},
		{unit: "s", ts: "1e300", bad: true},
		{unit: "ms", ts: `"yesterday"`, bad: true},
		{unit: "ms", ts: `"3000-01-01T00:00:00Z"`, bad: true},
		{unit: "ms", ts: "true", bad: true},
		{unit: "ms", ts: "[1]", bad: true},
	} {
		sub := jsonSub
		sub.JSON.TimeUnit = tc.unit
		r := mustRouter(t, false, sub)
		payload := `{"t": 1, "ts": ` + tc.ts + `}`
		rs, err := r.decode(nil, "sensors/s1/d1", []byte(payload), arrival)
		if tc.bad {
			var re *RejectError
			if !errors.As(err, &re) || re.Reason != "bad_time" {
				t.Errorf("time_unit %s: decode(%s) = %v, %v; want a bad_time rejection", tc.unit, payload, rs, err)
			}
			continue
		}
		if err != nil || len(rs) != 1 || rs[0].Time != tc.want {
			t.Errorf("time_unit %s: decode(%s) = %v, %v; want one reading at %d", tc.unit, payload, rs, err, tc.want)
		}
	}
}

func TestJSONArrivalTime(t *testing.T) {
	r := mustRouter(t, true, jsonSub)
	rs, err := r.decode(nil, "sensors/s1/d1", []byte(`{"t": 1, "ts": 5, "u": 2}`), arrival)
	if err != nil || len(rs) != 2 || rs[0].Time != arrival || rs[1].Time != arrival {
		t.Errorf("decode with arrival time = %v, %v; want 2 readings at %d (ts is not a field)", rs, err, arrival)
	}
}

func TestJSONTags(t *testing.T) {
	sub := jsonSub
	sub.JSON.TagKeys = []string{"unit", "site", "id"}
	r := mustRouter(t, false, sub)
	rs, err := r.decode(nil, "sensors/s1/d1", []byte(`[{"t": 1, "unit": "C", "site": "s9", "id": 7}, {"t": 2}, {"t": 3, "unit": "F", "id": null}]`), arrival)
	want := "sensors,device=d1,id=7,site=s9,unit=C t=1 1700000000000000000\n" +
		"sensors,device=d1,site=s1 t=2 1700000000000000000\n" +
		"sensors,device=d1,site=s1,unit=F t=3 1700000000000000000\n"
	if err != nil || lineProtocol(rs) != want {
		t.Errorf("decode = %v\n%s; want\n%s", err, lineProtocol(rs), want)
	}
}

func TestJSONErrorKeepsDst(t *testing.T) {
	r := mustRouter(t, false, jsonSub)
	dst := []edgegw.Reading{{Field: "kept"}}
	rs, err := r.decode(dst, "sensors/s1/d1", []byte(`[{"a": 1}, {"b": "x", "ts": "yesterday"}]`), arrival)
	if err == nil || len(rs) != 1 || rs[0].Field != "kept" {
		t.Errorf("decode = %v, %v; want an error and dst as given", rs, err)
	}
}

func TestNewDecoderErrors(t *testing.T) {
	for _, tc := range []struct {
		sub  Subscription
		want string
	}{
		{Subscription{Topic: "a/{field}", Format: "xml", Measurement: "m"}, `format "xml" is unknown; accepted: value, json, influx, senml`},
		{Subscription{Topic: "a/{field}", Measurement: "m"}, `format is empty; accepted: value, json, influx, senml`},
		{Subscription{Topic: "a/{field}", Format: "value", Measurement: "m", Value: ValueOptions{UnitSuffix: "(°C"}}, `value unit_suffix "(°C" is not a regular expression`},
		{Subscription{Topic: "a/{device}", Format: "value", Measurement: "m"}, `format value needs the topic to name the field`},
		{Subscription{Topic: "a/{field}", Format: "json", Measurement: "m", JSON: JSONOptions{TimeUnit: "h"}}, `json time_unit "h" is unknown; accepted: s, ms, us, ns`},
		{Subscription{Topic: "a/{field}", Format: "json", Measurement: "m", JSON: JSONOptions{TimeKey: "ts", TagKeys: []string{"ts"}}}, `tag_keys holds "ts"`},
		{Subscription{Topic: "a/{field}", Format: "value"}, `measurement is empty`},
		{Subscription{Topic: "a/{field}", Format: "value", Measurement: "#m"}, `measurement "#m" starts with #`},
		{Subscription{Topic: "a/{field}", Format: "value", Measurement: `m\`}, `ends with a backslash`},
	} {
		_, err := newRouter([]Subscription{tc.sub}, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("newRouter(%+v) error = %v; want it to contain %q", tc.sub, err, tc.want)
		}
	}
}

func TestFirstMatchingSubscriptionWins(t *testing.T) {
	r := mustRouter(t, false,
		Subscription{Topic: "sensors/special/{device}/{field}", Format: "json", Measurement: "special"},
		Subscription{Topic: "sensors/{site}/{device}/{field}", Format: "value", Measurement: "sensors"})
	rs, err := r.decode(nil, "sensors/special/d1/t", []byte(`{"value": 1}`), arrival)
	if err != nil || len(rs) != 1 || rs[0].Series != "special,device=d1" {
		t.Errorf("decode on the first template = %v, %v; want series special,device=d1", rs, err)
	}
	rs, err = r.decode(nil, "sensors/s2/d1/t", []byte(`2`), arrival)
	if err != nil || len(rs) != 1 || rs[0].Series != "sensors,device=d1,site=s2" {
		t.Errorf("decode on the second template = %v, %v; want series sensors,device=d1,site=s2", rs, err)
	}
}

func TestTopicCacheBounded(t *testing.T) {
	r := mustRouter(t, false, valueSub)
	for i := range maxCachedTopics + 10 {
		if _, err := r.decode(nil, "sensors/s1/d"+strconv.Itoa(i)+"/t", []byte("1"), arrival); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(r.cache); n > maxCachedTopics {
		t.Errorf("topic cache holds %d entries; want at most %d", n, maxCachedTopics)
	}
}

// checkReadings fails on a reading no decoder may produce.
func checkReadings(t *testing.T, rs []edgegw.Reading) {
	for _, r := range rs {
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) || r.Series == "" || r.Field == "" {
			t.Fatalf("decoded an invalid reading %+v", r)
		}
	}
}

func FuzzValue(f *testing.F) {
	for _, s := range []string{"23.45", " -1e3 ", "NaN", "abc", "", "0x1p4", "1e999", "55\x00", "unavailable", "ON", "-", "23,5", `"23.5"`, `"unavailable"`, `" 5\x00"`} {
		f.Add([]byte(s))
	}
	r := mustRouter(f, false, valueSub)
	f.Fuzz(func(t *testing.T, payload []byte) {
		rs, err := r.decode(nil, "sensors/s1/d1/temperature", payload, arrival)
		var re *RejectError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("decode(%q) error %T is not a *RejectError", payload, err)
		}
		checkReadings(t, rs)
		switch {
		case err == nil && len(rs) == 0:
			if r.sk.count(skipStateWord) != 1 {
				t.Fatalf("decode(%q) read nothing and skipped %+v; want a state_word skip", payload, r.sk.list)
			}
		case err == nil:
			text := strings.Trim(string(payload), " \t\n\r\v\f\x00")
			if unq, err := strconv.Unquote(text); err == nil {
				text = strings.Trim(unq, " \t\n\r\v\f\x00")
			} else if len(text) >= 2 && text[0] == '"' && text[len(text)-1] == '"' {
				text = strings.Trim(text[1:len(text)-1], " \t\n\r\v\f\x00")
			}
			want, perr := strconv.ParseFloat(text, 64)
			if perr != nil || len(rs) != 1 || rs[0].Value != want {
				t.Fatalf("decode(%q) = %v; strconv says %v, %v", payload, rs, want, perr)
			}
		}
	})
}

// fuzzJSONSub is the subscription FuzzJSON compares with encoding/json.
var fuzzJSONSub = Subscription{Topic: "sensors/{site}", Format: "json", Measurement: "m",
	JSON: JSONOptions{TimeKey: "ts", TimeUnit: "ms", TagKeys: []string{"unit"}}}

// fuzzJSONRecordsSub sets every option, with records; FuzzJSON checks its
// invariants only.
var fuzzJSONRecordsSub = Subscription{Topic: "sensors/{site}", Format: "json", Measurement: "m", Booleans: true,
	JSON: JSONOptions{TimeKey: "r.*.t", TimeUnit: "auto", TimeFormat: "02.01.2006 15:04", TimeZone: "Europe/Berlin",
		TagKeys: []string{"r.*", "r.*.id", "site"}, Fields: []string{"a*", "r*", "b.*.c", "x"},
		Exclude: []string{"a?x", "*.skip"}, NumericStrings: []string{"*", "b.*"}}}

// FuzzJSON checks the hand-written JSON decoder against encoding/json: what
// it accepts is valid JSON, and it yields exactly the numeric leaves
// encoding/json sees, in order, named by their path joined with "_" (the
// time member ts and the tag member unit of each root excepted, and those
// below a member whose name InfluxDB cannot take, named over 1024 bytes, or
// beyond float64). A
// payload in which an object repeats a member name, which encoding/json
// accepts, is rejected (duplicate_key); one nested deeper than 64 levels is
// rejected (bad_payload). With every option set (records included) it
// checks that a decoder that has seen other payloads decodes as a new one
// does.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		`{"temperature": 21.5, "humidity": 40, "ts": 1700000000123}`,
		`[{"value": 1, "ts": 1}, {"value": 2}]`,
		`{"a": {"b": [1, 2, {"c": null}]}, "d": true, "e": "x\u00e9\"", "unit": "C"}`,
		`{"t\u00e9mp": -0.5e-3, "ts": "2024-05-01T12:00:00Z"}`,
		`{"a": 1e999}`, `[]`, `{}`, `{"a":1,}`, `[1]`, `{"a": 01}`,
	} {
		f.Add([]byte(s))
	}
	r := mustRouter(f, false, fuzzJSONSub)
	records := mustRouter(f, false, fuzzJSONRecordsSub)
	fresh := mustRouter(f, false, fuzzJSONRecordsSub) // forgets what it saw before each payload
	f.Fuzz(func(t *testing.T, payload []byte) {
		rs, err := r.decode(nil, "sensors/s1", payload, arrival)
		var re *RejectError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("decode(%q) error %T is not a *RejectError", payload, err)
		}
		checkReadings(t, rs)
		valid := json.Valid(payload)
		if err == nil && !valid {
			t.Fatalf("decode(%q) accepted invalid JSON: %v", payload, rs)
		}
		ref, refOK := referenceFields(payload, "ts", "unit")
		switch {
		case !refOK:
		case ref.depth > maxJSONDepth:
			if err == nil || re.Reason != reasonBadPayload {
				t.Fatalf("decode(%q) of JSON nested %d deep = %v; want a bad_payload rejection", payload, ref.depth, err)
			}
		case valid && err != nil && re.Reason == reasonBadPayload && isObjects(payload):
			t.Fatalf("decode(%q) rejected valid JSON objects: %v", payload, err)
		case ref.dup && err == nil:
			t.Fatalf("decode(%q) accepted an object that repeats a member name: %v", payload, rs)
		case !ref.dup && err != nil && re.Reason == reasonDuplicateKey && utf8.Valid(payload):
			t.Fatalf("decode(%q) = %v; encoding/json sees no repeated member name", payload, err)
		case err != nil && len(ref.fields) > 0 && !ref.dup && utf8.Valid(payload) &&
			(re.Reason == reasonNoValue || re.Reason == skipBadName || re.Reason == reasonNonFinite):
			t.Fatalf("decode(%q) = %v; encoding/json sees the numbers %v", payload, err, ref.fields)
		case err == nil && utf8.Valid(payload):
			// Invalid UTF-8 in a name is a bad name here; encoding/json
			// reads it as U+FFFD.
			got := make([]string, len(rs))
			for i, r := range rs {
				got[i] = r.Field + "=" + strconv.FormatFloat(r.Value, 'g', -1, 64)
			}
			if strings.Join(got, ",") != strings.Join(ref.fields, ",") {
				t.Fatalf("decode(%q) fields %v; encoding/json sees %v", payload, got, ref.fields)
			}
		}

		warm, werr := records.decode(nil, "sensors/s1", payload, arrival)
		checkReadings(t, warm)
		if werr == nil && !valid {
			t.Fatalf("decode(%q) with every option accepted invalid JSON: %v", payload, warm)
		}
		dec := fresh.routes[0].dec.(*jsonDecoder)
		dec.resetTrie()
		clear(dec.series)
		clear(dec.names.m)
		cold, cerr := fresh.decode(nil, "sensors/s1", payload, arrival)
		if fmt.Sprint(werr) != fmt.Sprint(cerr) || lineProtocol(warm)+skipLines(&records.sk) != lineProtocol(cold)+skipLines(&fresh.sk) {
			t.Fatalf("decode(%q) with every option by a decoder that has seen other payloads = %v\n%s%s\nby a new one = %v\n%s%s",
				payload, werr, lineProtocol(warm), skipLines(&records.sk), cerr, lineProtocol(cold), skipLines(&fresh.sk))
		}
	})
}

// isObjects reports whether valid JSON is an object or an array of objects.
func isObjects(payload []byte) bool {
	var v any
	if json.Unmarshal(payload, &v) != nil {
		return false
	}
	switch v := v.(type) {
	case map[string]any:
		return true
	case []any:
		for _, e := range v {
			if _, ok := e.(map[string]any); !ok {
				return false
			}
		}
		return true
	}
	return false
}

// reference is what encoding/json sees in a payload.
type reference struct {
	fields []string // name=value of the numeric leaves, in order
	dup    bool     // an object repeats a member name
	depth  int      // the deepest nesting of objects and arrays
}

// referenceFields lists, with encoding/json's tokenizer, the numeric leaves
// of the roots in payload (the object, or each element of a top-level
// array) as name=value in order, named by the levels of their path (member
// names and array indices) joined with "_". It leaves out the members of a
// root named in skip, the members below (or at) a name nameProblem refuses,
// those whose joined name is over maxJSONName bytes and numbers beyond
// float64.
func referenceFields(payload []byte, skip ...string) (reference, bool) {
	type container struct {
		obj     bool
		keys    map[string]bool
		key     string // objects: the name of the member being read
		wantKey bool
		n       int  // arrays: the index of the next element
		level   bool // it is a level of path (not a root or the top-level array)
	}
	var ref reference
	var stack []*container
	var path []string // the levels of the container being read
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return ref, true
		}
		if err != nil {
			return ref, false
		}
		var top *container
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		delim, isDelim := tok.(json.Delim)
		if isDelim && (delim == '}' || delim == ']') {
			if top.level {
				path = path[:len(path)-1]
			}
			stack = stack[:len(stack)-1]
			continue
		}
		if top != nil && top.obj && top.wantKey {
			k := tok.(string)
			if top.keys[k] {
				ref.dup = true
			}
			top.keys[k], top.key, top.wantKey = true, k, false
			continue
		}
		var name string
		level := top != nil && (len(stack) > 1 || top.obj)
		if top != nil {
			if top.obj {
				name, top.wantKey = top.key, true
			} else {
				name = strconv.Itoa(top.n)
				top.n++
			}
		}
		if isDelim {
			c := &container{obj: delim == '{', wantKey: delim == '{', level: level}
			if c.obj {
				c.keys = map[string]bool{}
			}
			stack = append(stack, c)
			if level {
				path = append(path, name)
			}
			if ref.depth = max(ref.depth, len(stack)); ref.depth > maxJSONDepth {
				return ref, true // rejected whatever else it holds
			}
			continue
		}
		n, isNumber := tok.(json.Number)
		if !level || !isNumber || (len(path) == 0 && slices.Contains(skip, name)) {
			continue
		}
		leaf := append(slices.Clip(path), name)
		field := strings.Join(leaf, "_")
		bad := len(field) > maxJSONName
		for _, l := range leaf {
			bad = bad || nameProblem([]byte(l)) != ""
		}
		v, err := strconv.ParseFloat(string(n), 64)
		if bad || err != nil {
			continue
		}
		ref.fields = append(ref.fields, field+"="+strconv.FormatFloat(v, 'g', -1, 64))
	}
}
func TestValueBooleansAndUnitSuffix(t *testing.T) {
	sub := valueSub
	sub.Booleans = true
	sub.Value.UnitSuffix = `\s*°?C`
	r := mustRouter(t, false, sub)
	for _, tc := range []struct {
		payload string
		want    float64
	}{{"ON", 1}, {"off", 0}, {"true", 1}, {"23.5 °C", 23.5}, {"23.5C", 23.5}, {"-4", -4}} {
		rs, err := r.decode(nil, "sensors/s1/d1/t", []byte(tc.payload), arrival)
		if err != nil || len(rs) != 1 || rs[0].Value != tc.want {
			t.Errorf("decode(%q) with booleans and unit_suffix = %v, %v; want %v", tc.payload, rs, err, tc.want)
		}
	}
	if rs, err := r.decode(nil, "sensors/s1/d1/t", []byte("°C"), arrival); err == nil {
		t.Errorf("decode(°C) = %v; want a no_value rejection", rs)
	}
}

func TestLimits(t *testing.T) {
	r := mustRouter(t, false, jsonSub)
	r.maxPayload, r.maxReadings = 64, 3
	for _, tc := range []struct{ payload, reason string }{
		{`{"a": 1, "b": 2, "c": 3, "d": 4}`, "too_many_readings"},
		{`{"a": 1, "pad": "` + strings.Repeat("x", 64) + `"}`, "too_large"},
	} {
		dst := []edgegw.Reading{{Field: "kept"}}
		rs, err := r.decode(dst, "sensors/s1/d1", []byte(tc.payload), arrival)
		var re *RejectError
		if !errors.As(err, &re) || re.Reason != tc.reason || len(rs) != 1 {
			t.Errorf("decode(%.40s...) = %v, %v; want a %s rejection and dst as given", tc.payload, rs, err, tc.reason)
		}
	}
	if rs, err := r.decode(nil, "sensors/s1/d1", []byte(`{"a": 1, "b": 2, "c": 3}`), arrival); err != nil || len(rs) != 3 {
		t.Errorf("decode of 3 readings at a limit of 3 = %v, %v; want them read", rs, err)
	}
}

func TestTopicLevelNames(t *testing.T) {
	r := mustRouter(t, false, valueSub)
	for _, topic := range []string{"sensors//d1/t", "sensors/s1//t", "sensors/s1/d1/", `sensors/s1\/d1/t`, `sensors/s1/d1/t\`, "sensors/s\x01/d1/t", "sensors/s\xff/d1/t", "sensors/s1/d1/t\x7f"} {
		rs, err := r.decode(nil, topic, []byte("1"), arrival)
		var re *RejectError
		if !errors.As(err, &re) || re.Reason != "bad_topic" {
			t.Errorf("decode on topic %q = %v, %v; want a bad_topic rejection", topic, rs, err)
		}
	}
	rs, err := r.decode(nil, "sensors/s 1/d,1/t=x", []byte("1"), arrival)
	if err != nil || len(rs) != 1 || rs[0].Series != `sensors,device=d\,1,site=s\ 1` || rs[0].Field != "t=x" {
		t.Errorf("decode on a topic with spaces, commas and '=' = %v, %v; want them kept, escaped in the series key", rs, err)
	}
}

func TestShadowedSubscription(t *testing.T) {
	for _, tc := range []struct {
		first, second string
		shadowed      bool
	}{
		{"sensors/#", "sensors/{site}/{device}/{field}", true},
		{"sensors/{site}/{device}/{field}", "sensors/+/+/+", true},
		{"#", "$SYS/{field}", false},
		{"#", "{measurement}/{field}", true},
		{"sensors/{site}/{device}/{field}", "sensors/special/{device}/{field}", true},
		{"sensors/special/{device}/{field}", "sensors/{site}/{device}/{field}", false},
		{"sensors/{site}/{field}", "sensors/{site}/{device}/{field}", false},
		{"sensors/{site}/{device}/{field}", "sensors/{site}/#", false},
		{"a/+/#", "a/{x}", true},
	} {
		_, err := newRouter([]Subscription{
			{Topic: tc.first, Format: "json", Measurement: "m"},
			{Topic: tc.second, Format: "json", Measurement: "m"},
		}, false)
		if got := err != nil && strings.Contains(err.Error(), "can never match"); got != tc.shadowed {
			t.Errorf("newRouter(%q then %q) error = %v; want shadowed %v", tc.first, tc.second, err, tc.shadowed)
		}
	}
}
