package window

import (
	"bytes"
	"cmp"
	"fmt"
	"iter"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/edgegw/edgegw"
)

// memStore keeps what a store would: the state entries, the metadata and
// the outbox of every Ready committed.
type memStore struct {
	state  map[string][]byte
	meta   []byte
	outbox []edgegw.Rollup
	counts totals
}

func newMemStore() *memStore { return &memStore{state: make(map[string][]byte)} }

func (m *memStore) commit(rd Ready) {
	for _, c := range rd.State {
		if c.Value == nil {
			delete(m.state, string(c.Key))
		} else {
			m.state[string(c.Key)] = bytes.Clone(c.Value)
		}
	}
	m.meta = bytes.Clone(rd.Meta)
	m.outbox = append(m.outbox, rd.Rollups...)
	m.counts.Accepted += rd.Accepted
	m.counts.Late += rd.Late
	m.counts.Duplicate += rd.Duplicate
	m.counts.Future += rd.Future
	m.counts.Invalid += rd.Invalid
}

// entries yields the state in key order, as bbolt does.
func (m *memStore) entries() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for _, k := range slices.Sorted(maps.Keys(m.state)) {
			if !yield([]byte(k), m.state[k]) {
				return
			}
		}
	}
}

func (m *memStore) restore(t *testing.T, o Options) *Engine {
	t.Helper()
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Restore(m.meta, m.entries()); err != nil {
		t.Fatalf("Restore() = %v", err)
	}
	return e
}

// model is the naive reference: it keeps every accepted reading with the
// event clock at its arrival and computes each window from that list.
type model struct {
	o                 Options
	slide, size, late int64
	dedup, update     bool
	hasClock          bool
	delta, clock      int64 // max(t - wall) and the clock high-water mark
	accepted          []arrival
	seen              map[[3]any]bool
	counts            totals
}

type arrival struct {
	r     edgegw.Reading
	clock int64
}

func newModel(o Options) *model {
	return &model{o: o, slide: int64(o.Slide), size: int64(o.Size), late: int64(o.AllowedLateness),
		dedup: o.Dedup, update: o.LatePolicy == LateUpdate, seen: map[[3]any]bool{}}
}

func (m *model) advance(w int64) {
	if m.hasClock {
		m.clock = max(m.clock, m.delta+w)
	}
}

func (m *model) add(rs []edgegw.Reading, w int64) {
	for _, r := range rs {
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			m.counts.Invalid++
			continue
		}
		if m.o.MaxFuture > 0 && r.Time > w+int64(m.o.MaxFuture) {
			m.counts.Future++
			continue
		}
		if !m.hasClock {
			m.hasClock, m.delta, m.clock = true, r.Time-w, r.Time
		}
		m.delta = max(m.delta, r.Time-w)
		m.advance(w)
		start := r.Time - ((r.Time%m.slide)+m.slide)%m.slide // start of its pane
		horizon := start + m.size + m.late                   // its last window closes
		if m.update {
			horizon += m.late
		}
		if m.clock >= horizon {
			m.counts.Late++
			continue
		}
		id := [3]any{r.Series, r.Field, r.Time}
		if m.dedup && m.seen[id] {
			m.counts.Duplicate++
			continue
		}
		m.seen[id] = true
		m.accepted = append(m.accepted, arrival{r, m.clock})
		m.counts.Accepted++
	}
}

type winKey struct {
	series string
	start  int64
}

// windows returns, for every (series, window) closed by now, the readings
// by field in arrival order.
func (m *model) windows() map[winKey]map[string][]edgegw.Reading {
	out := map[winKey]map[string][]edgegw.Reading{}
	for _, a := range m.accepted {
		t := a.r.Time
		for start := t - ((t%m.slide)+m.slide)%m.slide; start > t-m.size; start -= m.slide {
			end := start + m.size
			closeAt := end + m.late
			if m.clock < closeAt {
				continue // still open
			}
			limit := closeAt
			if m.update {
				limit += m.late
			}
			if a.clock >= limit {
				continue
			}
			k := winKey{a.r.Series, start}
			if out[k] == nil {
				out[k] = map[string][]edgegw.Reading{}
			}
			out[k][a.r.Field] = append(out[k][a.r.Field], a.r)
		}
	}
	return out
}

var modelMapping, _ = mapping.NewLogarithmicMapping(SketchAccuracy)

// expect computes the fields of one window directly from its readings.
func (m *model) expect(byField map[string][]edgegw.Reading) map[string]float64 {
	out := map[string]float64{}
	for f, rs := range byField {
		n := float64(len(rs))
		var sum float64
		mn, mx := math.Inf(1), math.Inf(-1)
		first, last := rs[0], rs[0]
		vals := make([]float64, 0, len(rs))
		sk := ddsketch.NewDDSketchFromStoreProvider(modelMapping, store.DenseStoreConstructor)
		for _, r := range rs {
			sum += r.Value
			mn, mx = min(mn, r.Value), max(mx, r.Value)
			if r.Time < first.Time {
				first = r
			}
			if r.Time >= last.Time {
				last = r
			}
			vals = append(vals, r.Value)
			_ = sk.Add(r.Value)
		}
		mean := sum / n
		var ss float64
		for _, v := range vals {
			ss += (v - mean) * (v - mean)
		}
		sd := 0.0
		if len(vals) > 1 {
			sd = math.Sqrt(ss / (n - 1))
		}
		for _, a := range m.o.Aggregates {
			var v float64
			switch a {
			case "count":
				v = n
			case "mean":
				v = mean
			case "min":
				v = mn
			case "max":
				v = mx
			case "sum":
				v = sum
			case "first":
				v = first.Value
			case "last":
				v = last.Value
			case "stddev":
				v = sd
			default:
				q := map[string]float64{"p50": .5, "p90": .9, "p95": .95, "p99": .99}[a]
				v, _ = sk.GetValueAtQuantile(q)
				sort.Float64s(vals)
				// The sketch rounds the rank down for positive values and up
				// for negative ones.
				lo, hi := vals[int(math.Floor(q*(n-1)))], vals[int(math.Ceil(q*(n-1)))]
				if math.Abs(v-lo) > SketchAccuracy*math.Abs(lo)+1e-9 && math.Abs(v-hi) > SketchAccuracy*math.Abs(hi)+1e-9 {
					panic(fmt.Sprintf("sketch %s = %v, exact %v or %v: beyond its accuracy", a, v, lo, hi))
				}
			}
			out[f+"_"+a] = v
		}
	}
	return out
}

// op is one input: readings (or none, for Advance only) at a wall time.
type op struct {
	rs []edgegw.Reading
	w  int64
}

func randomOptions(rng *rand.Rand) Options {
	slide := []time.Duration{time.Second, 2 * time.Second, 5 * time.Second}[rng.IntN(3)]
	o := Options{
		Size:            slide * time.Duration(1+rng.IntN(4)),
		Slide:           slide,
		AllowedLateness: []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}[rng.IntN(4)],
		Dedup:           rng.IntN(3) > 0,
		LatePolicy:      []LatePolicy{LateDrop, LateUpdate}[rng.IntN(2)],
	}
	if rng.IntN(2) == 0 {
		o.MaxFuture = 30 * time.Second
	}
	for _, a := range aggNames {
		if rng.IntN(3) == 0 {
			o.Aggregates = append(o.Aggregates, a)
		}
	}
	if len(o.Aggregates) == 0 {
		o.Aggregates = []string{"count"}
	}
	return o
}

func randomOps(rng *rand.Rand, o Options) []op {
	w := []int64{-100 * s, 0, base.UnixNano()}[rng.IntN(3)]
	nSeries, nFields := 1+rng.IntN(4), 1+rng.IntN(2)
	var sent []edgegw.Reading
	var ops []op
	for range 20 + rng.IntN(60) {
		switch x := rng.IntN(20); {
		case x == 0:
			w += int64(10+rng.IntN(50)) * s // a silent spell
		case x == 1:
			w -= int64(rng.IntN(1000)) * int64(time.Millisecond) // wall clock stepped back
		default:
			w += int64(rng.IntN(2000)) * int64(time.Millisecond)
		}
		var rs []edgegw.Reading
		for range rng.IntN(7) {
			if len(sent) > 0 && rng.IntN(8) == 0 {
				r := sent[rng.IntN(len(sent))] // a resend, maybe with another value
				if rng.IntN(2) == 0 {
					r.Value = float64(rng.IntN(400)-200) / 4
				}
				rs = append(rs, r)
				continue
			}
			off := -int64(rng.IntN(int(o.AllowedLateness/time.Millisecond)+700)) * int64(time.Millisecond)
			switch rng.IntN(20) {
			case 0:
				off = -int64(rng.IntN(40)) * s // probably late
			case 1:
				if o.MaxFuture > 0 {
					off = int64(o.MaxFuture) + int64(1+rng.IntN(10))*s // rejected
				}
			case 2:
				off = int64(rng.IntN(1000)) * int64(time.Millisecond) // a little ahead
			case 3:
				if rng.IntN(50) == 0 {
					off = int64(rng.IntN(30)) * s // a device clock ahead
				}
			}
			r := edgegw.Reading{
				Series: fmt.Sprintf("m,id=%d", rng.IntN(nSeries)),
				Field:  fmt.Sprintf("f%d", rng.IntN(nFields)),
				Value:  float64(rng.IntN(400)-200) / 4,
				Time:   w + off,
			}
			if rng.IntN(40) == 0 {
				r.Value = math.NaN()
			}
			rs = append(rs, r)
			sent = append(sent, r)
		}
		ops = append(ops, op{rs, w})
	}
	return ops
}

func checkReady(t *testing.T, rd Ready) {
	t.Helper()
	if !slices.IsSortedFunc(rd.Rollups, func(a, b edgegw.Rollup) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.Series, b.Series))
	}) {
		t.Fatalf("Ready().Rollups not sorted by start, series")
	}
	for i, c := range rd.State {
		if len(c.Key) == 0 || (i > 0 && bytes.Compare(rd.State[i-1].Key, c.Key) >= 0) {
			t.Fatalf("Ready().State keys empty or not strictly sorted at %d", i)
		}
	}
	if len(rd.Meta) == 0 {
		t.Fatalf("Ready().Meta empty")
	}
}

func sameReady(a, b Ready) bool {
	return slices.EqualFunc(a.Rollups, b.Rollups, func(x, y edgegw.Rollup) bool {
		return x.Series == y.Series && x.Start == y.Start && slices.Equal(x.Fields, y.Fields)
	}) && slices.EqualFunc(a.State, b.State, func(x, y Change) bool {
		return bytes.Equal(x.Key, y.Key) && bytes.Equal(x.Value, y.Value) && (x.Value == nil) == (y.Value == nil)
	}) && bytes.Equal(a.Meta, b.Meta) && a.Accepted == b.Accepted && a.Late == b.Late &&
		a.Duplicate == b.Duplicate && a.Future == b.Future && a.Invalid == b.Invalid
}

// TestAgainstModel feeds random streams through the engine, with failed
// commits, crashes (the engine rebuilt from what was committed and the
// uncommitted input delivered again) and restarts (a restored engine run
// in lockstep with the one it replaces), and checks the rollups committed
// against the naive model.
func TestAgainstModel(t *testing.T) {
	const cases = 300
	for c := range cases {
		seed := uint64(c)
		rng := rand.New(rand.NewPCG(seed, 7))
		o := randomOptions(rng)
		ops := randomOps(rng, o)
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runCase(t, rng, o, ops) })
	}
}

func runCase(t *testing.T, rng *rand.Rand, o Options, ops []op) {
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	o = e.Options()
	st := newMemStore()
	mod := newModel(o)
	var uncommitted []op // fed since the last Done
	var twin *Engine     // restored at the last restart, fed the same
	apply := func(x op) {
		for _, en := range []*Engine{e, twin} {
			if en == nil {
				continue
			}
			now := time.Unix(0, x.w)
			en.Add(x.rs, now)
			en.Advance(now)
		}
		uncommitted = append(uncommitted, x)
	}
	i := 0
	next := func() {
		if i < len(ops) {
			apply(ops[i])
			i++
		}
	}
	commit := func() {
		rd := e.Ready()
		n := len(uncommitted)
		checkReady(t, rd)
		var trd Ready
		if twin != nil {
			if trd = twin.Ready(); !sameReady(rd, trd) {
				t.Fatalf("restored engine: Ready() = %+v\nnever-stopped engine: %+v", trd, rd)
			}
			if twin.Watermark() != e.Watermark() || twin.OpenWindows() != e.OpenWindows() || twin.Panes() != e.Panes() {
				t.Fatalf("restored engine introspection differs")
			}
		}
		if rng.IntN(4) == 0 {
			next() // input arriving while the commit runs
		}
		switch x := rng.IntN(20); {
		case x < 2: // commit failed: the next Ready must hold this one too
		case x < 4: // crash: rebuild from the store, deliver again
			twin = nil
			e = st.restore(t, o)
			redo := uncommitted
			uncommitted = nil
			w := redo[len(redo)-1].w
			for _, r := range redo {
				apply(op{r.rs, max(w, r.w)})
			}
		default:
			st.commit(rd)
			e.Done(rd)
			if twin != nil {
				twin.Done(rd) // a Ready of another engine: ignored
				twin.Done(trd)
			}
			for _, x := range uncommitted[:n] {
				mod.add(x.rs, x.w)
				mod.advance(x.w)
			}
			uncommitted = slices.Delete(uncommitted, 0, n)
			if len(uncommitted) == 0 && len(st.state) != e.Panes() {
				t.Fatalf("store holds %d state entries, engine %d panes", len(st.state), e.Panes())
			}
			if rng.IntN(8) == 0 && len(uncommitted) == 0 { // restart: run the restored one beside
				twin, e = e, st.restore(t, o)
			}
		}
	}
	for i < len(ops) {
		next()
		commit()
	}
	// Close everything and commit it.
	end := ops[len(ops)-1].w + int64(o.Size+3*o.AllowedLateness) + 100*s
	apply(op{nil, end})
	for len(uncommitted) > 0 {
		commit()
	}

	if st.counts != mod.counts {
		t.Errorf("committed counts %+v, model %+v", st.counts, mod.counts)
	}
	got := map[winKey]edgegw.Rollup{}
	for _, r := range st.outbox {
		k := winKey{r.Series, r.Start}
		if _, dup := got[k]; dup && !mod.update {
			t.Errorf("rollup %s@%d committed twice under drop", r.Series, r.Start)
		}
		got[k] = r
	}
	want := mod.windows()
	for k, byField := range want {
		r, ok := got[k]
		if !ok {
			t.Errorf("window %s@%d: no rollup, want one of %d fields", k.series, k.start, len(byField))
			continue
		}
		exp := mod.expect(byField)
		if len(r.Fields) != len(exp) {
			t.Errorf("window %s@%d: got fields %v, want %v", k.series, k.start, r.Fields, exp)
			continue
		}
		scale := 0.0
		for _, rs := range byField {
			for _, x := range rs {
				scale += math.Abs(x.Value)
			}
		}
		for _, f := range r.Fields {
			w, ok := exp[f.Name]
			if !ok || math.Abs(f.Value-w) > 1e-9*(scale+1) || f.Integer != (f.Name[len(f.Name)-6:] == "_count") {
				t.Errorf("window %s@%d: %s = %v (integer %v), want %v", k.series, k.start, f.Name, f.Value, f.Integer, w)
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("window %s@%d: unexpected rollup %v", k.series, k.start, got[k])
		}
	}
	if t.Failed() {
		t.Logf("options %+v", o)
	}
	if testing.Verbose() {
		t.Logf("windows %d, counts %+v", len(want), st.counts)
	}
}
