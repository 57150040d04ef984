package simulator

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// testBatch returns a batch of dev3 on site1: temperature and humidity at
// t0, temperature and humidity at t0+8 ms, temperature at t0+16 ms.
func testBatch(t0 int64) (*runner, *batch) {
	devs := newDevices(rand.New(rand.NewPCG(1, 1)), "sensors", 3, 1)
	d := devs[2]
	temp, hum := d.series[0], d.series[1]
	return &runner{}, &batch{dev: d, rs: []reading{
		{s: temp, value: "21.37", ts: t0},
		{s: hum, value: "44.80", ts: t0},
		{s: temp, value: "21.40", ts: t0 + 8},
		{s: hum, value: "-0.05", ts: t0 + 8},
		{s: temp, value: "21.42", ts: t0 + 16},
	}}
}

// TestPayloads pins the payload of every format, as the package
// documentation shows them.
func TestPayloads(t *testing.T) {
	const t0 = 1700000000120
	for _, tc := range []struct {
		name   string
		o      Options
		n      int // readings of the batch
		topic  string
		expect string
	}{
		{"value", Options{Format: "value", Batch: 1}, 1, "sensors/site1/dev3/temperature", `21.37`},
		{"json", Options{Format: "json", Batch: 1}, 1, "sensors/site1/dev3/temperature", `{"value":21.37,"ts":1700000000120}`},
		{"json batch", Options{Format: "json", Batch: 5}, 5, "sensors/site1/dev3",
			`[{"ts":1700000000120,"temperature":21.37,"humidity":44.80},{"ts":1700000000128,"temperature":21.40,"humidity":-0.05},{"ts":1700000000136,"temperature":21.42}]`},
		{"json nested", Options{Format: "json", Batch: 1, JSONNested: true}, 1, "sensors/site1/dev3",
			`{"readings":[{"ts":1700000000120,"temperature":21.37}]}`},
		{"json nested batch", Options{Format: "json", Batch: 3, JSONNested: true}, 3, "sensors/site1/dev3",
			`{"readings":[{"ts":1700000000120,"temperature":21.37,"humidity":44.80},{"ts":1700000000128,"temperature":21.40}]}`},
		{"influx", Options{Format: "influx", Batch: 1}, 1, "sensors/site1/dev3",
			"sensors,device=dev3,site=site1 temperature=21.37 1700000000120000000\n"},
		{"influx batch", Options{Format: "influx", Batch: 5}, 5, "sensors/site1/dev3",
			"sensors,device=dev3,site=site1 temperature=21.37,humidity=44.80 1700000000120000000\n" +
				"sensors,device=dev3,site=site1 temperature=21.40,humidity=-0.05 1700000000128000000\n" +
				"sensors,device=dev3,site=site1 temperature=21.42 1700000000136000000\n"},
		{"senml", Options{Format: "senml", Batch: 1}, 1, "sensors/site1/dev3",
			`[{"bn":"dev3:","bt":1700000000,"n":"temperature","v":21.37,"t":0.12}]`},
		{"senml batch", Options{Format: "senml", Batch: 5}, 5, "sensors/site1/dev3",
			`[{"bn":"dev3:","bt":1700000000,"n":"temperature","v":21.37,"t":0.12},{"n":"humidity","v":44.80,"t":0.12},` +
				`{"n":"temperature","v":21.40,"t":0.128},{"n":"humidity","v":-0.05,"t":0.128},{"n":"temperature","v":21.42,"t":0.136}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, b := testBatch(t0)
			r.o = tc.o
			b.rs = b.rs[:tc.n]
			topic, payload := r.encode(b)
			if topic != tc.topic || string(payload) != tc.expect {
				t.Errorf("encode = %s %s\nwant      %s %s", topic, payload, tc.topic, tc.expect)
			}
		})
	}
}

// TestGroups checks that an object or line never repeats a field and only
// holds readings of one event time.
func TestGroups(t *testing.T) {
	r, b := testBatch(1700000000000)
	r.o = Options{Format: "json", Batch: 4}
	temp, hum := b.rs[0].s, b.rs[1].s
	b.rs = []reading{
		{s: temp, value: "1.00", ts: 10}, {s: temp, value: "2.00", ts: 10}, // one field twice: two objects
		{s: hum, value: "3.00", ts: 10}, {s: hum, value: "4.00", ts: 12},
	}
	_, p := r.encode(b)
	if want := `[{"ts":10,"temperature":1.00},{"ts":10,"temperature":2.00,"humidity":3.00},{"ts":12,"humidity":4.00}]`; string(p) != want {
		t.Errorf("encode = %s, want %s", p, want)
	}
}

// TestSenMLTimesExact checks the claim the senml payloads rest on: with
// event times on a 4 ms grid (the simulator's senml grid is 8 ms, late
// readings 4 ms past it), bt in whole seconds and t the offset in seconds,
// float64(bt) + float64(t), times 1e9 and rounded, is the event time in ns
// exactly, at any time from mid-2006 (2^60 ns) until 2038 (2^31 s), and
// with offsets up to minutes. A time off the grid is not exact in general, which shows the
// grid is needed.
func TestSenMLTimesExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const lo, hi = int64(1<<60/1_000_000 + 1), int64(1<<31*1000 - 1)
	resolve := func(bt, ms int64) int64 {
		p := appendSeconds(nil, ms-bt*1000)
		tf, err := strconv.ParseFloat(string(p), 64)
		if err != nil {
			t.Fatalf("t %s: %v", p, err)
		}
		btf, _ := strconv.ParseFloat(strconv.FormatInt(bt, 10), 64)
		return int64(math.Round((btf + tf) * 1e9))
	}
	inexact := 0
	for range 200_000 {
		ms := lo + rng.Int64N(hi-lo)
		bt := floorDiv(ms-rng.Int64N(300_000), 1000)
		if ms%4 != 0 {
			if resolve(bt, ms) != ms*int64(time.Millisecond) {
				inexact++
			}
			continue
		}
		if got := resolve(bt, ms); got != ms*int64(time.Millisecond) {
			t.Fatalf("event time %d ms, bt %d: resolves to %d ns, want %d", ms, bt, got, ms*int64(time.Millisecond))
		}
	}
	if inexact == 0 {
		t.Errorf("no time off the 4 ms grid resolved inexactly; the grid would not be needed")
	}
}

// TestStampGrid checks the event time grids: normal readings on multiples
// of the grid, late ones half a grid past, each series strictly increasing.
func TestStampGrid(t *testing.T) {
	for _, grid := range []int64{2, 8} {
		s := &series{}
		now := time.UnixMilli(1700000000001)
		prev := int64(0)
		for i := range 100 {
			ts := s.stamp(now.Add(time.Duration(i%3)*time.Millisecond), grid)
			if ts%grid != 0 || ts <= prev || ts < now.UnixMilli() {
				t.Fatalf("grid %d: stamp %d after %d", grid, ts, prev)
			}
			prev = ts
		}
		prev = 0
		for i := range 100 {
			newest := 1700000000000 + int64(i)*grid + int64(i%3)
			ts := s.stampLate(newest, 5000, grid)
			if ts%grid != grid/2 || ts <= prev || ts > newest-5000-3600_000+grid {
				t.Fatalf("grid %d: late stamp %d after %d, newest %d", grid, ts, prev, newest)
			}
			prev = ts
		}
	}
}
