package mqtt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testenv"
)

// fakeSink records what the client hands over; it acknowledges at once when
// autoAck is set, and otherwise keeps the acks for the test to call.
type fakeSink struct {
	autoAck bool

	mu   sync.Mutex
	msgs [][]edgegw.Reading
	acks []func()
}

func (s *fakeSink) Add(ctx context.Context, rs []edgegw.Reading, ack func(), _ edgegw.Packet) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, slices.Clone(rs))
	s.acks = append(s.acks, ack)
	s.mu.Unlock()
	if s.autoAck {
		ack()
	}
	return nil
}

func (s *fakeSink) messages() [][]edgegw.Reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

func (s *fakeSink) ack(i int) {
	s.mu.Lock()
	ack := s.acks[i]
	s.mu.Unlock()
	ack()
}

// values returns the first value of each message, as integers.
func (s *fakeSink) values() []int {
	var out []int
	for _, m := range s.messages() {
		if len(m) > 0 {
			out = append(out, int(m[0].Value))
		}
	}
	return out
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startClient runs a Client until the test ends (or stop is called) and
// fails the test if Run returns an error.
func startClient(t *testing.T, opts Options, sink Sink, reg prometheus.Registerer) (c *Client, stop func()) {
	t.Helper()
	c, err := New(opts, sink, nil, reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, testenv.Run(t, c.Run)
}

// publisher connects a plain paho client to url.
func publisher(t *testing.T, url string) func(topic, payload string) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("pub-%d", time.Now().UnixNano())).SetAutoReconnect(false)
	pc := paho.NewClient(o)
	if tok := pc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect publisher: %v", tok.Error())
	}
	t.Cleanup(func() { pc.Disconnect(100) })
	return func(topic, payload string) {
		t.Helper()
		if tok := pc.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
}

// metric returns the value of the metric name with labels (name=value
// pairs) gathered from reg, or -1 when there is none.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return -1
}

var fixedNow = time.Unix(1_700_000_000, 0)

func baseOptions(url string) Options {
	return Options{
		Broker:       url,
		ClientID:     "edgegw-test",
		QoS:          1,
		CleanSession: true,
		Subscriptions: []Subscription{
			{Topic: "sensors/{site}/{device}/{field}", Format: "value", Measurement: "sensors"},
			{Topic: "json/{site}/{device}", Format: "json", Measurement: "sensors",
				JSON: JSONOptions{TimeKey: "ts", TimeUnit: "ms", TagKeys: []string{"unit"}}},
		},
		Now: func() time.Time { return fixedNow },
	}
}

func TestClientDeliversDecodedReadings(t *testing.T) {
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	sink := &fakeSink{autoAck: true}
	reg := prometheus.NewRegistry()
	c, stop := startClient(t, baseOptions(broker.URL()), sink, reg)
	waitFor(t, 10*time.Second, "Ready", c.Ready)
	if got := metric(t, reg, "edgegw_mqtt_connected"); got != 1 {
		t.Errorf("edgegw_mqtt_connected = %v; want 1", got)
	}

	pub := publisher(t, broker.URL())
	pub("sensors/s1/d1/temperature", "23.5")
	pub("json/s1/d2", `{"temperature": 21, "humidity": 40.5, "unit": "C", "ts": 1700000001000}`)
	pub("sensors/s1/d1/temperature", "warm")
	pub("sensors/s1/d1/humidity", "41")
	pub("sensors/s1/d1/humidity", "unavailable")
	waitFor(t, 10*time.Second, "5 messages at the sink", func() bool { return len(sink.messages()) == 5 })

	want := [][]edgegw.Reading{
		{{Series: "sensors,device=d1,site=s1", Field: "temperature", Value: 23.5, Time: fixedNow.UnixNano()}},
		{
			{Series: "sensors,device=d2,site=s1,unit=C", Field: "temperature", Value: 21, Time: 1700000001000e6},
			{Series: "sensors,device=d2,site=s1,unit=C", Field: "humidity", Value: 40.5, Time: 1700000001000e6},
		},
		{}, // rejected, still handed over so that its ack stays in order
		{{Series: "sensors,device=d1,site=s1", Field: "humidity", Value: 41, Time: fixedNow.UnixNano()}},
		{}, // a state word: skipped, not rejected
	}
	got := sink.messages()
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("message %d: sink got %v; want %v", i, got[i], want[i])
		}
	}
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"edgegw_mqtt_messages_received_total", nil, 5},
		{"edgegw_readings_received_total", nil, 4},
		{"edgegw_readings_rejected_total", []string{"reason", "bad_number"}, 1},
		{"edgegw_readings_rejected_total", []string{"reason", "bad_topic"}, 0},
		{"edgegw_readings_skipped_total", []string{"reason", "state_word"}, 1},
		{"edgegw_readings_skipped_total", []string{"reason", "bad_name"}, 0},
		{"edgegw_readings_time_assumed_total", []string{"reason", "no_zone"}, 0},
		{"edgegw_mqtt_reconnects_total", nil, 0},
	} {
		if got := metric(t, reg, m.name, m.labels...); got != m.want {
			t.Errorf("%s%v = %v; want %v", m.name, m.labels, got, m.want)
		}
	}
	stop()
	if c.Ready() {
		t.Errorf("Ready() = true after Run returned; want false")
	}
	if got := metric(t, reg, "edgegw_mqtt_connected"); got != 0 {
		t.Errorf("edgegw_mqtt_connected after Run returned = %v; want 0", got)
	}
}

// TestAckOnlyWhenSinkAcks proves that a message is acknowledged to the
// broker when, and only when, the sink calls its ack: the broker delivers the
// unacknowledged ones again to the next session of the same client id.
func TestAckOnlyWhenSinkAcks(t *testing.T) {
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	opts := baseOptions(broker.URL())
	opts.ClientID = "edgegw-ack"
	opts.CleanSession = false

	first := &fakeSink{}
	c, stop := startClient(t, opts, first, nil)
	waitFor(t, 10*time.Second, "Ready", c.Ready)
	pub := publisher(t, broker.URL())
	for i := range 10 {
		pub("sensors/s1/d1/t", fmt.Sprint(i))
	}
	waitFor(t, 10*time.Second, "10 messages at the first sink", func() bool { return len(first.messages()) == 10 })
	for i := range 4 {
		first.ack(i)
	}
	stop()

	second := &fakeSink{autoAck: true}
	c, stop = startClient(t, opts, second, nil)
	waitFor(t, 10*time.Second, "6 messages redelivered", func() bool { return len(second.messages()) >= 6 })
	waitFor(t, 10*time.Second, "Ready", c.Ready)
	time.Sleep(300 * time.Millisecond) // time for any message that should not come
	if got, want := second.values(), []int{4, 5, 6, 7, 8, 9}; !slices.Equal(got, want) {
		t.Errorf("second session got values %v; want the unacknowledged %v", got, want)
	}
	stop()

	third := &fakeSink{autoAck: true}
	c, stop = startClient(t, opts, third, nil)
	waitFor(t, 10*time.Second, "Ready", c.Ready)
	pub("sensors/s1/d1/t", "10")
	waitFor(t, 10*time.Second, "a new message", func() bool { return len(third.messages()) >= 1 })
	time.Sleep(100 * time.Millisecond)
	if got, want := third.values(), []int{10}; !slices.Equal(got, want) {
		t.Errorf("third session got values %v; want only the new %v (the second session acknowledged the rest)", got, want)
	}
	stop()
}

// TestReconnectResubscribes stops and restarts the broker: with a clean
// session the broker forgets the subscriptions, so messages after the
// restart arrive only if the client subscribed again.
func TestReconnectResubscribes(t *testing.T) {
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	sink := &fakeSink{autoAck: true}
	reg := prometheus.NewRegistry()
	c, _ := startClient(t, baseOptions(broker.URL()), sink, reg)
	waitFor(t, 10*time.Second, "Ready", c.Ready)
	pub := publisher(t, broker.URL())
	pub("sensors/s1/d1/t", "1")
	waitFor(t, 10*time.Second, "the first message", func() bool { return len(sink.messages()) == 1 })

	broker.Stop()
	waitFor(t, 10*time.Second, "Ready false with the broker down", func() bool { return !c.Ready() })
	if got := metric(t, reg, "edgegw_mqtt_connected"); got != 0 {
		t.Errorf("edgegw_mqtt_connected with the broker down = %v; want 0", got)
	}
	broker.Start()
	waitFor(t, 20*time.Second, "Ready after the broker restarted", c.Ready)

	pub = publisher(t, broker.URL())
	pub("sensors/s1/d1/t", "2")
	waitFor(t, 10*time.Second, "a message after the restart", func() bool { return len(sink.messages()) == 2 })
	if got := sink.values(); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("sink got values %v; want [1 2]", got)
	}
	if got := metric(t, reg, "edgegw_mqtt_reconnects_total"); got != 1 {
		t.Errorf("edgegw_mqtt_reconnects_total = %v; want 1", got)
	}
}

func TestReadyWaitsForBroker(t *testing.T) {
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	broker.Stop()
	c, stop := startClient(t, baseOptions(broker.URL()), &fakeSink{autoAck: true}, nil)
	if c.Ready() {
		t.Fatalf("Ready() = true with the broker down")
	}
	time.Sleep(700 * time.Millisecond) // a few failed attempts
	if c.Ready() {
		t.Fatalf("Ready() = true with the broker down")
	}
	broker.Start()
	waitFor(t, 20*time.Second, "Ready once the broker is up", c.Ready)
	stop()
}

func TestRunStopsPromptlyWhileRetrying(t *testing.T) {
	port := testenv.FreePort(t) // nothing listens there
	_, stop := startClient(t, baseOptions(fmt.Sprintf("tcp://127.0.0.1:%d", port)), &fakeSink{}, nil)
	time.Sleep(1500 * time.Millisecond)
	start := time.Now()
	stop()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Run took %s to return after cancel while retrying; want under 1s", d)
	}
}

func TestShareGroup(t *testing.T) {
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	opts := baseOptions(broker.URL())
	opts.ShareGroup = "gateways"
	sink := &fakeSink{autoAck: true}
	c, _ := startClient(t, opts, sink, nil)
	waitFor(t, 10*time.Second, "Ready", c.Ready)
	publisher(t, broker.URL())("sensors/s1/d1/t", "7")
	waitFor(t, 10*time.Second, "a message through $share/gateways", func() bool { return len(sink.messages()) == 1 })
	if got := sink.values(); !slices.Equal(got, []int{7}) {
		t.Errorf("sink got %v; want [7]", got)
	}
}

func TestRunTwice(t *testing.T) {
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	c, _ := startClient(t, baseOptions(broker.URL()), &fakeSink{}, nil)
	waitFor(t, 10*time.Second, "Ready", c.Ready)
	if err := c.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v; want ErrRunning", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	good := baseOptions("tcp://127.0.0.1:1883")
	for _, tc := range []struct {
		name   string
		modify func(*Options)
		want   []string
	}{
		{"broker scheme", func(o *Options) { o.Broker = "http://x:1" }, []string{`scheme "http" is not supported`, "tcp://"}},
		{"broker empty", func(o *Options) { o.Broker = "" }, []string{"broker is empty"}},
		{"broker no host", func(o *Options) { o.Broker = "127.0.0.1:1883" }, []string{"is not a URL"}},
		{"qos", func(o *Options) { o.QoS = 2 }, []string{"qos 2 is not supported; accepted: 0, 1"}},
		{"client id", func(o *Options) { o.ClientID, o.CleanSession = "", false }, []string{"client_id is empty"}},
		{"keepalive", func(o *Options) { o.Keepalive = time.Millisecond }, []string{"keepalive 1ms is too short"}},
		{"share group", func(o *Options) { o.ShareGroup = "a/b" }, []string{`share_group "a/b"`}},
		{"no subscriptions", func(o *Options) { o.Subscriptions = nil }, []string{"subscriptions is empty"}},
		{"format", func(o *Options) { o.Subscriptions[1].Format = "xml" }, []string{`subscription 1 (topic "json/{site}/{device}")`, `format "xml" is unknown; accepted: value, json`}},
		{"tls ca", func(o *Options) { o.TLS.CAFile = "/nonexistent/ca.pem" }, []string{"read tls ca_file", "/nonexistent/ca.pem"}},
		{"tls pair", func(o *Options) { o.TLS.CertFile = "c.pem" }, []string{"cert_file and key_file must be set together"}},
		{"every problem at once", func(o *Options) { o.QoS = 3; o.Broker = "" }, []string{"qos 3", "broker is empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			o.Subscriptions = slices.Clone(good.Subscriptions)
			tc.modify(&o)
			_, err := New(o, &fakeSink{}, nil, nil)
			if err == nil {
				t.Fatalf("New = nil error; want one containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New error = %q; want it to contain %q", err, w)
				}
			}
		})
	}
	if _, err := New(good, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "sink is nil") {
		t.Errorf("New with a nil sink = %v; want an error naming the sink", err)
	}
	if _, err := New(good, &fakeSink{}, nil, nil); err != nil {
		t.Errorf("New(good options) = %v", err)
	}
}

func TestNewDefaultsPort(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://broker":        "broker:1883",
		"mqtts://broker":      "broker:8883",
		"tcp://broker:1999":   "broker:1999",
		"ws://broker:9001/mq": "broker:9001",
	} {
		u, err := parseBroker(in)
		if err != nil || u.Host != want {
			t.Errorf("parseBroker(%q) = %v, %v; want host %s", in, u, err, want)
		}
	}
}

func TestThrottle(t *testing.T) {
	var th throttle
	th.every = 10 * time.Second
	t0 := time.Unix(0, 0)
	if ok, n := th.allow("bad_number", t0); !ok || n != 0 {
		t.Errorf("first allow = %v, %d; want true, 0", ok, n)
	}
	for i := range 5 {
		if ok, _ := th.allow("bad_number", t0.Add(time.Duration(i)*time.Second)); ok {
			t.Errorf("allow %ds after a line = true; want false", i)
		}
	}
	if ok, _ := th.allow("bad_time", t0.Add(time.Second)); !ok {
		t.Errorf("allow for another reason = false; want true")
	}
	if ok, n := th.allow("bad_number", t0.Add(10*time.Second)); !ok || n != 5 {
		t.Errorf("allow 10s later = %v, %d; want true with 5 suppressed", ok, n)
	}
}

// TestHostileInputLosesNoNeighbour publishes, through a real Mosquitto,
// hostile payloads of every kind for every format, each followed by a good
// message. Every hostile message is acknowledged and handed over with only
// its good parts, counted by reason; every good message arrives, in order.
func TestHostileInputLosesNoNeighbour(t *testing.T) {
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	sink := &fakeSink{autoAck: true}
	reg := prometheus.NewRegistry()
	opts := baseOptions(broker.URL())
	opts.Subscriptions = []Subscription{
		{Topic: "v/{site}/{device}/{field}", Format: "value", Measurement: "v"},
		{Topic: "j/{site}/{device}", Format: "json", Measurement: "j", JSON: JSONOptions{TimeKey: "ts", TimeUnit: "ms"}},
		{Topic: "i/{site}", Format: "influx"},
		{Topic: "s/{site}", Format: "senml", Measurement: "s"},
	}
	opts.MaxPayloadBytes = 16 << 10
	c, stop := startClient(t, opts, sink, reg)
	defer stop()
	waitFor(t, 10*time.Second, "Ready", c.Ready)
	pub := publisher(t, broker.URL())

	for _, tc := range []struct {
		topic, payload string
		readings       int    // the good parts read
		rejected       string // the reason the message is rejected, if it is
		skipped        string // the reason a part is skipped, if one is
	}{
		{"j/s1/d1", `{"a":`, 0, "bad_payload", ""},
		{"j/s1/d1", `{"a": NaN}`, 0, "bad_payload", ""},
		{"j/s1/d1", strings.Repeat("[", 10000), 0, "bad_payload", ""},
		{"j/s1/d1", strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000), 0, "too_large", ""},
		{"j/s1/d1", strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000), 0, "bad_payload", ""},
		{"j/s1/d1", `{"a": 1, "a": 2}`, 0, "duplicate_key", ""},
		{"j/s1/d1", ``, 0, "no_value", ""},
		{"j/s1/d1", `{"ts": [1], "t": 1}`, 0, "bad_time", ""},
		{"j/s1/d1", `"a string"`, 0, "bad_payload", ""},
		{"j/s1/d1", `{"s": "x", "n": null, "b": true}`, 0, "no_value", ""},
		{"j/s1/d1", "{\"a\xff\": 1, \"ok\": 2}", 1, "", "bad_name"},
		{"j/s1/d1", "{\"t\\u0001\": 1, \"ok\": 2}", 1, "", "bad_name"},
		{"j/s1/d1", `{"big": 1e999, "ok": 2, "neg": -1e400}`, 1, "", "non_finite"},
		{"j/s1/d1", `{"deep": {"er": {"still": [1, {"x": 2}]}}}`, 2, "", ""},
		{"v/s1/d1/t", `0x10`, 0, "bad_number", ""},
		{"v/s1/d1/t", `1e999`, 0, "non_finite", ""},
		{"v/s1/d1/t", `-Infinity`, 0, "non_finite", ""},
		{"v/s1/d1/t", "\xff\xfe", 0, "bad_number", ""},
		{"v/s1/d1/t", `unavailable`, 0, "", "state_word"},
		{"v//d1/t", `1`, 0, "bad_topic", ""},
		{"i/s1", `m f="s"`, 0, "no_value", ""},
		{"i/s1", `not line protocol at all`, 0, "no_value", ""},
		{"i/s1", "m f=1\nbad line here\nm g=2", 2, "", "bad_line"},
		{"i/s1", `m f="s",g=1`, 1, "", "string_field"},
		{"i/s1", "m\xff f=1", 0, "no_value", ""},
		{"s/s1", `{"n": "x", "v": 1}`, 0, "bad_payload", ""},
		{"s/s1", `[{"n": "x"}]`, 0, "no_value", ""},
		{"s/s1", `[{"n": "a", "v": 1}, {"n": "b"}]`, 1, "", "bad_record"},
		{"s/s1", `[{"n": "a", "v": 1e999}]`, 0, "no_value", ""},
	} {
		before := len(sink.messages())
		rejected := map[string]float64{}
		for _, r := range reasons {
			rejected[r] = metric(t, reg, "edgegw_readings_rejected_total", "reason", r)
		}
		skipped := 0.0
		if tc.skipped != "" {
			skipped = metric(t, reg, "edgegw_readings_skipped_total", "reason", tc.skipped)
		}
		pub(tc.topic, tc.payload)
		pub("v/s1/canary/seq", strconv.Itoa(before))
		waitFor(t, 10*time.Second, "the message and its neighbour", func() bool { return len(sink.messages()) >= before+2 })
		msgs := sink.messages()
		what := fmt.Sprintf("%s %.60q", tc.topic, tc.payload)
		if got := len(msgs[before]); got != tc.readings {
			t.Errorf("%s: %d readings %v; want %d", what, got, msgs[before], tc.readings)
		}
		if n := msgs[before+1]; len(n) != 1 || n[0].Value != float64(before) {
			t.Errorf("%s: the next message gave %v; want its reading %d", what, n, before)
		}
		for _, r := range reasons {
			want := rejected[r]
			if r == tc.rejected {
				want++
			}
			if got := metric(t, reg, "edgegw_readings_rejected_total", "reason", r); got != want {
				t.Errorf("%s: edgegw_readings_rejected_total{reason=%q} = %v; want %v", what, r, got, want)
			}
		}
		if tc.skipped != "" {
			if got := metric(t, reg, "edgegw_readings_skipped_total", "reason", tc.skipped); got <= skipped {
				t.Errorf("%s: edgegw_readings_skipped_total{reason=%q} = %v; want more than %v", what, tc.skipped, got, skipped)
			}
		}
	}
}
