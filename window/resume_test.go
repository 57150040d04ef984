package window

import (
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

// A spell in which the gateway cannot hear (stopped, disconnected) must not
// close windows: after Resume, readings held back during the spell still
// count.
func TestResumeKeepsTheClockWhereItStood(t *testing.T) {
	sec := func(s int64) int64 { return s * int64(time.Second) }
	wall := func(s int64) time.Time { return time.Unix(1000+s, 0) }
	opts := Options{Size: 10 * time.Second, Slide: 10 * time.Second, AllowedLateness: 2 * time.Second, Dedup: true}
	run := func(resume bool) []edgegw.Rollup {
		e, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		e.Add([]edgegw.Reading{{Series: "m", Field: "v", Value: 1, Time: sec(1)}}, wall(1))
		// An hour passes unheard; then a reading the broker held, stamped 5.
		if resume {
			e.Resume(wall(3600))
		}
		e.Add([]edgegw.Reading{{Series: "m", Field: "v", Value: 2, Time: sec(5)}}, wall(3600))
		e.Advance(wall(3600 + 20))
		return e.Ready().Rollups
	}
	with := run(true)
	if len(with) != 1 || with[0].Fields[0].Name != "v_count" || with[0].Fields[0].Value != 2 {
		t.Errorf("with Resume: rollups %+v, want one window with v_count 2", with)
	}
	without := run(false)
	if len(without) != 1 || without[0].Fields[0].Value != 1 {
		t.Errorf("without Resume: rollups %+v, want one window with v_count 1 (the held reading late)", without)
	}
}

func TestResumeSurvivesRestore(t *testing.T) {
	opts := Options{Size: 10 * time.Second, Slide: 10 * time.Second, AllowedLateness: 2 * time.Second}
	e, _ := New(opts)
	e.Add([]edgegw.Reading{{Series: "m", Field: "v", Value: 1, Time: int64(time.Second)}}, time.Unix(1000, 0))
	rd := e.Ready()
	e.Done(rd)
	r, _ := New(opts)
	state := func(yield func([]byte, []byte) bool) {
		for _, c := range rd.State {
			if !yield(c.Key, c.Value) {
				return
			}
		}
	}
	if err := r.Restore(rd.Meta, state); err != nil {
		t.Fatal(err)
	}
	before := r.Watermark()
	r.Resume(time.Unix(5000, 0))
	r.Advance(time.Unix(5000, 0))
	if got := r.Watermark(); got != before {
		t.Errorf("watermark after restore+Resume+Advance = %d, want %d (unchanged)", got, before)
	}
	r.Advance(time.Unix(5003, 0))
	if got, want := r.Watermark(), before+3*int64(time.Second); got != want {
		t.Errorf("watermark 3 s after Resume = %d, want %d", got, want)
	}
}
