package simulator_test

import (
	"bytes"
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
	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"go.uber.org/goleak"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testenv"
	"github.com/edgegw/edgegw/simulator"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// windowSize is the window size the late readings must lie beyond, on top
// of the lateness bound.
const windowSize = 10 * time.Second

func broker(t *testing.T) *testenv.Broker {
	return testenv.Mosquitto(t, testenv.MosquittoOptions{MaxQueued: 100000, NoPersistence: true})
}

// received is what a plain QoS 1 subscriber got.
type received struct {
	mu   sync.Mutex
	msgs []msg
}

type msg struct{ topic, payload string }

func subscribe(t *testing.T, url string) *received {
	t.Helper()
	return subscribePrefix(t, url, "sensors")
}

// subscribePrefix subscribes to prefix/# at QoS 1.
func subscribePrefix(t *testing.T, url, prefix string) *received {
	t.Helper()
	r := &received{}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("test-sub-" + prefix).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe(prefix+"/#", 1, func(_ paho.Client, m paho.Message) {
		r.mu.Lock()
		r.msgs = append(r.msgs, msg{m.Topic(), string(m.Payload())})
		r.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return r
}

// wait waits until want messages arrived, then a little longer so that any
// extra message shows, and returns them.
func (r *received) wait(t *testing.T, want int64) []msg {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		n := int64(len(r.msgs))
		r.mu.Unlock()
		if n >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	if int64(len(r.msgs)) != want {
		t.Fatalf("subscriber received %d messages, want %d", len(r.msgs), want)
	}
	return slices.Clone(r.msgs)
}

// line is one reading of a truth file.
type line struct {
	series string // measurement and tags
	device string
	site   string
	field  string
	value  string // as written
	ts     int64  // ns
	late   bool
}

func (l line) key() string { return fmt.Sprintf("%s %s %d", l.series, l.field, l.ts) }

// parseTruth decodes a truth file line by line, noting which lines follow
// "# late", and checks that a line protocol decoder reading the whole file
// finds the same points.
func parseTruth(t *testing.T, b []byte) []line {
	t.Helper()
	var out []line
	late := false
	for i, text := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if text == "" {
			continue
		}
		if text == "# late" {
			if late {
				t.Fatalf("truth line %d: two # late in a row", i+1)
			}
			late = true
			continue
		}
		dec := lineprotocol.NewDecoderWithBytes([]byte(text))
		if !dec.Next() {
			t.Fatalf("truth line %d %q: no point", i+1, text)
		}
		l := line{late: late}
		late = false
		m, err := dec.Measurement()
		if err != nil {
			t.Fatalf("truth line %d %q: measurement: %v", i+1, text, err)
		}
		var tags []edgegw.Tag
		for {
			k, v, err := dec.NextTag()
			if err != nil {
				t.Fatalf("truth line %d %q: tag: %v", i+1, text, err)
			}
			if k == nil {
				break
			}
			tags = append(tags, edgegw.Tag{Key: string(k), Value: string(v)})
			switch string(k) {
			case "device":
				l.device = string(v)
			case "site":
				l.site = string(v)
			}
		}
		l.series = edgegw.SeriesKey(string(m), tags)
		k, kind, v, err := dec.NextFieldBytes()
		if err != nil || kind != lineprotocol.Float {
			t.Fatalf("truth line %d %q: field %s kind %v: %v", i+1, text, k, kind, err)
		}
		l.field, l.value = string(k), string(v)
		if k, _, _, err := dec.NextFieldBytes(); err != nil || k != nil {
			t.Fatalf("truth line %d %q: a second field %q (%v)", i+1, text, k, err)
		}
		ts, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
		if err != nil || ts.IsZero() {
			t.Fatalf("truth line %d %q: time: %v", i+1, text, err)
		}
		l.ts = ts.UnixNano()
		out = append(out, l)
	}
	if late {
		t.Fatalf("truth file ends with # late")
	}
	n := 0
	dec := lineprotocol.NewDecoderWithBytes(b)
	for dec.Next() {
		if _, err := dec.Measurement(); err != nil {
			t.Fatalf("decode whole truth file, point %d: %v", n+1, err)
		}
		n++
	}
	if n != len(out) {
		t.Fatalf("decoding the whole truth file found %d points, want %d", n, len(out))
	}
	return out
}

// checkTruth checks the truth lines against the stats and the event time
// rules of a run with event times (format json, batch 1) with lateness
// lateness.
func checkTruth(t *testing.T, lines []line, st simulator.Stats, lateness time.Duration) {
	t.Helper()
	checkTruthGrid(t, lines, st, lateness, 1, 2)
}

// checkTruthGrid is checkTruth for a run of batch readings per message whose
// normal event times are multiples of grid ms and late ones grid/2 past a
// multiple.
func checkTruthGrid(t *testing.T, lines []line, st simulator.Stats, lateness time.Duration, batch, grid int64) {
	t.Helper()
	if int64(len(lines)) != st.Readings {
		t.Errorf("truth file has %d readings, Stats.Readings = %d", len(lines), st.Readings)
	}
	if st.Readings%batch != 0 || st.Messages != st.Readings/batch+st.Duplicates {
		t.Errorf("Stats.Messages = %d, want Readings %d / batch %d + Duplicates %d", st.Messages, st.Readings, batch, st.Duplicates)
	}
	seen := map[string]bool{}
	newest := int64(0)             // newest normal event time so far, ns
	maxOf := map[string]int64{}    // per series and field: newest normal event time
	lastLate := map[string]int64{} // per series and field: newest late event time
	var lates, disordered int64
	for i, l := range lines {
		if seen[l.key()] {
			t.Errorf("truth line %d: reading %s appears twice", i+1, l.key())
		}
		seen[l.key()] = true
		ms := l.ts / int64(time.Millisecond)
		if l.ts%int64(time.Millisecond) != 0 {
			t.Errorf("truth line %d: time %d is not whole ms", i+1, l.ts)
		}
		sf := l.series + " " + l.field
		if l.late {
			lates++
			if ms%grid != grid/2 {
				t.Errorf("truth line %d: late reading at %d ms, want %d past a multiple of %d", i+1, ms, grid/2, grid)
			}
			if newest == 0 {
				t.Errorf("truth line %d: late reading before any normal one", i+1)
			} else if lag := time.Duration(newest - l.ts); lag <= lateness+windowSize {
				t.Errorf("truth line %d: late reading only %s before the newest, want more than %s", i+1, lag, lateness+windowSize)
			}
			if l.ts <= lastLate[sf] {
				t.Errorf("truth line %d: late reading of %s at %d not after the previous late one %d", i+1, sf, l.ts, lastLate[sf])
			}
			lastLate[sf] = l.ts
			continue
		}
		if ms%grid != 0 {
			t.Errorf("truth line %d: reading at %d ms, want a multiple of %d", i+1, ms, grid)
		}
		if lag := time.Duration(newest - l.ts); lag > lateness {
			t.Errorf("truth line %d: out-of-order reading %s behind the newest, want at most the lateness %s", i+1, lag, lateness)
		}
		if l.ts < maxOf[sf] {
			disordered++
		}
		maxOf[sf] = max(maxOf[sf], l.ts)
		newest = max(newest, l.ts)
	}
	if lates != st.Late {
		t.Errorf("truth file has %d late readings, Stats.Late = %d", lates, st.Late)
	}
	if disordered > st.OutOfOrder {
		t.Errorf("truth file has %d readings out of order in their series, more than Stats.OutOfOrder = %d", disordered, st.OutOfOrder)
	}
	if st.OutOfOrder >= 50 && disordered == 0 {
		t.Errorf("truth file has no reading out of order in its series, Stats.OutOfOrder = %d", st.OutOfOrder)
	}
}

// TestFormats runs every format with event times at batch sizes 1 and 7
// (odd: a device's turn then spans two messages, and a message ends with
// either field) with out-of-order, late and duplicated messages, decodes
// every message a subscriber received on its own, and checks that the
// distinct messages give exactly the truth file's readings.
func TestFormats(t *testing.T) {
	b := broker(t)
	for _, sh := range []shape{
		{format: "json", batch: 1},
		{format: "json", batch: 7},
		{format: "json", batch: 1, nested: true},
		{format: "json", batch: 7, nested: true},
		{format: "influx", batch: 1},
		{format: "influx", batch: 7},
		{format: "senml", batch: 1},
		{format: "senml", batch: 7},
	} {
		name := fmt.Sprintf("%s/batch%d", sh.format, sh.batch)
		if sh.nested {
			name = fmt.Sprintf("json-nested/batch%d", sh.batch)
		}
		t.Run(name, func(t *testing.T) {
			prefix := strings.ReplaceAll(name, "/", "-")
			sub := subscribePrefix(t, b.URL(), prefix)
			var truth, progress bytes.Buffer
			const lateness = 200 * time.Millisecond
			// 5 devices × 2 fields at 1000 messages/s: at batch 7, 700
			// readings per series and second, past the 125 (senml) or 500
			// per second that keep event time with the clock; the truth
			// holds all the same.
			st, err := simulator.Run(t.Context(), simulator.Options{
				Broker: b.URL(), Devices: 5, Sites: 2, Rate: 1000, Count: 1000, Format: sh.format,
				Batch: sh.batch, JSONNested: sh.nested, QoS: 1, Seed: 1, TopicPrefix: prefix,
				OutOfOrder: 0.1, Late: 0.05, Duplicates: 0.05, Lateness: lateness,
				Truth: &truth, Progress: &progress,
			}, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if st.Messages != 1000 {
				t.Errorf("Stats.Messages = %d, want 1000", st.Messages)
			}
			n := int64(sh.batch)
			// 1000 draws at 10%, 5%, 5%: far from 0 and from 1000 for any seed.
			for name, got := range map[string]int64{"OutOfOrder": st.OutOfOrder / n, "Late": st.Late / n, "Duplicates": st.Duplicates} {
				if got < 10 || got > 200 {
					t.Errorf("Stats.%s = %d messages, want about %s of 1000", name, got, map[string]string{"OutOfOrder": "10%", "Late": "5%", "Duplicates": "5%"}[name])
				}
			}
			if st.OutOfOrder%n != 0 || st.Late%n != 0 {
				t.Errorf("Stats = %+v: out-of-order and late readings are not whole messages of %d", st, n)
			}
			grid := int64(2)
			if sh.format == "senml" {
				grid = 8
			}
			lines := parseTruth(t, truth.Bytes())
			checkTruthGrid(t, lines, st, lateness, n, grid)

			// Every series appears, device i on site (i%2)+1.
			perSeries := map[string]int{}
			for _, l := range lines {
				d, _ := strconv.Atoi(strings.TrimPrefix(l.device, "dev"))
				if want := fmt.Sprintf("site%d", (d-1)%2+1); d < 1 || l.site != want {
					t.Errorf("reading of device %q on site %q, want %s", l.device, l.site, want)
				}
				perSeries[l.series+" "+l.field]++
			}
			if len(perSeries) != 10 {
				t.Errorf("truth file has %d series and fields, want 5 devices × 2 fields: %v", len(perSeries), perSeries)
			}

			// The distinct messages received give every reading of the
			// truth file once, batch readings each; the others repeat one.
			want := map[string]int{}
			for _, l := range lines {
				want[truthPoint(t, l)]++
			}
			msgs := sub.wait(t, st.Messages)
			got := map[string]int{}
			distinct := map[msg]int{}
			for _, m := range msgs {
				if distinct[m]++; distinct[m] > 1 {
					continue
				}
				ps := decodeMessage(t, sh, m)
				if int64(len(ps)) != n {
					t.Errorf("message %s %s holds %d readings, want %d", m.topic, m.payload, len(ps), n)
				}
				for _, p := range ps {
					if want[p] == 0 {
						t.Errorf("message %s %s: reading %s is not in the truth file", m.topic, m.payload, p)
					}
					got[p]++
				}
			}
			for p, w := range want {
				if got[p] != w {
					t.Errorf("reading %s: in %d distinct messages, want %d", p, got[p], w)
				}
			}
			if extra := int64(len(msgs) - len(distinct)); extra != st.Duplicates {
				t.Errorf("received %d repeated messages, Stats.Duplicates = %d", extra, st.Duplicates)
			}
			t.Logf("%d messages, %d readings; first: %s %s", len(msgs), len(lines), msgs[0].topic, msgs[0].payload)

			summary := fmt.Sprintf("sent 1000 messages (%d readings: %d out of order, %d late; %d duplicates) in ",
				st.Readings, st.OutOfOrder, st.Late, st.Duplicates)
			if p := progress.String(); !strings.Contains(p, summary) || !strings.HasSuffix(p, "\n") {
				t.Errorf("progress = %q, want a final line with %q", p, summary)
			}
		})
	}
}

func TestValueQoS0(t *testing.T) {
	b := broker(t)
	sub := subscribe(t, b.URL())
	var truth bytes.Buffer
	before := time.Now()
	st, err := simulator.Run(t.Context(), simulator.Options{
		Broker: b.URL(), Devices: 3, Count: 500, Format: "value", QoS: 0, Seed: 2,
		OutOfOrder: 0.1, Duplicates: 0.1, Lateness: 100 * time.Millisecond, Truth: &truth,
	}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	after := time.Now()
	if st.Messages != 500 || st.Messages != st.Readings+st.Duplicates || st.Late != 0 {
		t.Errorf("Stats = %+v, want 500 messages = readings + duplicates, none late", st)
	}
	lines := parseTruth(t, truth.Bytes())
	if int64(len(lines)) != st.Readings {
		t.Errorf("truth file has %d readings, Stats.Readings = %d", len(lines), st.Readings)
	}
	values := map[msg]bool{}
	seen := map[string]bool{}
	for i, l := range lines {
		// With format value the truth time is the send time.
		if l.ts < before.Add(-time.Second).UnixNano() || l.ts > after.Add(time.Second).UnixNano() {
			t.Errorf("truth line %d: time %s, want the send time, between %s and %s",
				i+1, time.Unix(0, l.ts), before, after)
		}
		if seen[l.key()] {
			t.Errorf("truth line %d: reading %s appears twice", i+1, l.key())
		}
		seen[l.key()] = true
		values[msg{"sensors/site1/" + l.device + "/" + l.field, l.value}] = true
	}
	for _, m := range sub.wait(t, st.Messages) {
		if !values[m] {
			t.Errorf("received %s %q, not a value in the truth file", m.topic, m.payload)
		}
		if v, err := strconv.ParseFloat(m.payload, 64); err != nil || strconv.FormatFloat(v, 'f', 2, 64) != m.payload {
			t.Errorf("received payload %q, want a number with two decimals", m.payload)
		}
	}
}

// sequences returns, per series, field and lateness, the values in event
// time order: what a seed must reproduce.
func sequences(lines []line) map[string][]string {
	sorted := slices.Clone(lines)
	slices.SortStableFunc(sorted, func(a, b line) int {
		if a.ts < b.ts {
			return -1
		}
		if a.ts > b.ts {
			return 1
		}
		return 0
	})
	out := map[string][]string{}
	for _, l := range sorted {
		k := fmt.Sprintf("%s %s late=%v", l.series, l.field, l.late)
		out[k] = append(out[k], l.value)
	}
	return out
}

func TestSeedRepeats(t *testing.T) {
	b := broker(t)
	run := func(seed int64) (simulator.Stats, map[string][]string) {
		t.Helper()
		var truth bytes.Buffer
		st, err := simulator.Run(t.Context(), simulator.Options{
			Broker: b.URL(), Devices: 4, Count: 800, QoS: 1, Seed: seed,
			OutOfOrder: 0.1, Late: 0.1, Duplicates: 0.1, Lateness: 100 * time.Millisecond, Truth: &truth,
		}, nil)
		if err != nil {
			t.Fatalf("Run seed %d: %v", seed, err)
		}
		lines := parseTruth(t, truth.Bytes())
		checkTruth(t, lines, st, 100*time.Millisecond)
		st.Elapsed = 0
		return st, sequences(lines)
	}
	st1, seq1 := run(7)
	st2, seq2 := run(7)
	if st1 != st2 {
		t.Errorf("seed 7 twice: Stats %+v then %+v", st1, st2)
	}
	if len(seq1) != 16 {
		t.Errorf("seed 7: %d sequences, want 4 devices × 2 fields × normal and late", len(seq1))
	}
	for k, s1 := range seq1 {
		if s2 := seq2[k]; !slices.Equal(s1, s2) {
			t.Errorf("seed 7 twice: %s values\n%v\nthen\n%v", k, s1, s2)
		}
	}
	_, seq3 := run(8)
	same := 0
	for k, s1 := range seq1 {
		if slices.Equal(s1, seq3[k]) {
			same++
		}
	}
	if same != 0 {
		t.Errorf("seeds 7 and 8 gave %d of %d equal sequences, want different values", same, len(seq1))
	}
}

func TestRate(t *testing.T) {
	b := broker(t)
	var progress bytes.Buffer
	st, err := simulator.Run(t.Context(), simulator.Options{
		Broker: b.URL(), Rate: 100, Duration: 1500 * time.Millisecond, QoS: 1, Progress: &progress,
	}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Message i is due at i/100 s: 150 are due within 1.5 s, and pacing
	// catches up after a stall, so only the very end may fall short.
	if st.Messages > 150 || st.Messages < 120 {
		t.Errorf("rate 100/s for 1.5s: %d messages, want 120 to 150", st.Messages)
	}
	if st.Elapsed < 1500*time.Millisecond || st.Elapsed > 5*time.Second {
		t.Errorf("duration 1.5s: Elapsed = %s", st.Elapsed)
	}
	// One live line after 1 s, then the summary.
	p := progress.String()
	if strings.Count(p, "\r") != 2 || !strings.Contains(p, "/s  elapsed 1s") || !strings.HasSuffix(p, "\n") {
		t.Errorf("progress = %q, want one live line (sent, rate/s, elapsed) and a summary line", p)
	}

	st, err = simulator.Run(t.Context(), simulator.Options{Broker: b.URL(), Rate: 100, Count: 50, QoS: 1}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Messages != 50 || st.Elapsed < 490*time.Millisecond || st.Elapsed > 5*time.Second {
		t.Errorf("rate 100/s, count 50: %d messages in %s, want 50 in about 0.5s", st.Messages, st.Elapsed)
	}
}

func TestCancel(t *testing.T) {
	b := broker(t)
	sub := subscribe(t, b.URL())
	var truth bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	st, err := simulator.Run(ctx, simulator.Options{
		Broker: b.URL(), Rate: 1000, QoS: 1, OutOfOrder: 0.2, Duplicates: 0.1, Truth: &truth,
	}, nil)
	if err != nil {
		t.Fatalf("Run cancelled: %v, want nil", err)
	}
	if st.Messages < 100 || st.Elapsed > 6*time.Second {
		t.Errorf("cancelled after 0.5s at 1000/s: %d messages in %s", st.Messages, st.Elapsed)
	}
	checkTruth(t, parseTruth(t, truth.Bytes()), st, simulator.DefaultLateness)
	sub.wait(t, st.Messages)
}

func TestOptionsErrors(t *testing.T) {
	closed := fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t))
	for _, tc := range []struct {
		name string
		opts simulator.Options
		want []string
	}{
		{"unknown format", simulator.Options{Format: "xml"}, []string{`format "xml": must be value, json, influx or senml`}},
		{"batch zero or less", simulator.Options{Batch: -1}, []string{"batch -1: must be between 1 and 1000 readings per message"}},
		{"batch too large", simulator.Options{Format: "influx", Batch: 1001}, []string{"batch 1001: must be between 1 and 1000"}},
		{"batch value", simulator.Options{Format: "value", Batch: 2}, []string{"batch 2: format value carries one reading per message; use batch 1, or format json, influx or senml"}},
		{"nested influx", simulator.Options{Format: "influx", JSONNested: true}, []string{"json-nested: shapes json payloads, but the format is influx; use format json"}},
		{"nested value", simulator.Options{Format: "value", JSONNested: true}, []string{"json-nested: shapes json payloads, but the format is value"}},
		{"qos", simulator.Options{QoS: 2}, []string{"qos 2: must be 0 or 1"}},
		{"devices", simulator.Options{Devices: -1}, []string{"devices -1: must be between 1 and"}},
		{"sites", simulator.Options{Devices: 2, Sites: 3}, []string{"sites 3: must be between 1 and the number of devices (2)"}},
		{"rate", simulator.Options{Rate: -1}, []string{"rate -1: must be 0"}},
		{"count", simulator.Options{Count: -5}, []string{"count -5: must be 0"}},
		{"duration", simulator.Options{Duration: -time.Second}, []string{"duration -1s: must be 0"}},
		{"fraction", simulator.Options{Late: 1.5}, []string{"late 1.5: must be a fraction between 0 and 1"}},
		{"sum", simulator.Options{OutOfOrder: 0.5, Late: 0.3, Duplicates: 0.3}, []string{"out-of-order + late + duplicates = 1.1"}},
		{"late value", simulator.Options{Format: "value", Late: 0.1}, []string{"late readings need format json, influx or senml"}},
		{"lateness", simulator.Options{Lateness: -time.Second}, []string{"lateness -1s: must be positive"}},
		{"inflight", simulator.Options{MaxInflight: 70000}, []string{"max-inflight 70000: must be between 1 and 65535"}},
		{"prefix", simulator.Options{TopicPrefix: "a/+"}, []string{`topic-prefix "a/+"`}},
		{"broker", simulator.Options{Broker: "127.0.0.1:1883"}, []string{`broker "127.0.0.1:1883": want a URL such as tcp://127.0.0.1:1883`}},
		{"all at once", simulator.Options{Format: "value", Batch: 5, QoS: 3, Devices: -2},
			[]string{"batch 5", "qos 3", "devices -2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.Broker == "" {
				tc.opts.Broker = closed
			}
			_, err := simulator.Run(t.Context(), tc.opts, nil)
			if !errors.Is(err, simulator.ErrOptions) {
				t.Fatalf("Run(%+v) = %v, want ErrOptions", tc.opts, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Run(%+v) = %q, want it to say %q", tc.opts, err, w)
				}
			}
		})
	}
}

func TestBrokerDown(t *testing.T) {
	url := fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t))
	_, err := simulator.Run(t.Context(), simulator.Options{Broker: url, Count: 10}, nil)
	if err == nil || errors.Is(err, simulator.ErrOptions) || !strings.Contains(err.Error(), "connect to broker "+url) {
		t.Fatalf("Run against %s with nothing listening = %v, want a connect error", url, err)
	}
}

func TestBrokerLost(t *testing.T) {
	b := broker(t)
	done := make(chan struct{})
	var st simulator.Stats
	var err error
	go func() {
		defer close(done)
		st, err = simulator.Run(t.Context(), simulator.Options{Broker: b.URL(), Rate: 2000, Duration: 30 * time.Second, QoS: 1}, nil)
	}()
	time.Sleep(500 * time.Millisecond)
	b.Stop()
	select {
	case <-done:
	case <-time.After(8 * time.Second):
		t.Fatal("Run still publishing 8s after the broker stopped")
	}
	t.Logf("Run after the broker stopped: %v", err)
	if err == nil || !strings.Contains(err.Error(), "publish") {
		t.Fatalf("Run with the broker stopped = %v after %d messages, want a publish error", err, st.Messages)
	}
}
