package mqtt

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw"
)

// decodeCase is a message BenchmarkDecode and TestJSONNoAllocs decode.
type decodeCase struct {
	name    string
	sub     Subscription
	topic   string
	payload string
}

// decodeCases returns the messages of BenchmarkDecode.
func decodeCases() []decodeCase {
	jsonFields := Subscription{Topic: "sensors/{site}/{device}", Format: "json", Measurement: "sensors",
		JSON: JSONOptions{TimeKey: "ts", TimeUnit: "ms"}}
	jsonTagged := jsonFields
	jsonTagged.JSON.TagKeys = []string{"unit"}
	tasmota := Subscription{Topic: "tele/{device}/SENSOR", Format: "json", Measurement: "tasmota",
		JSON: JSONOptions{TimeKey: "Time", TimeUnit: "ms", TimeZone: "Europe/Berlin"}}
	zigbee := Subscription{Topic: "tele/{device}/SENSOR", Format: "json", Measurement: "zigbee",
		JSON: JSONOptions{TimeKey: "ts", TimeUnit: "ms", TagKeys: []string{"ZbReceived.*.Device", "ZbReceived.*.Name"}, Exclude: []string{"Endpoint", "LinkQuality"}}}
	ttn := Subscription{Topic: "v3/{application}/devices/{device}/up", Format: "json", Measurement: "ttn",
		JSON: JSONOptions{TimeKey: "received_at", TagKeys: []string{"end_device_ids.device_id"},
			Fields:  []string{"uplink_message.decoded_payload", "uplink_message.rx_metadata.*.rssi", "uplink_message.f_cnt"},
			Exclude: []string{"uplink_message.decoded_payload.raw*"}, NumericStrings: []string{"uplink_message.decoded_payload.battery"}}}
	batch := Subscription{Topic: "sensors/{site}/{device}", Format: "json", Measurement: "sensors",
		JSON: JSONOptions{TimeKey: "t", TimeUnit: "auto", TagKeys: []string{"probe"}}}
	return []decodeCase{
		{"format=value", valueSub, "sensors/site1/dev42/temperature", "23.45"},
		{"format=json/readings=4", jsonFields, "sensors/site1/dev42",
			`{"temperature": 23.45, "humidity": 41.2, "pressure": 1013.25, "co2": 612, "ts": 1700000000123}`},
		{"format=json/readings=4/tags=1", jsonTagged, "sensors/site1/dev42",
			`{"temperature": 23.45, "humidity": 41.2, "pressure": 1013.25, "co2": 612, "unit": "metric", "ts": 1700000000123}`},
		{"format=json/readings=1/value_key", Subscription{Topic: "sensors/{site}/{device}/{field}", Format: "json", Measurement: "sensors",
			JSON: JSONOptions{TimeKey: "ts", TimeUnit: "ms"}}, "sensors/site1/dev42/temperature", `{"value": 23.45, "ts": 1700000000123}`},
		{"format=json/nested=tasmota/readings=5", tasmota, "tele/plug1/SENSOR",
			`{"Time":"2024-05-01T12:00:00","AM2301":{"Temperature":24.6,"Humidity":58.2},"ENERGY":{"Total":[2.813,0.254],"Power":120}}`},
		{"format=json/records=zigbee/readings=4", zigbee, "tele/zbbridge/SENSOR",
			`{"ZbReceived":{"0x6A8D":{"Device":"0x6A8D","Name":"Kitchen","Temperature":21.5,"Humidity":45.2,"Endpoint":1,"LinkQuality":120},` +
				`"0x1F02":{"Device":"0x1F02","Name":"Hall","Temperature":19.25,"Humidity":51,"Endpoint":1,"LinkQuality":87}},"ts":1700000000123}`},
		{"format=json/options=ttn/readings=5", ttn, "v3/app1/devices/eui-1/up",
			`{"end_device_ids":{"device_id":"eui-1","application_ids":{"application_id":"app1"},"dev_eui":"0004A30B001C0530"},` +
				`"received_at":"2024-05-01T12:00:00.123456789Z","uplink_message":{"f_port":2,"f_cnt":1234,"frm_payload":"AQID",` +
				`"decoded_payload":{"temperature":21.5,"humidity":40,"battery":"3.61","raw_bytes":[1,2,3]},` +
				`"rx_metadata":[{"gateway_ids":{"gateway_id":"gw1"},"rssi":-81,"snr":7.25,"channel_rssi":-81}],` +
				`"settings":{"data_rate":{"lora":{"bandwidth":125000,"spreading_factor":7}},"frequency":"868100000"}}}`},
		{"format=json/array/readings=6", batch, "sensors/site1/dev42",
			`[{"t":1700000000,"probe":"a","temp":21.5,"rh":40},{"t":1700000060,"probe":"a","temp":21.6,"rh":41},{"t":1700000120,"probe":"b","temp":21.7,"rh":42}]`},
	}
}

// benchDecode measures the decoding of bc's message, per message and, in
// ns/reading, readings/s and allocs/reading, per reading.
func benchDecode(b *testing.B, bc decodeCase) {
	r := mustRouter(b, false, bc.sub)
	payload := []byte(bc.payload)
	rs, err := r.decode(nil, bc.topic, payload, arrival)
	if err != nil || len(rs) == 0 || len(r.sk.list) != 0 {
		b.Fatalf("decode: %v, %d readings, skipped %+v", err, len(rs), r.sk.list)
	}
	readings := len(rs)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		if rs, err = r.decode(rs[:0], bc.topic, payload, arrival); err != nil {
			b.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	n := float64(b.N) * float64(readings)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/reading")
	b.ReportMetric(n/b.Elapsed().Seconds(), "readings/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/reading")
}

// BenchmarkDecode measures the decoding of one message on a known topic:
// the per-message cost of the client besides paho's. ns/reading and
// allocs/reading divide by the readings of a message.
func BenchmarkDecode(b *testing.B) {
	for _, bc := range decodeCases() {
		b.Run(bc.name, func(b *testing.B) { benchDecode(b, bc) })
	}
	benchFormats(b)
}

// benchFormats measures formats influx and senml on messages of several
// sizes, per message and per reading.
func benchFormats(b *testing.B) {
	influx := Subscription{Topic: "lp/{site}", Format: "influx", Influx: InfluxOptions{Precision: "ms"}}
	senml := Subscription{Topic: "senml/{device}", Format: "senml", Measurement: "senml"}
	var cases []decodeCase
	for _, n := range []int{1, 10, 100} {
		var lp, sm strings.Builder
		for i := range n {
			// Three readings a line.
			fmt.Fprintf(&lp, "home,room=r%d temp=%d.5,hum=40.2,co=%di %d\n", i%4, 20+i%5, i%9, 1700000000000+i*1000)
		}
		sm.WriteString(`[{"bn":"urn:dev:ow:10e2073a01080063:","bt":1.7e9,"bu":"Cel","n":"temp","v":23.1}`)
		for i := 1; i < n; i++ {
			switch i % 3 {
			case 0:
				fmt.Fprintf(&sm, `,{"n":"temp","t":%d,"v":23.%d}`, i, i%10)
			case 1:
				fmt.Fprintf(&sm, `,{"n":"hum","u":"%%RH","t":%d,"v":4%d.5}`, i, i%10)
			default:
				fmt.Fprintf(&sm, `,{"n":"energy","u":"kWh","t":%d.25,"s":%d}`, i, 1000+i)
			}
		}
		sm.WriteString("]")
		cases = append(cases,
			decodeCase{"format=influx/lines=" + strconv.Itoa(n), influx, "lp/site1", lp.String()},
			decodeCase{"format=senml/records=" + strconv.Itoa(n), senml, "senml/dev42", sm.String()})
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) { benchDecode(b, bc) })
	}
}

// BenchmarkDecodeTopics measures value decoding over many known topics, as a
// gateway with 4000 series sees them.
func BenchmarkDecodeTopics(b *testing.B) {
	const n = 4000
	topics := make([]string, n)
	for i := range topics {
		topics[i] = "sensors/site1/dev" + strconv.Itoa(i/4) + "/f" + strconv.Itoa(i%4)
	}
	r := mustRouter(b, false, valueSub)
	payload := []byte("23.45")
	var rs []edgegw.Reading
	b.Run("topics="+strconv.Itoa(n), func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		i := 0
		for b.Loop() {
			rs, _ = r.decode(rs[:0], topics[i%n], payload, arrival)
			i++
		}
	})
}

// benchMessage is a received QoS 1 message.
type benchMessage struct {
	topic   string
	payload []byte
}

func (m *benchMessage) Duplicate() bool   { return false }
func (m *benchMessage) Qos() byte         { return 1 }
func (m *benchMessage) Retained() bool    { return false }
func (m *benchMessage) Topic() string     { return m.topic }
func (m *benchMessage) MessageID() uint16 { return 1 }
func (m *benchMessage) Payload() []byte   { return m.payload }
func (m *benchMessage) Ack()              {}

// discardSink takes every message and acknowledges nothing.
type discardSink struct{ n int }

func (s *discardSink) Add(_ context.Context, rs []edgegw.Reading, _ func(), _ edgegw.Packet) error {
	s.n += len(rs)
	return nil
}

// BenchmarkHandle measures the client's own cost per message: decoding,
// metrics and the hand-over to the sink, without paho and the network.
func BenchmarkHandle(b *testing.B) {
	c, err := New(Options{Broker: "tcp://127.0.0.1:1883", ClientID: "bench", QoS: 1,
		Subscriptions: []Subscription{valueSub}}, &discardSink{}, nil, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	m := &benchMessage{topic: "sensors/site1/dev42/temperature", payload: []byte("23.45")}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(m.payload)))
	for b.Loop() {
		c.handle(ctx, m)
	}
}
