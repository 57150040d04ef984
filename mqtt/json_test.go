package mqtt

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/edgegw/edgegw"
)

// jsonBase is the subscription the format json tests start from.
var jsonBase = Subscription{Topic: "sensors/{site}/{device}", Format: "json", Measurement: "m",
	JSON: JSONOptions{TimeKey: "ts", TimeUnit: "ms", ValueKey: "value"}}

// jsonFieldBase is jsonBase on a topic that names the field.
var jsonFieldBase = Subscription{Topic: "sensors/{site}/{device}/{field}", Format: "json", Measurement: "m",
	JSON: JSONOptions{TimeKey: "ts", TimeUnit: "ms", ValueKey: "value"}}

// sortedLines writes readings as sorted line-protocol lines, with the time
// "arrival" for the arrival time, so that a table reads easily.
func sortedLines(rs []edgegw.Reading) string {
	lines := strings.Split(strings.TrimSuffix(lineProtocol(rs), "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, " "+strconv.FormatInt(arrival, 10)) + map[bool]string{true: " arrival"}[strings.HasSuffix(l, " "+strconv.FormatInt(arrival, 10))]
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// skipCounts writes what a decode skipped as "reason xN" in order.
func skipCounts(sk *skips) string {
	var s []string
	for _, k := range sk.list {
		s = append(s, fmt.Sprintf("%s x%d", k.reason, k.n))
	}
	return strings.Join(s, ", ")
}

func TestJSONDecode(t *testing.T) {
	with := func(sub Subscription, f func(*Subscription)) Subscription {
		f(&sub)
		return sub
	}
	const berlinNoon = "1714557600000000000" // 2024-05-01T12:00:00 in Europe/Berlin (+02:00)
	for _, tc := range []struct {
		name    string
		sub     Subscription
		topic   string // default sensors/s1/d1
		payload string
		want    string // sorted lines; time "arrival" for the arrival time
		skips   string
	}{
		{name: "nested objects and arrays", sub: jsonBase,
			payload: `{"AM2301":{"Temperature":24.6,"Humidity":58.2},"ENERGY":{"Total":[2.813,0.254],"Power":120},"a":[{"b":1},[2,{"c":3}]],"e":{},"f":[]}`,
			want: `m,device=d1,site=s1 AM2301_Humidity=58.2 arrival
m,device=d1,site=s1 AM2301_Temperature=24.6 arrival
m,device=d1,site=s1 ENERGY_Power=120 arrival
m,device=d1,site=s1 ENERGY_Total_0=2.813 arrival
m,device=d1,site=s1 ENERGY_Total_1=0.254 arrival
m,device=d1,site=s1 a_0_b=1 arrival
m,device=d1,site=s1 a_1_0=2 arrival
m,device=d1,site=s1 a_1_1_c=3 arrival`},
		{name: "strings, null and booleans skipped silently", sub: jsonBase,
			payload: `{"s":"x","n":null,"b":true,"o":{"s":"y","b":false,"n":null},"l":["a",true,null],"v":1}`,
			want:    `m,device=d1,site=s1 v=1 arrival`},
		{name: "booleans read as 1 and 0", sub: with(jsonBase, func(s *Subscription) { s.Booleans = true }),
			payload: `{"s":"x","n":null,"b":true,"o":{"b":false},"l":[true],"v":1}`,
			want: `m,device=d1,site=s1 b=1 arrival
m,device=d1,site=s1 l_0=1 arrival
m,device=d1,site=s1 o_b=0 arrival
m,device=d1,site=s1 v=1 arrival`},
		{name: "invalid UTF-8 in an unread string", sub: jsonBase,
			payload: "{\"s\":\"\xff\xfe\",\"v\":1}",
			want:    `m,device=d1,site=s1 v=1 arrival`},
		{name: "escaped names", sub: jsonBase,
			payload: `{"temp\u00e9rature":1,"a\"b":{"c\\d":2},"\ud83d\ude00":3,"\ud800":4}`,
			want: `m,device=d1,site=s1 a"b_c\d=2 arrival
m,device=d1,site=s1 température=1 arrival
m,device=d1,site=s1 ` + "\uFFFD" + `=4 arrival
m,device=d1,site=s1 ` + "\U0001F600" + `=3 arrival`},
		{name: "time_key nested", sub: with(jsonBase, func(s *Subscription) { s.JSON.TimeKey = "meta.ts" }),
			payload: `{"meta":{"ts":1700000001000,"seq":5},"v":1,"ts":7}`,
			want: `m,device=d1,site=s1 meta_seq=5 1700000001000000000
m,device=d1,site=s1 ts=7 1700000001000000000
m,device=d1,site=s1 v=1 1700000001000000000`},
		{name: "time absent or null", sub: jsonBase,
			payload: `[{"v":1},{"v":2,"ts":null}]`,
			want: `m,device=d1,site=s1 v=1 arrival
m,device=d1,site=s1 v=2 arrival`},
		{name: "time_unit auto", sub: with(jsonBase, func(s *Subscription) { s.JSON.TimeUnit = "auto" }),
			payload: `[{"ts":1700000001,"s":1},{"ts":1700000001.5,"s":2},{"ts":1700000001234,"ms":1},{"ts":1700000001234567,"us":1},{"ts":1700000001234567891,"ns":1},{"ts":0,"zero":1}]`,
			want: `m,device=d1,site=s1 ms=1 1700000001234000000
m,device=d1,site=s1 ns=1 1700000001234567891
m,device=d1,site=s1 s=1 1700000001000000000
m,device=d1,site=s1 s=2 1700000001500000000
m,device=d1,site=s1 us=1 1700000001234567000
m,device=d1,site=s1 zero=1 0`},
		{name: "RFC 3339 times", sub: jsonBase,
			payload: `[{"ts":"2024-05-01T12:00:00Z","a":1},{"ts":"2024-05-01T14:00:00.5+02:00","a":2},{"ts":"2024-05-01 12:00:00z","a":3},{"ts":"2024-05-01t07:30:00-04:30","a":4}]`,
			want: `m,device=d1,site=s1 a=1 1714564800000000000
m,device=d1,site=s1 a=2 1714564800500000000
m,device=d1,site=s1 a=3 1714564800000000000
m,device=d1,site=s1 a=4 1714564800000000000`},
		{name: "zone-less times in time_zone", sub: with(jsonBase, func(s *Subscription) { s.JSON.TimeZone = "Europe/Berlin" }),
			payload: `[{"ts":"2024-05-01T12:00:00","a":1},{"ts":"2024-05-01 12:00:00.25","a":2},{"ts":"2024-01-01T00:00:00","a":3},{"ts":"2024-05-01T12:00:00Z","a":4}]`,
			want: `m,device=d1,site=s1 a=1 ` + berlinNoon + `
m,device=d1,site=s1 a=2 1714557600250000000
m,device=d1,site=s1 a=3 1704063600000000000
m,device=d1,site=s1 a=4 1714564800000000000`},
		{name: "zone-less times without time_zone take the arrival time, counted per reading", sub: jsonBase,
			payload: `[{"ts":"2024-05-01T12:00:00","a":1,"b":{"c":2}},{"ts":"2024-05-01T12:00:00Z","a":3}]`,
			want: `m,device=d1,site=s1 a=1 arrival
m,device=d1,site=s1 a=3 1714564800000000000
m,device=d1,site=s1 b_c=2 arrival`,
			skips: "no_zone x2"},
		{name: "time_format with a zone", sub: with(jsonBase, func(s *Subscription) { s.JSON.TimeFormat = "02.01.2006 15:04:05 -0700" }),
			payload: `[{"ts":"01.05.2024 12:00:00 +0200","a":1},{"ts":"2024-05-01T10:00:00Z","a":2}]`,
			want: `m,device=d1,site=s1 a=1 ` + berlinNoon + `
m,device=d1,site=s1 a=2 ` + berlinNoon},
		{name: "time_format without a zone, in time_zone", sub: with(jsonBase, func(s *Subscription) {
			s.JSON.TimeFormat, s.JSON.TimeZone = "02.01.2006 15:04", "America/New_York"
		}),
			payload: `{"ts":"01.05.2024 12:00","a":1}`,
			want:    `m,device=d1,site=s1 a=1 1714579200000000000`},
		{name: "time_format without a zone, no time_zone", sub: with(jsonBase, func(s *Subscription) { s.JSON.TimeFormat = "Jan _2 2006 15:04:05" }),
			payload: `{"ts":"May  1 2024 12:00:00","a":1,"b":2}`,
			want: `m,device=d1,site=s1 a=1 arrival
m,device=d1,site=s1 b=2 arrival`,
			skips: "no_zone x2"},
		{name: "value_key path", sub: with(jsonFieldBase, func(s *Subscription) { s.JSON.ValueKey = "data.v" }),
			topic:   "sensors/s1/d1/temperature",
			payload: `{"data":{"v":21.5,"w":3},"x":4,"ts":1700000005000}`,
			want:    `m,device=d1,site=s1 temperature=21.5 1700000005000000000`},
		{name: "value_key in records", sub: with(jsonFieldBase, func(s *Subscription) {
			s.JSON.ValueKey, s.JSON.TimeKey, s.JSON.TimeUnit = "readings.*.v", "readings.*.t", "s"
		}),
			topic:   "sensors/s1/d1/temperature",
			payload: `{"readings":[{"t":1700000005,"v":1},{"t":1700000060,"v":2,"w":9}],"battery":3}`,
			want: `m,device=d1,site=s1 temperature=1 1700000005000000000
m,device=d1,site=s1 temperature=2 1700000060000000000`},
		{name: "value_key boolean", sub: with(jsonFieldBase, func(s *Subscription) { s.Booleans = true }),
			topic: "sensors/s1/d1/relay", payload: `{"value":true}`,
			want: `m,device=d1,site=s1 relay=1 arrival`},
		{name: "value_key numeric string", sub: with(jsonFieldBase, func(s *Subscription) { s.JSON.NumericStrings = []string{"value"} }),
			topic: "sensors/s1/d1/temperature", payload: `[{"value":"21.5"},{"value":"x"},{"value":22}]`,
			want: `m,device=d1,site=s1 temperature=21.5 arrival
m,device=d1,site=s1 temperature=22 arrival`,
			skips: "bad_number x1"},
		{name: "value_key overflow skipped", sub: jsonFieldBase,
			topic: "sensors/s1/d1/temperature", payload: `[{"value":1e999},{"value":2}]`,
			want: `m,device=d1,site=s1 temperature=2 arrival`, skips: "non_finite x1"},
		{name: "tag_keys paths", sub: with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"device.name", "device.rev", "device.ok", "site"} }),
			payload: `{"device":{"name":"kitchen","rev":3,"ok":true,"rssi":-70},"site":"s9","v":1}`,
			want: `m,device=d1,name=kitchen,ok=true,rev=3,site=s9 device_rssi=-70 arrival
m,device=d1,name=kitchen,ok=true,rev=3,site=s9 v=1 arrival`},
		{name: "tag_keys null, object or absent", sub: with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"unit", "loc"} }),
			payload: `[{"unit":null,"v":1},{"loc":{"x":2}},{"v":3}]`,
			want: `m,device=d1,site=s1 loc_x=2 arrival
m,device=d1,site=s1 v=1 arrival
m,device=d1,site=s1 v=3 arrival`},
		{name: "fields: paths and globs, an object names its leaves", sub: with(jsonBase, func(s *Subscription) { s.JSON.Fields = []string{"temp*", "ENERGY", "list.*.v", "Total.1"} }),
			payload: `{"temperature":1,"temp2":2,"humidity":3,"ENERGY":{"Total":[1,2],"Power":3},"list":[{"v":1,"w":2},{"v":3}],"Total":[5,6]}`,
			want: `m,device=d1,site=s1 ENERGY_Power=3 arrival
m,device=d1,site=s1 ENERGY_Total_0=1 arrival
m,device=d1,site=s1 ENERGY_Total_1=2 arrival
m,device=d1,site=s1 Total_1=6 arrival
m,device=d1,site=s1 list_0_v=1 arrival
m,device=d1,site=s1 list_1_v=3 arrival
m,device=d1,site=s1 temp2=2 arrival
m,device=d1,site=s1 temperature=1 arrival`},
		{name: "exclude: paths and globs", sub: with(jsonBase, func(s *Subscription) { s.JSON.Exclude = []string{"ENERGY.Total", "*.raw*", "rssi", "l.[0-1]"} }),
			payload: `{"ENERGY":{"Total":[1,2],"Power":3,"raw1":4},"rssi":5,"a":{"rssi":6},"l":[7,8,9]}`,
			want: `m,device=d1,site=s1 ENERGY_Power=3 arrival
m,device=d1,site=s1 a_rssi=6 arrival
m,device=d1,site=s1 l_2=9 arrival`},
		{name: "numeric_strings", sub: with(jsonBase, func(s *Subscription) { s.JSON.NumericStrings = []string{"battery", "sensors.*"} }),
			payload: `{"battery":"3.61","other":"4","sensors":{"a":" 1.5 ","b":"n/a","c":"1e999","d":"-2e1"}}`,
			want: `m,device=d1,site=s1 battery=3.61 arrival
m,device=d1,site=s1 sensors_a=1.5 arrival
m,device=d1,site=s1 sensors_d=-20 arrival`,
			skips: "bad_number x1, non_finite x1"},
		{name: "records: Tasmota ZbReceived keyed by short address", sub: with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"ZbReceived.*.Device"} }),
			payload: `{"ZbReceived":{"0x6A8D":{"Device":"0x6A8D","Name":"Kitchen","Temperature":21.5,"Humidity":45.2},"0x1F02":{"Device":"0x1F02","Temperature":19,"Power":{"W":[5]}}},"Uptime":5}`,
			want: `m,Device=0x1F02,device=d1,site=s1 Power_W_0=5 arrival
m,Device=0x1F02,device=d1,site=s1 Temperature=19 arrival
m,Device=0x6A8D,device=d1,site=s1 Humidity=45.2 arrival
m,Device=0x6A8D,device=d1,site=s1 Temperature=21.5 arrival
m,device=d1,site=s1 Uptime=5 arrival`},
		{name: "records: the member name as tag", sub: with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"ZbReceived.*"} }),
			payload: `{"ZbReceived":{"0x6A8D":{"Device":"0x6A8D","Temperature":21.5},"0x1F02":{"Temperature":19}}}`,
			want: `m,ZbReceived=0x1F02,device=d1,site=s1 Temperature=19 arrival
m,ZbReceived=0x6A8D,device=d1,site=s1 Temperature=21.5 arrival`},
		{name: "records: * as the whole path gives tag key", sub: with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"*"} }),
			payload: `{"kitchen":{"t":1},"hall":{"t":2,"h":[3]},"n":3}`,
			want: `m,device=d1,key=hall,site=s1 h_0=3 arrival
m,device=d1,key=hall,site=s1 t=2 arrival
m,device=d1,key=kitchen,site=s1 t=1 arrival
m,device=d1,site=s1 n=3 arrival`},
		{name: "records: arrays of objects with their own times, root tags", sub: with(jsonBase, func(s *Subscription) {
			s.JSON.TimeKey, s.JSON.TimeUnit, s.JSON.TagKeys = "data.*.ts", "s", []string{"gw", "data.*.id"}
		}),
			payload: `{"gw":"g1","data":[{"ts":1700000005,"id":"a","v":1},{"id":"b","v":2},{"ts":1700000060,"v":3}],"rssi":-5}`,
			want: `m,device=d1,gw=g1,id=a,site=s1 v=1 1700000005000000000
m,device=d1,gw=g1,id=b,site=s1 v=2 arrival
m,device=d1,gw=g1,site=s1 rssi=-5 arrival
m,device=d1,gw=g1,site=s1 v=3 1700000060000000000`},
		{name: "records: root time and tags after the records, a record tag replacing a root tag", sub: with(jsonBase, func(s *Subscription) {
			s.JSON.TimeKey, s.JSON.TimeZone, s.JSON.TagKeys = "Time", "Europe/Berlin", []string{"ZbReceived.*.Device", "Device"}
		}),
			payload: `{"ZbReceived":{"0x1":{"Device":"0x1","T":1},"0x2":{"T":2}},"Device":"bridge","Time":"2024-05-01T12:00:00"}`,
			want: `m,Device=0x1,device=d1,site=s1 T=1 ` + berlinNoon + `
m,Device=bridge,device=d1,site=s1 T=2 ` + berlinNoon},
		{name: "records: a zone-less root time counted for the records' readings", sub: with(jsonBase, func(s *Subscription) {
			s.JSON.TimeKey, s.JSON.TagKeys = "Time", []string{"ZbReceived.*.Device"}
		}),
			payload: `{"ZbReceived":{"0x1":{"Device":"0x1","T":1,"H":2}},"Time":"2024-05-01T12:00:00"}`,
			want: `m,Device=0x1,device=d1,site=s1 H=2 arrival
m,Device=0x1,device=d1,site=s1 T=1 arrival`,
			skips: "no_zone x2"},
		{name: "records: fields and exclude relative to the record", sub: with(jsonBase, func(s *Subscription) {
			s.JSON.TagKeys, s.JSON.Fields, s.JSON.Exclude = []string{"Zb.*.Device"}, []string{"Temp*", "Uptime", "Power"}, []string{"Power.raw"}
		}),
			payload: `{"Zb":{"0x1":{"Device":"0x1","Temperature":1,"Humidity":2,"Power":{"W":3,"raw":4}}},"Uptime":5,"Temperature":6,"Load":7}`,
			want: `m,Device=0x1,device=d1,site=s1 Power_W=3 arrival
m,Device=0x1,device=d1,site=s1 Temperature=1 arrival
m,device=d1,site=s1 Temperature=6 arrival
m,device=d1,site=s1 Uptime=5 arrival`},
		{name: "records: a member at the record path that is not an object", sub: with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"Zb.*.Device"} }),
			payload: `{"Zb":{"a":5,"b":{"Device":"x","v":1},"c":[6]}}`,
			want: `m,Device=x,device=d1,site=s1 v=1 arrival
m,device=d1,site=s1 Zb_a=5 arrival
m,device=d1,site=s1 Zb_c_0=6 arrival`},
		{name: "top-level array: each element its own time and tags", sub: with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"probe"} }),
			payload: `[{"ts":1700000005000,"a":1,"probe":"x"},{"ts":1700000060000,"a":2,"b":{"c":3}},{"a":4}]`,
			want: `m,device=d1,probe=x,site=s1 a=1 1700000005000000000
m,device=d1,site=s1 a=2 1700000060000000000
m,device=d1,site=s1 a=4 arrival
m,device=d1,site=s1 b_c=3 1700000060000000000`},
		{name: "bad names skipped and counted", sub: jsonBase,
			payload: "{\"\":1,\"a\\u0000b\":2,\"\\u007f\":{\"x\":1,\"y\":2},\"\xff\":3,\"t\\u0001\":true,\"s\\u0001\":\"x\",\"ok\":{\"\":4,\"v\":5}}",
			want:    `m,device=d1,site=s1 ok_v=5 arrival`,
			skips:   "bad_name x5"},
		{name: "bad tag values skipped and counted", sub: with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"unit"} }),
			payload: "[{\"unit\":\"\",\"v\":1},{\"unit\":\"C\\u0001\",\"v\":2},{\"unit\":\"\xff\",\"v\":3},{\"unit\":\"C\",\"v\":4}]",
			want: `m,device=d1,site=s1 v=1 arrival
m,device=d1,site=s1 v=2 arrival
m,device=d1,site=s1 v=3 arrival
m,device=d1,site=s1,unit=C v=4 arrival`,
			skips: "bad_name x3"},
		{name: "numbers beyond float64 skipped and counted", sub: jsonBase,
			payload: `{"a":1e999,"b":{"c":-1e999},"d":[1e400],"e":1e-400,"f":2}`,
			want: `m,device=d1,site=s1 e=0 arrival
m,device=d1,site=s1 f=2 arrival`,
			skips: "non_finite x3"},
		{name: "a known shape in another order", sub: jsonBase,
			payload: `[{"a":1,"b":{"c":2,"d":3}},{"b":{"d":4,"c":5},"a":6},{"e":7,"b":{"c":8}}]`,
			want: `m,device=d1,site=s1 a=1 arrival
m,device=d1,site=s1 a=6 arrival
m,device=d1,site=s1 b_c=2 arrival
m,device=d1,site=s1 b_c=5 arrival
m,device=d1,site=s1 b_c=8 arrival
m,device=d1,site=s1 b_d=3 arrival
m,device=d1,site=s1 b_d=4 arrival
m,device=d1,site=s1 e=7 arrival`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRouter(t, false, tc.sub)
			topic := tc.topic
			if topic == "" {
				topic = "sensors/s1/d1"
			}
			for i := range 2 { // the second time, every path is known
				rs, err := r.decode(nil, topic, []byte(tc.payload), arrival)
				if err != nil {
					t.Fatalf("decode(%s) #%d: %v", tc.payload, i, err)
				}
				checkReadings(t, rs)
				if got := sortedLines(rs); got != tc.want {
					t.Errorf("decode(%s) #%d:\n%s\nwant:\n%s", tc.payload, i, got, tc.want)
				}
				if got := skipCounts(&r.sk); got != tc.skips {
					t.Errorf("decode(%s) #%d skipped %q; want %q: %s", tc.payload, i, got, tc.skips, skipLines(&r.sk))
				}
			}
		})
	}
}

func TestJSONRejects(t *testing.T) {
	with := func(sub Subscription, f func(*Subscription)) Subscription {
		f(&sub)
		return sub
	}
	for _, tc := range []struct {
		sub     Subscription
		payload string
		reason  string
		msg     string // a part of the message
	}{
		{jsonBase, ``, reasonNoValue, "empty"},
		{jsonBase, ` `, reasonNoValue, "empty"},
		{jsonBase, `{}`, reasonNoValue, "no numeric member"},
		{jsonBase, `[]`, reasonNoValue, "no numeric member"},
		{jsonBase, `{"a":"x","b":{"c":[null]}}`, reasonNoValue, "no numeric member"},
		{jsonBase, "\x00", reasonBadPayload, "not valid JSON at byte 0"},
		{jsonBase, ` {"a":1}` + "\x00", reasonBadPayload, "data after the JSON value"},
		{jsonBase, `42`, reasonBadPayload, "not an object"},
		{jsonBase, `"x"`, reasonBadPayload, "not an object"},
		{jsonBase, `[1,2]`, reasonBadPayload, "an array element is not an object"},
		{jsonBase, `[{"a":1},[{"b":2}]]`, reasonBadPayload, "an array element is not an object"},
		{jsonBase, `{"a":1`, reasonBadPayload, "not valid JSON"},
		{jsonBase, `{"a":1}x`, reasonBadPayload, "data after the JSON value"},
		{jsonBase, `{"a":01}`, reasonBadPayload, "not valid JSON"},
		{jsonBase, `{"a":1,}`, reasonBadPayload, "not valid JSON"},
		{jsonBase, `{"a":tru}`, reasonBadPayload, "malformed literal"},
		{jsonBase, `{"a":[1,]}`, reasonBadPayload, "not valid JSON"},
		{jsonBase, `{"a":{"b":1]}`, reasonBadPayload, "not valid JSON"},
		{jsonBase, "{\"a\":\"x\ny\",\"b\":1}", reasonBadPayload, "malformed string"},
		{jsonBase, `{"a":"\x"}`, reasonBadPayload, "malformed string"},
		{jsonBase, `{"ts":"yesterday","a":`, reasonBadPayload, "not valid JSON"}, // bad JSON wins over a bad time
		{jsonBase, `{"a":1,"a":2,"b":`, reasonBadPayload, "not valid JSON"},      // and over a duplicate
		{jsonBase, `{"a":1,"a":2}`, reasonDuplicateKey, `member "a" appears twice in the object at the top`},
		{jsonBase, `{"o":{"x":1,"y":2,"x":3}}`, reasonDuplicateKey, `member "x" appears twice in the object at o`},
		{jsonBase, `{"a":1,"\u0061":2}`, reasonDuplicateKey, "appears twice"},
		{jsonBase, `[{"a":1},{"b":1,"b":2}]`, reasonDuplicateKey, "appears twice"},
		{jsonBase, `{"v":1,"meta":{"s":"x","s":"y"}}`, reasonDuplicateKey, "appears twice"},
		{jsonBase, `{"":1,"":2}`, reasonDuplicateKey, "appears twice"},
		{with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"Zb.*.Device"} }), `{"Zb":{"a":{"Device":"x","v":1,"v":2}}}`, reasonDuplicateKey, "appears twice in the object at Zb.*"},
		{jsonBase, `{"ts":"yesterday","a":1}`, reasonBadTime, `time member "ts" is "yesterday"; expected a number in ms (time_unit) or an RFC 3339 string`},
		{jsonBase, `{"ts":true,"a":1}`, reasonBadTime, `time member "ts" is true`},
		{jsonBase, `{"ts":{"x":1},"a":1}`, reasonBadTime, `is an object or array`},
		{jsonBase, `{"ts":[1],"a":1}`, reasonBadTime, `is an object or array`},
		{jsonBase, `{"ts":9e300,"a":1}`, reasonBadTime, `time member "ts" is 9e300`},
		{jsonBase, `{"ts":"2024-02-30T00:00:00Z","a":1}`, reasonBadTime, "2024-02-30"},
		{jsonBase, `{"ts":"2024-05-01T24:00:00Z","a":1}`, reasonBadTime, "24:00"},
		{jsonBase, `{"ts":"2024-05-01T12:00:00+24:00","a":1}`, reasonBadTime, "+24:00"},
		{jsonBase, `{"ts":"3000-01-01T00:00:00Z","a":1}`, reasonBadTime, "within years 1678-2261"},
		{jsonBase, `{"ts":"2024-05-01T12:00:00.Z","a":1}`, reasonBadTime, "12:00:00.Z"},
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeFormat = "02.01.2006" }), `{"ts":"2024/05/01","a":1}`, reasonBadTime, `, a string in time_format "02.01.2006" or an RFC 3339 string`},
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeUnit = "auto" }), `{"ts":1e30,"a":1}`, reasonBadTime, "(time_unit auto)"},
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeKey = "r.*.t"; s.JSON.TimeUnit = "s" }), `{"r":{"x":{"t":"soon","v":1}}}`, reasonBadTime, `time member "r.*.t" is "soon"`},
		{jsonFieldBase, `{"value":"21.5"}`, reasonBadNumber, `member "value" is a string`},
		{jsonFieldBase, `{"value":true}`, reasonBadNumber, "set booleans: true"},
		{jsonFieldBase, `{"value":{"a":1}}`, reasonBadNumber, "is an object or array"},
		{jsonFieldBase, `{"v":1}`, reasonNoValue, `an object has no number member "value"`},
		{jsonFieldBase, `{"value":null}`, reasonNoValue, `an object has no number member "value"`},
		{jsonFieldBase, `[{"value":1},{"v":2}]`, reasonNoValue, `an object has no number member "value"`},
		{with(jsonFieldBase, func(s *Subscription) { s.JSON.ValueKey = "r.*.v" }), `{"r":[{"v":1},{"w":2}]}`, reasonNoValue, `record "1" at r.* has no number member "v"`},
		{with(jsonFieldBase, func(s *Subscription) { s.JSON.ValueKey = "r.*.v" }), `{"r":[]}`, reasonNoValue, "no readings"},
		{jsonBase, `{"a":1e999}`, reasonNoValue, `nothing read: member "a" is 1e999, beyond float64`},
		{jsonBase, `{"":1}`, reasonNoValue, `nothing read: member "" at the top is skipped: its name is empty`},
		{jsonBase, `{"a":{"\u0001":1}}`, reasonNoValue, "holds a control character"},
		{jsonBase, "{\"\xff\":1}", reasonNoValue, "not valid UTF-8"},
		{with(jsonBase, func(s *Subscription) { s.JSON.NumericStrings = []string{"a"} }), `{"a":"x"}`, reasonNoValue, `nothing read: member "a" is "x", not a number`},
	} {
		r := mustRouter(t, false, tc.sub)
		topic := "sensors/s1/d1"
		if strings.Contains(tc.sub.Topic, "{field}") {
			topic += "/temperature"
		}
		dst := []edgegw.Reading{{Field: "kept"}}
		rs, err := r.decode(dst, topic, []byte(tc.payload), arrival)
		var re *RejectError
		if !errors.As(err, &re) || re.Reason != tc.reason || !strings.Contains(re.Msg, tc.msg) {
			t.Errorf("decode(%q) = %v, %v; want a %s rejection saying %q", tc.payload, rs, err, tc.reason, tc.msg)
			continue
		}
		if len(rs) != 1 || rs[0].Field != "kept" {
			t.Errorf("decode(%q) returned %v with its rejection; want dst as given", tc.payload, rs)
		}
		if len(r.sk.list) != 0 {
			t.Errorf("decode(%q) rejected, and counted skips %s; a rejected message is counted once, as rejected", tc.payload, skipCounts(&r.sk))
		}
	}
}

func TestJSONDepth(t *testing.T) {
	r := mustRouter(t, false, jsonBase)
	nest := func(n int, open, leaf, close string) string {
		return strings.Repeat(open, n) + leaf + strings.Repeat(close, n)
	}
	for _, tc := range []struct {
		name, payload string
		ok            bool
	}{
		{"64 objects", nest(64, `{"a":`, "1", "}"), true},
		{"65 objects", nest(65, `{"a":`, "1", "}"), false},
		{"64 with arrays", `{"a":` + nest(63, "[", "1", "]") + "}", true},
		{"65 with arrays", `{"a":` + nest(64, "[", "1", "]") + "}", false},
		{"64 in a top-level array", "[" + nest(63, `{"a":`, "1", "}") + "]", true},
		{"65 in a top-level array", "[" + nest(64, `{"a":`, "1", "}") + "]", false},
		{"10000 objects", nest(10000, `{"a":`, "1", "}"), false},
		{"10000 arrays in an object", `{"a":` + nest(10000, "[", "", "]") + "}", false},
		{"10000 arrays", nest(10000, "[", "", "]"), false},
		{"10000 unclosed", strings.Repeat(`{"a":[`, 10000), false},
	} {
		rs, err := r.decode(nil, "sensors/s1/d1", []byte(tc.payload), arrival)
		if tc.ok {
			if err != nil || len(rs) != 1 || !strings.HasPrefix(rs[0].Field, "a_") && rs[0].Field != "a" {
				t.Errorf("%s: decode = %v, %v; want one reading", tc.name, rs, err)
			}
			continue
		}
		var re *RejectError
		if !errors.As(err, &re) || re.Reason != reasonBadPayload {
			t.Errorf("%s: decode = %v, %v; want a bad_payload rejection", tc.name, rs, err)
			continue
		}
		// Reading stops at the 65th level: the rest is never looked at.
		if !strings.Contains(re.Msg, "nested deeper than 64") && !strings.Contains(re.Msg, "not an object") {
			t.Errorf("%s: decode error %v; want it to say the payload is nested too deep", tc.name, err)
		}
		if i := strings.Index(re.Msg, " at byte "); i >= 0 {
			var at int
			fmt.Sscanf(re.Msg[i+len(" at byte "):], "%d", &at)
			if at > 64*len(`{"a":`) {
				t.Errorf("%s: rejected at byte %d; want reading to stop at the 65th level", tc.name, at)
			}
		}
	}
}

// TestJSONNoAllocs checks that decoding a message of a known shape
// allocates nothing.
func TestJSONNoAllocs(t *testing.T) {
	for _, bc := range decodeCases() {
		r := mustRouter(t, false, bc.sub)
		payload := []byte(bc.payload)
		rs, err := r.decode(nil, bc.topic, payload, arrival)
		if err != nil {
			t.Fatalf("%s: %v", bc.name, err)
		}
		if n := testing.AllocsPerRun(100, func() { rs, _ = r.decode(rs[:0], bc.topic, payload, arrival) }); n != 0 {
			t.Errorf("%s: decode allocates %v times per message; want 0", bc.name, n)
		}
	}
}

// TestJSONTrieBounded checks that members with ever new names do not grow
// the decoder without bound.
func TestJSONTrieBounded(t *testing.T) {
	r := mustRouter(t, false, with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"r.*"} }))
	d := r.routes[0].dec.(*jsonDecoder)
	for i := range maxInterned/2 + 10 {
		k := strconv.Itoa(i)
		if _, err := r.decode(nil, "sensors/s1/d1", []byte(`{"a`+k+`":1,"r":{"x`+k+`":{"v":1}}}`), arrival); err != nil {
			t.Fatal(err)
		}
	}
	if d.nodes > maxInterned+10 {
		t.Errorf("the decoder holds %d paths; want at most about %d", d.nodes, maxInterned)
	}
	if len(d.names.m) > maxInterned || len(d.series) > maxInterned {
		t.Errorf("the decoder holds %d tag values and %d series; want at most %d", len(d.names.m), len(d.series), maxInterned)
	}
}

func with(sub Subscription, f func(*Subscription)) Subscription {
	f(&sub)
	return sub
}

func TestJSONOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		sub  Subscription
		want string // "": accepted
	}{
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeUnit = "h" }), `json time_unit "h" is unknown; accepted: s, ms, us, ns, auto`},
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeUnit = "auto" }), ``},
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeZone = "Mars/Base" }), `json time_zone "Mars/Base" is not a zone: `},
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeZone = "Mars/Base" }), `; use an IANA name like Europe/Berlin`},
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeZone = "UTC" }), ``},
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeFormat = "YYYY-MM-DD hh:mm" }), `json time_format "YYYY-MM-DD hh:mm" holds no layout element; write how Go's reference time`},
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeFormat = "15:04:05" }), `json time_format "15:04:05" lacks the year, month or day`},
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeFormat = "2006-01-02 15:04:05 MST" }), ``},
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeKey = "a..b" }), `json time_key "a..b" has an empty level`},
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeKey = "a.b*" }), `json time_key "a.b*": level "b*" holds a * that is not a whole level`},
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeKey = "" }), ``},
		{with(jsonFieldBase, func(s *Subscription) { s.JSON.ValueKey = ".v" }), `json value_key ".v" has an empty level`},
		{with(jsonBase, func(s *Subscription) { s.JSON.ValueKey = ".v" }), ``}, // no {field}: value_key unused
		{with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{""} }), `json tag_keys holds an empty path`},
		{with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"ts"} }), `json tag_keys holds "ts", which is also the time_key "ts"`},
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeKey = "r.*.t"; s.JSON.TagKeys = []string{"r.*.t"} }), `json tag_keys holds "r.*.t", which is also the time_key "r.*.t"`},
		{with(jsonFieldBase, func(s *Subscription) { s.JSON.TagKeys = []string{"value"} }), `json tag_keys holds "value", which is also the value_key "value"`},
		{with(jsonFieldBase, func(s *Subscription) { s.JSON.TimeKey = "value" }), `json value_key holds "value", which is also the time_key "value"`},
		{with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"value"} }), ``},
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeKey = "a.*.t"; s.JSON.TagKeys = []string{"b.*.id"} }),
			`json time_key "a.*.t" and tag_keys "b.*.id" make records of different members (a.* and b.*); every path with a * must share the part up to its last *`},
		{with(jsonFieldBase, func(s *Subscription) { s.JSON.ValueKey = "a.*.v"; s.JSON.TagKeys = []string{"a.*.x.*"} }), `make records of different members (a.* and a.*.x.*)`},
		{with(jsonBase, func(s *Subscription) { s.JSON.TimeKey = "a.*.t"; s.JSON.TagKeys = []string{"a.*", "a.*.id", "gw"} }), ``},
		{with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"a.*.*"} }), `json tag_keys "a.*.*" ends in *.*`},
		{with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"x.name", "y.name"} }), `json tag_keys "x.name" and "y.name" both name tag "name"`},
		{with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"a.*", "a.*.a"} }), `json tag_keys "a.*" and "a.*.a" both name tag "a"`},
		{with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"name", "a.*.name"} }), ``}, // a record's tag replaces the root's
		{with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"a\x01"} }), `json tag_keys "a\x01" gives tag key "a\x01", which InfluxDB cannot take (holds a control character)`},
		{with(jsonBase, func(s *Subscription) { s.JSON.Fields = []string{"temp["} }), `json fields "temp[": level "temp[" is not a valid glob (syntax error in pattern); a level is a member name, an index, * or a glob like temp*`},
		{with(jsonBase, func(s *Subscription) { s.JSON.Exclude = []string{"a..b"} }), `json exclude "a..b" has an empty level`},
		{with(jsonBase, func(s *Subscription) { s.JSON.NumericStrings = []string{"x.[a-"} }), `json numeric_strings "x.[a-": level "[a-" is not a valid glob`},
		{with(jsonBase, func(s *Subscription) { s.JSON.Fields = []string{""} }), `json fields holds an empty path`},
		{with(jsonBase, func(s *Subscription) {
			s.JSON.Fields, s.JSON.Exclude, s.JSON.NumericStrings = []string{"*", "a?c", "[a-z]*.x"}, []string{"*.raw*"}, []string{"b\\*"}
		}), ``},
	} {
		_, err := newRouter([]Subscription{tc.sub}, false)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("newRouter(%+v) = %v; want it accepted", tc.sub.JSON, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("newRouter(%+v) error = %v; want it to contain %q", tc.sub.JSON, err, tc.want)
		}
	}
}

// TestJSONLongNames checks that long names cannot make the decoder hold or
// allocate memory out of proportion to the payload.
func TestJSONLongNames(t *testing.T) {
	r := mustRouter(t, false, with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"unit"} }))
	long := strings.Repeat("x", maxJSONName)
	rs, err := r.decode(nil, "sensors/s1/d1", []byte(`{"`+long+`":1,"a":{"`+long[1:]+`":2,"`+long[2:]+`":3},"unit":"`+long+`x","v":4}`), arrival)
	if err != nil || sortedLines(rs) != "m,device=d1,site=s1 a_"+long[2:]+"=3 arrival\nm,device=d1,site=s1 v=4 arrival\nm,device=d1,site=s1 "+long+"=1 arrival" ||
		skipCounts(&r.sk) != "bad_name x2" {
		t.Errorf("decode with names of %d bytes and more = %v, %v, skipped %s; want the names over %d bytes and the long tag value skipped", maxJSONName, len(rs), err, skipCounts(&r.sk), maxJSONName)
	}

	// 60 levels of 3000-byte names, then 8000 leaves: joined names would
	// take gigabytes.
	var b strings.Builder
	for i := range 60 {
		fmt.Fprintf(&b, `{"%d%s":`, i, strings.Repeat("n", 3000))
	}
	b.WriteString(`{"a":1`)
	for i := range 8000 {
		fmt.Fprintf(&b, `,"%d":1`, i)
	}
	b.WriteString("}" + strings.Repeat("}", 60))
	payload := []byte(b.String())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = r.decode(nil, "sensors/s1/d1", payload, arrival)
	runtime.ReadMemStats(&after)
	var re *RejectError
	if !errors.As(err, &re) || re.Reason != reasonNoValue || !strings.Contains(re.Msg, "over 1024 bytes") {
		t.Errorf("decode of long names nested deep = %v; want a no_value rejection naming the long name", err)
	}
	// The members below the skipped name are still read, to find
	// repeated names: a node each, linear in the payload.
	if n := after.TotalAlloc - before.TotalAlloc; n > 16*uint64(len(payload)) {
		t.Errorf("decode of %d bytes allocated %d bytes; want at most 16 times the payload", len(payload), n)
	}
}

// TestJSONMemoryBounded checks that the decoder forgets what it saw once
// it holds maxJSONMemory bytes.
func TestJSONMemoryBounded(t *testing.T) {
	r := mustRouter(t, false, with(jsonBase, func(s *Subscription) { s.JSON.TagKeys = []string{"unit"} }))
	d := r.routes[0].dec.(*jsonDecoder)
	value := strings.Repeat("v", maxJSONName-10)
	for i := range 3 * maxJSONMemory / maxJSONName {
		k := strconv.Itoa(i)
		if _, err := r.decode(nil, "sensors/s1/d1", []byte(`{"`+value+k+`":1,"unit":"`+value+k+`"}`), arrival); err != nil {
			t.Fatal(err)
		}
		if d.memory > maxJSONMemory+4*maxJSONName+1024 {
			t.Fatalf("after %d messages the decoder holds %d bytes; want at most about %d", i+1, d.memory, maxJSONMemory)
		}
	}
}
