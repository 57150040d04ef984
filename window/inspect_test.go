package window

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestInspect(t *testing.T) {
	for _, o := range []Options{
		{Size: 10 * time.Second, Slide: 5 * time.Second, AllowedLateness: 2 * time.Second, Dedup: true},
		{Size: 10 * time.Second, AllowedLateness: 3 * time.Second, Aggregates: []string{"p90", "stddev"}},
	} {
		e, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		ms := newMemStore()
		commit := func() { r := e.Ready(); ms.commit(r); e.Done(r) }

		empty, err := Inspect(nil, ms.entries())
		if err != nil || empty.HasClock || empty.Panes != 0 || len(empty.Series) != 0 {
			t.Errorf("Inspect of nothing = %+v, %v; want an empty Checkpoint", empty, err)
		}

		feed(e, 0, rd("t", 1, 1*s), rd("h", 2, 2*s), rd("t", 3, 6*s, "m,id=b"))
		feed(e, 3*time.Second, rd("t", 4, 3*s), rd("t", 5, 12*s))
		commit()
		feed(e, 16*time.Second, rd("t", 6, 14*s, "m,id=b"), rd("t", 7, 21*s, "m,id=b"))
		commit()

		c, err := Inspect(ms.meta, ms.entries())
		if err != nil {
			t.Fatalf("Inspect() = %v", err)
		}
		if c.Size != o.Size || c.Slide != e.Options().Slide {
			t.Errorf("Size, Slide = %v, %v; want %v, %v", c.Size, c.Slide, o.Size, e.Options().Slide)
		}
		if c.Panes != e.Panes() {
			t.Errorf("Panes = %d, want the engine's %d", c.Panes, e.Panes())
		}
		if wm, ok := c.Watermark(o.AllowedLateness); !ok || wm != e.Watermark() {
			t.Errorf("Watermark(%v) = %d, %v; want the engine's %d", o.AllowedLateness, wm, ok, e.Watermark())
		}
		// The clock is at 25 s: event time 12 s seen at wall time 3 s, then
		// 13 s of wall time. With lateness L, windows ending at or before
		// 25 s - L are closed.
		slide := int64(e.Options().Slide)
		wantClosed := ((25*s-int64(o.Size)-int64(o.AllowedLateness))/slide + 1) * slide
		if got := c.ClosedBefore - base.UnixNano(); got != wantClosed {
			t.Errorf("ClosedBefore = base%+ds, want base%+ds", got/s, wantClosed/s)
		}
		var panes int
		var keys []string
		for _, ss := range c.Series {
			keys = append(keys, ss.Key)
			panes += ss.Panes
			if ss.Readings < int64(ss.Panes) || ss.First >= ss.Last {
				t.Errorf("series %+v: want at least a reading per pane and First < Last", ss)
			}
		}
		if panes != c.Panes || !slices.IsSorted(keys) {
			t.Errorf("series %v hold %d panes, want %d, sorted by key", keys, panes, c.Panes)
		}
		b := c.Series[len(c.Series)-1]
		if b.Key != "m,id=b" || !slices.Equal(b.Fields, []string{"t"}) || b.Last != base.UnixNano()+20*s+slide {
			t.Errorf("last series = %+v, want m,id=b with field t up to the end of the pane of base+21s", b)
		}
	}
}

func TestInspectRefusesCorruptState(t *testing.T) {
	e, _ := New(Options{Size: 10 * time.Second})
	ms := newMemStore()
	feed(e, 0, rd("t", 1, 1*s))
	r := e.Ready()
	ms.commit(r)
	for k := range ms.state {
		ms.state[k] = ms.state[k][:3]
	}
	if _, err := Inspect(ms.meta, ms.entries()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Inspect of a truncated entry = %v, want ErrCorrupt", err)
	}
	if _, err := Inspect([]byte{9}, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Inspect of a bad meta = %v, want ErrCorrupt", err)
	}
	if _, err := Inspect(nil, ms.entries()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Inspect of state without meta = %v, want ErrCorrupt", err)
	}
}
