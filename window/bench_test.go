package window

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

// benchStream produces, for n series each reading every period, the
// readings of one interval of wall time, in order, with event time equal
// to arrival time.
type benchStream struct {
	rs     []edgegw.Reading
	series []string
	period time.Duration
	t      int64
}

func newBenchStream(n int, period time.Duration) *benchStream {
	b := &benchStream{period: period, t: base.UnixNano()}
	for i := range n {
		b.series = append(b.series, fmt.Sprintf("sensors,device=d%d,site=s%d", i, i%16))
	}
	return b
}

// next returns one period of readings: one per series, spread evenly.
func (b *benchStream) next() ([]edgegw.Reading, time.Time) {
	b.rs = b.rs[:0]
	step := int64(b.period) / int64(len(b.series))
	for i, s := range b.series {
		b.rs = append(b.rs, edgegw.Reading{Series: s, Field: "temperature", Value: float64(i % 40), Time: b.t + int64(i)*step})
	}
	b.t += int64(b.period)
	return b.rs, time.Unix(0, b.t)
}

func benchAdd(b *testing.B, o Options, series int, period time.Duration) {
	e, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	st := newBenchStream(series, period)
	// Warm up past the first windows so that pools are filled.
	for range int(2*(o.Size+o.AllowedLateness)/period) + 2 {
		rs, now := st.next()
		e.Add(rs, now)
		e.Done(e.Ready())
	}
	rs, now := st.next()
	i, n := 0, 0
	b.ReportAllocs()
	for b.Loop() {
		e.Add(rs[i:i+1], now)
		if i++; i == len(rs) {
			b.StopTimer()
			if n++; n%8 == 0 { // forget what a commit would take, now and then
				e.Done(e.Ready())
			}
			rs, now = st.next()
			i = 0
			b.StartTimer()
		}
	}
}

// BenchmarkAdd measures Add of one reading (ns/op is ns/reading) in steady
// state, window closing included, for the default aggregates with dedup
// on; each series reads once a second.
func BenchmarkAdd(b *testing.B) {
	for _, c := range []struct {
		series      int
		size, slide time.Duration
	}{
		{4000, 10 * time.Second, 10 * time.Second},
		{4000, 60 * time.Second, 10 * time.Second},
		{4000, 60 * time.Second, time.Second},
		{100, 10 * time.Second, 10 * time.Second},
	} {
		o := Options{Size: c.size, Slide: c.slide, AllowedLateness: 5 * time.Second, Dedup: true}
		b.Run(fmt.Sprintf("series=%d/size=%s/slide=%s", c.series, c.size, c.slide), func(b *testing.B) {
			benchAdd(b, o, c.series, time.Second)
		})
	}
	b.Run("series=4000/size=10s/slide=10s/aggs=all", func(b *testing.B) {
		o := Options{Size: 10 * time.Second, AllowedLateness: 5 * time.Second, Dedup: true,
			Aggregates: []string{"count", "mean", "min", "max", "sum", "first", "last", "stddev", "p50", "p90", "p95", "p99"}}
		benchAdd(b, o, 4000, time.Second)
	})
}

// BenchmarkReadyDone measures one checkpoint, Ready and Done, after a
// 100ms batch; each series reads once a second (rate=1Hz) or ten times
// (rate=10Hz).
func BenchmarkReadyDone(b *testing.B) {
	for _, c := range []struct {
		series int
		period time.Duration
	}{{4000, time.Second}, {4000, 100 * time.Millisecond}} {
		b.Run(fmt.Sprintf("series=%d/rate=%gHz/slide=10s", c.series, float64(time.Second)/float64(c.period)), func(b *testing.B) {
			e, _ := New(Options{Size: 10 * time.Second, AllowedLateness: 5 * time.Second, Dedup: true})
			st := newBenchStream(c.series, c.period)
			var rs []edgegw.Reading
			var now time.Time
			// batch returns the next 100ms of readings.
			batch := func() []edgegw.Reading {
				if len(rs) == 0 {
					rs, now = st.next()
				}
				k := min(len(rs), c.series*int(100*time.Millisecond)/int(c.period))
				out := rs[:k]
				rs = rs[k:]
				return out
			}
			for range 300 {
				e.Add(batch(), now)
				e.Done(e.Ready())
			}
			var bytes, batches int
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				e.Add(batch(), now)
				b.StartTimer()
				rd := e.Ready()
				e.Done(rd)
				batches++
				bytes += len(rd.Meta)
				for _, c := range rd.State {
					bytes += len(c.Key) + len(c.Value)
				}
			}
			b.ReportMetric(float64(bytes)/float64(batches), "bytes/checkpoint")
		})
	}
}
