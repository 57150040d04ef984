package window

import (
	"errors"
	"iter"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		opts Options
		want []string // each problem is named
	}{
		{Options{}, []string{"window.size 0s: must be a positive duration"}},
		{Options{Size: 10 * time.Second, Slide: 3 * time.Second}, []string{"window.slide 3s: window.size 10s must be a whole multiple of it"}},
		{Options{Size: 10 * time.Second, Slide: 20 * time.Second}, []string{"window.slide 20s: must not exceed window.size 10s"}},
		{Options{Size: time.Hour, Slide: time.Millisecond}, []string{"window.size/window.slide is 3600000, at most 10000"}},
		{Options{Size: time.Second, AllowedLateness: -time.Second, MaxFuture: -1}, []string{"window.allowed_lateness -1s", "window.max_future -1ns"}},
		{Options{Size: time.Second, LatePolicy: "keep"}, []string{`window.late_policy "keep": must be "drop" or "update"`}},
		{Options{Size: time.Second, Aggregates: []string{"avg", "p50", "p50"}}, []string{`window.aggregates "avg": unknown aggregate, accepted: count mean`, `"p50": listed twice`}},
	}
	for _, tc := range tests {
		e, err := New(tc.opts)
		if e != nil || !errors.Is(err, ErrOptions) {
			t.Errorf("New(%+v) = %v, %v; want nil, ErrOptions", tc.opts, e, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("New(%+v) error %q does not say %q", tc.opts, err, w)
			}
		}
	}
	e, err := New(Options{Size: time.Second})
	if err != nil {
		t.Fatalf("New(Size: 1s) = %v", err)
	}
	if o := e.Options(); o.Slide != time.Second || o.LatePolicy != LateDrop || !slices.Equal(o.Aggregates, DefaultAggregates) {
		t.Errorf("Options() = %+v, want defaults filled in", o)
	}
}

// feed adds rs at base+at and advances.
func feed(e *Engine, at time.Duration, rs ...edgegw.Reading) {
	e.Add(rs, base.Add(at))
	e.Advance(base.Add(at))
}

func rollupStrings(rd Ready) []string {
	var out []string
	for _, r := range rd.Rollups {
		out = append(out, format(r))
	}
	return out
}

func TestFailedCommitKeepsEverythingForTheNextReady(t *testing.T) {
	e, _ := New(Options{Size: 10 * time.Second, Aggregates: []string{"count"}, Dedup: true})
	feed(e, 1*time.Second, rd("t", 1, 1*s))
	feed(e, 11*time.Second, rd("t", 1, 11*s))
	first := e.Ready() // commit fails: no Done
	if got := rollupStrings(first); !slices.Equal(got, []string{"m,id=a@0 t_count=1i"}) || first.Accepted != 2 {
		t.Fatalf("first Ready(): rollups %q, accepted %d", got, first.Accepted)
	}
	feed(e, 21*time.Second, rd("t", 1, 21*s), rd("t", 1, 21*s))
	second := e.Ready()
	if got := rollupStrings(second); !slices.Equal(got, []string{"m,id=a@0 t_count=1i", "m,id=a@10 t_count=1i"}) {
		t.Errorf("second Ready() rollups %q, want both windows", got)
	}
	if second.Accepted != 3 || second.Duplicate != 1 {
		t.Errorf("second Ready() accepted %d duplicate %d, want 3 and 1", second.Accepted, second.Duplicate)
	}
	// State: the pane of 0s was dropped before the first Ready, so it
	// appears in neither; the pane of 10s, in the first, is now deleted;
	// the pane of 20s is put.
	if len(second.State) != 2 {
		t.Errorf("second Ready() has %d state changes, want 2", len(second.State))
	}
	e.Done(second)
	e.Done(first) // older than one already done: ignored
	third := e.Ready()
	if len(third.Rollups) != 0 || len(third.State) != 0 || third.Accepted != 0 || third.Duplicate != 0 {
		t.Errorf("Ready() after Done = %+v, want nothing pending", third)
	}
	if !slices.Equal(third.Meta, second.Meta) {
		t.Errorf("Meta changed with no input")
	}
}

func TestChangesAfterReadySurviveItsDone(t *testing.T) {
	e, _ := New(Options{Size: 10 * time.Second, Aggregates: []string{"count"}})
	feed(e, 1*time.Second, rd("t", 1, 1*s))
	r1 := e.Ready()
	feed(e, 11*time.Second, rd("t", 1, 11*s)) // while r1 is being committed
	e.Done(r1)
	r2 := e.Ready()
	if got := rollupStrings(r2); !slices.Equal(got, []string{"m,id=a@0 t_count=1i"}) || r2.Accepted != 1 || len(r2.State) != 2 {
		t.Errorf("Ready() after Done of an older Ready: rollups %q, accepted %d, %d changes; want the window, 1, a put and a delete",
			got, r2.Accepted, len(r2.State))
	}
}

func TestRestoreRoundTrip(t *testing.T) {
	o := Options{Size: 10 * time.Second, Slide: 5 * time.Second, AllowedLateness: 2 * time.Second, Dedup: true,
		LatePolicy: LateUpdate, Aggregates: []string{"count", "mean", "stddev", "first", "last", "p90"}}
	a, _ := New(o)
	st := newMemStore()
	commit := func(e *Engine) Ready {
		rd := e.Ready()
		st.commit(rd)
		e.Done(rd)
		return rd
	}
	feed(a, 1*time.Second, rd("t", 1, 1*s), rd("h", 50, 1*s), rd("t", -2, 2*s, "m,id=b"))
	feed(a, 6*time.Second, rd("t", 3.5, 6*s), rd("t", 1e6, 4*s))
	commit(a)

	b := st.restore(t, o)
	if b.Watermark() != a.Watermark() || b.Panes() != a.Panes() || b.Series() != a.Series() || b.OpenWindows() != a.OpenWindows() {
		t.Fatalf("restored: watermark %d panes %d series %d open %d; original %d %d %d %d",
			b.Watermark(), b.Panes(), b.Series(), b.OpenWindows(), a.Watermark(), a.Panes(), a.Series(), a.OpenWindows())
	}
	steps := []step{
		{7 * time.Second, []edgegw.Reading{rd("t", 1, 1*s), rd("t", 7, 7*s)}}, // a redelivery: duplicate
		{13 * time.Second, []edgegw.Reading{rd("t", 9, 12*s)}},
		{14 * time.Second, []edgegw.Reading{rd("t", 2, 3*s)}}, // late, corrects closed windows
		{40 * time.Second, nil},
	}
	for _, sp := range steps {
		feed(a, sp.now, sp.rs...)
		feed(b, sp.now, sp.rs...)
		ra, rb := a.Ready(), b.Ready()
		if !sameReady(ra, rb) {
			t.Fatalf("at %s: restored Ready() = %+v\nnever stopped: %+v", sp.now, rb, ra)
		}
		a.Done(ra)
		b.Done(rb)
		if sp.now == 7*time.Second && ra.Duplicate != 1 {
			t.Errorf("redelivered reading: duplicate %d, want 1", ra.Duplicate)
		}
	}
}

func TestRestoreRefuses(t *testing.T) {
	o := Options{Size: 10 * time.Second, Aggregates: []string{"count", "p50"}, Dedup: true}
	a, _ := New(o)
	feed(a, time.Second, rd("t", 1, 1*s))
	rd1 := a.Ready()
	st := newMemStore()
	st.commit(rd1)

	if err := a.Restore(st.meta, st.entries()); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("Restore() on a fed engine = %v, want ErrNotEmpty", err)
	}
	other, _ := New(Options{Size: 20 * time.Second, Aggregates: []string{"count", "p50"}})
	if err := other.Restore(st.meta, st.entries()); !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "window.size 10s") {
		t.Errorf("Restore() with another size = %v, want ErrIncompatible naming window.size 10s", err)
	}
	noPct, _ := New(Options{Size: 10 * time.Second, Aggregates: []string{"count"}})
	if err := noPct.Restore(st.meta, st.entries()); !errors.Is(err, ErrIncompatible) {
		t.Errorf("Restore() without percentiles = %v, want ErrIncompatible", err)
	}

	var key, val []byte
	for k, v := range st.entries() {
		key, val = k, v
	}
	one := func(k, v []byte) iter.Seq2[[]byte, []byte] {
		return func(yield func([]byte, []byte) bool) { yield(k, v) }
	}
	corrupt := []struct {
		name     string
		meta     []byte
		key, val []byte
	}{
		{"meta version", append([]byte{9}, st.meta[1:]...), key, val},
		{"meta truncated", st.meta[:4], key, val},
		{"entries without meta", nil, key, val},
		{"unknown key", st.meta, []byte("x"), val},
		{"value truncated", st.meta, key, val[:len(val)/2]},
		{"value trailing", st.meta, key, append(slices.Clone(val), 0)},
	}
	for i := range len(val) { // every single-byte corruption is refused or harmless
		v := slices.Clone(val)
		v[i] ^= 0xff
		e, _ := New(o)
		_ = e.Restore(st.meta, one(key, v))
		feed(e, 30*time.Second, rd("t", 1, 30*s))
		_ = e.Ready()
	}
	for _, c := range corrupt {
		e, _ := New(o)
		err := e.Restore(c.meta, one(c.key, c.val))
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("Restore(%s) = %v, want ErrCorrupt", c.name, err)
			continue
		}
		// The engine stays empty and usable.
		if e.Panes() != 0 || e.Watermark() != math.MinInt64 {
			t.Errorf("after failed Restore(%s): %d panes, watermark %d", c.name, e.Panes(), e.Watermark())
		}
		if err := e.Restore(st.meta, st.entries()); err != nil {
			t.Errorf("Restore() after failed Restore(%s) = %v", c.name, err)
		}
	}
	fresh, _ := New(o)
	if err := fresh.Restore(nil, nil); err != nil {
		t.Errorf("Restore(nil, nil) = %v, want nil", err)
	}
}

func TestClockNeverGoesBackwards(t *testing.T) {
	e, _ := New(Options{Size: 10 * time.Second, AllowedLateness: time.Second})
	if w := e.Watermark(); w != math.MinInt64 {
		t.Fatalf("Watermark() before any reading = %d", w)
	}
	feed(e, 5*time.Second, rd("t", 1, 5*s))
	w0 := e.Watermark()
	if want := base.UnixNano() + 4*s; w0 != want {
		t.Errorf("Watermark() = %d, want %d (event 5s - lateness 1s)", w0, want)
	}
	feed(e, 3*time.Second) // the wall clock stepped back
	feed(e, 4*time.Second, rd("t", 1, 1*s))
	if w := e.Watermark(); w != w0 {
		t.Errorf("Watermark() after the wall clock stepped back = %d, want %d", w, w0)
	}
	feed(e, 7*time.Second)
	if w, want := e.Watermark(), base.UnixNano()+6*s; w != want {
		t.Errorf("Watermark() 2s after the step back = %d, want %d", w, want)
	}
	if n := e.OpenWindows(); n != 1 {
		t.Errorf("OpenWindows() = %d, want 1", n)
	}
	feed(e, 11*time.Second)
	if n := e.OpenWindows(); n != 0 || e.Panes() != 0 || e.Series() != 0 {
		t.Errorf("after close: OpenWindows() %d, Panes() %d, Series() %d; want 0", n, e.Panes(), e.Series())
	}
}

func TestDoneIgnoresForeignReady(t *testing.T) {
	a, _ := New(Options{Size: time.Second})
	b, _ := New(Options{Size: time.Second})
	feed(a, 0, rd("t", 1, 0))
	feed(b, 0, rd("t", 1, 0))
	rb := b.Ready()
	a.Ready()
	a.Done(rb)
	a.Done(Ready{})
	if got := a.Ready(); got.Accepted != 1 || len(got.State) != 1 {
		t.Errorf("Ready() after Done of foreign Readys = %+v, want the reading still pending", got)
	}
}
