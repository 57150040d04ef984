package mqtt

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/edgegw/edgegw"
)

var (
	influxSub = Subscription{Topic: "lp/{site}", Format: "influx"}
	senmlSub  = Subscription{Topic: "senml/{device}", Format: "senml", Measurement: "senml"}
)

func TestFormatOptions(t *testing.T) {
	for _, tc := range []struct {
		sub  Subscription
		want string // "" for no error
	}{
		{Subscription{Topic: "lp/{site}", Format: "influx", Influx: InfluxOptions{Precision: "h"}}, `influx.precision "h" is unknown; accepted: ns, us, ms, s`},
		{Subscription{Topic: "lp/{site}", Format: "influx", Influx: InfluxOptions{Precision: "µs"}}, `influx.precision "µs" is unknown; accepted: ns, us, ms, s`},
		{Subscription{Topic: "lp/{site}", Format: "influx", Influx: InfluxOptions{Precision: "s"}}, ""},
		// The lines name the measurement: none is needed.
		{Subscription{Topic: "lp/{site}", Format: "influx"}, ""},
		{Subscription{Topic: "senml/{device}", Format: "senml"}, `measurement is empty`},
		{Subscription{Topic: "senml/{device}", Format: "senml", Measurement: "m", SenML: SenMLOptions{DeviceSeparator: "\t"}}, `senml.device_separator "\t": holds a control character`},
		{Subscription{Topic: "senml/{device}", Format: "senml", Measurement: "m", SenML: SenMLOptions{DeviceSeparator: "::"}}, ""},
	} {
		_, err := newRouter([]Subscription{tc.sub}, false)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("newRouter(%+v): %v", tc.sub, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("newRouter(%+v) error = %v; want it to contain %q", tc.sub, err, tc.want)
		}
	}
}

func TestInfluxPrecision(t *testing.T) {
	for _, tc := range []struct {
		precision, ts string
		want          int64
	}{
		{"", "1700000000123456789", 1700000000123456789},
		{"ns", "-1", -1},
		{"us", "1700000000123456", 1700000000123456000},
		{"ms", "1700000000123", 1700000000123000000},
		{"s", "1641024000", 1641024000000000000},
		{"s", "-9223372036", -9223372036000000000},
	} {
		sub := influxSub
		sub.Influx.Precision = tc.precision
		r := mustRouter(t, false, sub)
		rs, err := r.decode(nil, "lp/s1", []byte("m v=1 "+tc.ts), arrival)
		if err != nil || len(rs) != 1 || rs[0].Time != tc.want {
			t.Errorf("precision %q: decode(m v=1 %s) = %v, %v; want time %d", tc.precision, tc.ts, rs, err, tc.want)
		}
	}
	sub := influxSub
	sub.Influx.Precision = "s"
	r := mustRouter(t, false, sub)
	for _, ts := range []string{"9223372037", "-9223372037", "9223372036854775808"} {
		rs, err := r.decode(nil, "lp/s1", []byte("m v=1 "+ts+"\nm v=2"), arrival)
		if err != nil || len(rs) != 1 || rs[0].Value != 2 || r.sk.count(skipBadLine) != 1 {
			t.Errorf("precision s: decode(m v=1 %s) = %v, %v, skipped %+v; want the line skipped as bad_line", ts, rs, err, r.sk.list)
		}
	}
}

// TestInfluxResync checks that a line that does not parse costs only
// itself, whatever it holds, by comparing with each line decoded alone.
func TestInfluxResync(t *testing.T) {
	bad := []string{
		`m s="unclosed`,
		`m s="unclosed,v=1 1`,
		`m s="a\" still open`,
		`m,t=a\`,
		`m v=1 1 2`,
		`m v=1\r m v=2`,
		"# comment with a \x01 control character",
		"\x00",
		`m v=1,`,
		`m v=1,,w=2`,
		`,t=a v=1`,
		`m,=a v=1`,
		`m,t= v=1`,
		`m v="a"x`,
		`m v=1 -`,
		`m v=1 1x`,
		`m v=1e999`,
		`m v=-Inf`,
		`m v=99999999999999999999i`,
		`m v=-1u`,
		`m v=tru`,
		"m v=\xff",
		`m,t=a,t=b v=1`,
		`m "x=1`,
		`m v=1 "`,
		`m x="a",y="b`,
	}
	good := []string{`m v=1 1`, `m,t=a v=2 2`, `m s="closed",v=3 3`, `m v=4`}
	for _, b := range bad {
		for _, g := range good {
			for _, payload := range []string{b + "\n" + g, g + "\n" + b + "\n" + g, b + "\r\n" + g + "\r\n" + b} {
				for _, sub := range fuzzInfluxSubs {
					r := mustRouter(t, false, sub)
					checkInfluxPayload(t, r, sub, []byte(payload))
				}
			}
		}
	}
}

func TestStringsClose(t *testing.T) {
	for _, tc := range []struct {
		line string
		want bool
	}{
		{`m v=1`, true},
		{`m s="a"`, true},
		{`m s="a`, false},
		{`m s="a\"`, false},
		{`m s="a\\"`, true},
		{`m,t=a"b v=1`, true},
		{`m\ x,t=a\ "b s="c`, false},
		{`m\ x,t=a\ "b v=1`, true},
		{`m a=1,s="x`, false},
		{`m a=1 s="x`, true}, // the timestamp section: a syntax error, no string
		{`m "k"=1`, true},
		{`m "k"="v`, false},
		{`# m s="x`, true},
		{`  m s="x`, false},
		{`m s="a",t="b`, false},
		{`m s="a",t="b"`, true},
		{`m s="a"x="b`, true}, // an error after the closed string
	} {
		if got := stringsClose([]byte(tc.line)); got != tc.want {
			t.Errorf("stringsClose(%q) = %v; want %v", tc.line, got, tc.want)
		}
	}
}

func TestSenMLSeconds(t *testing.T) {
	for _, tc := range []struct {
		num  string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"-0", 0, true},
		{"1", 1e9, true},
		{"1.320067464e+09", 1320067464e9, true},
		{"1.276020076001e+09", 1276020076001e6, true},
		{"1700000000.123456789", 1700000000123456789, true},
		{"1700000000.1234567899", 1700000000123456789, true},
		{"-0.0000000019", -1, true},
		{"0.0000000009", 0, true},
		{"-1.5e-3", -1500000, true},
		{"1E2", 100e9, true},
		{"0.5e1", 5e9, true},
		{"000.001", 1e6, true},
		{"9.223372036854775807e9", math.MaxInt64, true},
		{"9.223372036854775808e9", 0, false},
		{"-9.223372036854775807e9", -math.MaxInt64, true},
		{"1e300", 0, false},
		{"1e-300", 0, true},
		{"0e999999999999", 0, true},
		{"1e999999999999", 0, false},
		{"1e-999999999999", 0, true},
		{"12345678901234567890", 0, false},
	} {
		got, ok := decimalNanos([]byte(tc.num), 1e9)
		if got != tc.want || ok != tc.ok {
			t.Errorf("decimalNanos(%s, 1e9) = %d, %v; want %d, %v", tc.num, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSenMLEscapedLabels(t *testing.T) {
	r := mustRouter(t, false, senmlSub)
	rs, err := r.decode(nil, "senml/d1", []byte(`[{"\u006e":"t\u00e9mp","\u0076":1.5,"\u0075":"Cel"}]`), arrival)
	want := "senml,device=d1,unit=Cel témp=1.5 1700000000000000000\n"
	if err != nil || lineProtocol(rs) != want {
		t.Errorf("decode with escaped labels = %v\n%s; want\n%s", err, lineProtocol(rs), want)
	}
}

// TestFormatsRejections checks that a rejection returns dst as it was, is a
// *RejectError, and leaves no skips to count besides it.
func TestFormatsRejections(t *testing.T) {
	for _, tc := range []struct {
		sub     Subscription
		topic   string
		payload string
		reason  string
	}{
		{influxSub, "lp/s1", "", reasonNoValue},
		{influxSub, "lp/s1", "m s=\"x\"\nm b=true\n", reasonNoValue},
		{influxSub, "lp/s1", "bad\nm b=true\n", reasonNoValue},
		{influxSub, "lp/s1", "m b=true\nbad\n", reasonNoValue},
		{senmlSub, "senml/d1", `[{"n":"x"},{"n":"y","vs":"a"}]`, reasonNoValue},
		{senmlSub, "senml/d1", `[{"n":"y","vs":"a"},{"n":"x"}]`, reasonNoValue},
		{senmlSub, "senml/d1", `[{"n":"a","v":1},{"n":"b","v":2}`, reasonBadPayload},
		{senmlSub, "senml/d1", `[{"n":"a","v":1}] x`, reasonBadPayload},
		{senmlSub, "senml/d1", `[{"n":"a","v":1},{"n":"b","v":2,"n":"c"}]`, reasonDuplicateKey},
		{senmlSub, "senml/d1", `[{"n":"a","v":1},{"n":"b","x":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}]`, reasonBadPayload},
		{senmlSub, "senml/d1", `"text"`, reasonBadPayload},
		{senmlSub, "senml/d1", `[`, reasonBadPayload},
	} {
		r := mustRouter(t, false, tc.sub)
		dst := []edgegw.Reading{{Field: "kept"}}
		rs, err := r.decode(dst, tc.topic, []byte(tc.payload), arrival)
		var re *RejectError
		if !errors.As(err, &re) || re.Reason != tc.reason || len(rs) != 1 || rs[0].Field != "kept" {
			t.Errorf("%s: decode(%q) = %v, %v; want a %s rejection and dst as given", tc.sub.Format, tc.payload, rs, err, tc.reason)
			continue
		}
		if len(r.sk.list) != 0 {
			t.Errorf("%s: decode(%q) rejected and also skipped %+v; want the rejection only", tc.sub.Format, tc.payload, r.sk.list)
		}
		if !strings.Contains(re.Msg, "format "+tc.sub.Format) && tc.reason != reasonDuplicateKey {
			t.Errorf("%s: rejection %q does not say what is accepted", tc.sub.Format, re.Msg)
		}
	}
}

// TestFormatsAllocs checks the allocations of a known message without
// skipped parts (the details of skips are formatted for each message):
// senml makes none once its names and series are interned; influx makes
// one, the buffer of lineprotocol's decoder.
func TestFormatsAllocs(t *testing.T) {
	for _, tc := range []struct {
		sub     Subscription
		topic   string
		payload string
		max     float64
	}{
		{influxSub, "lp/s1", "home,room=kitchen temp=21.5,hum=40,co=3i 1700000000000000000\nhome,room=living temp=20.5,hum=41,co=2i 1700000000000000000\n", 1},
		{influxSub, "lp/s1", "home,room=kitchen temp=21.5,hum=40 1700000000000000000\n# \"quoted\"\nhome,room=living temp=20.5 1700000000000000000\n", 1},
		{senmlSub, "senml/d1", `[{"bn":"dev1:","bt":1.7e9,"bu":"Cel","n":"t","v":21.5},{"n":"h","u":"%RH","v":40,"t":-1.5},{"n":"e","u":"kWh","s":123.5}]`, 0},
		{senmlSub, "senml/d1", `[{"bn":"dev1:","n":"t","v":21.5,"l":"x","ut":60,"x":{"y":[1]}},{"\u006e":"h\u00e9","v":4}]`, 0},
	} {
		r := mustRouter(t, false, tc.sub)
		payload := []byte(tc.payload)
		var rs []edgegw.Reading
		rs, _ = r.decode(rs, tc.topic, payload, arrival)
		n := testing.AllocsPerRun(100, func() {
			var err error
			if rs, err = r.decode(rs[:0], tc.topic, payload, arrival); err != nil {
				t.Fatal(err)
			}
		})
		if n > tc.max {
			t.Errorf("%s: %v allocations per message; want at most %v", tc.sub.Format, n, tc.max)
		}
	}
}

// TestFormatsInternBounded checks that the series each decoder remembers
// stay bounded however many tags a payload brings.
func TestFormatsInternBounded(t *testing.T) {
	ri := mustRouter(t, false, influxSub)
	rs := mustRouter(t, false, senmlSub)
	for i := range maxInterned + 10 {
		if _, err := ri.decode(nil, "lp/s1", []byte("m,t="+strconv.Itoa(i)+" v=1"), arrival); err != nil {
			t.Fatal(err)
		}
		if _, err := rs.decode(nil, "senml/d1", []byte(`[{"n":"v","u":"u`+strconv.Itoa(i)+`","v":1}]`), arrival); err != nil {
			t.Fatal(err)
		}
	}
	di := ri.routes[0].dec.(*influxDecoder)
	ds := rs.routes[0].dec.(*senmlDecoder)
	if len(di.series) > maxInterned || len(ds.series) > maxInterned {
		t.Errorf("series remembered: influx %d, senml %d; want at most %d", len(di.series), len(ds.series), maxInterned)
	}
}

// TestInfluxMany decodes a payload of many lines with a bad one among them.
func TestInfluxMany(t *testing.T) {
	var b strings.Builder
	for i := range 1000 {
		if i == 500 {
			b.WriteString("m,room=a temp=\n")
		}
		fmt.Fprintf(&b, "m,room=r%d temp=%d,note=\"n\" %d\n", i%7, i, i)
	}
	r := mustRouter(t, false, influxSub)
	rs, err := r.decode(nil, "lp/s1", []byte(b.String()), arrival)
	if err != nil || len(rs) != 1000 || r.sk.count(skipBadLine) != 1 || r.sk.count(skipStringField) != 1000 {
		t.Fatalf("decode of 1001 lines = %d readings, %v, skipped %+v; want 1000 readings, 1 bad line, 1000 string fields", len(rs), err, r.sk.list)
	}
	for i, rd := range rs {
		if rd.Value != float64(i) || rd.Time != int64(i) || rd.Series != "m,room=r"+strconv.Itoa(i%7)+",site=s1" {
			t.Fatalf("reading %d = %+v", i, rd)
		}
	}
}
