package simulator

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// fields are the fields every simulated device reports, in publish order.
var fields = [...]struct {
	name           string
	center, spread float64 // mean of the walk, spread of its starting point
	step           float64 // standard deviation of one step
	lo, hi         float64 // the walk stays within [lo, hi]
}{
	{name: "temperature", center: 21, spread: 1.5, step: 0.1, lo: -40, hi: 85},
	{name: "humidity", center: 45, spread: 5, step: 0.3, lo: 0, hi: 100},
}

// series is one device's field: its topic, its truth-file line prefix and the
// state of its random walk and timestamps.
type series struct {
	topic string
	line  string // "sensors,device=dev3,site=site1 temperature="
	field int    // index into fields

	value    float64 // current value of the walk, unrounded
	last     int64   // newest normal event time in ms (even)
	lastLate int64   // newest late event time in ms (odd)
}

// newSeries returns the series of devices devices on sites sites, device by
// device, each device's fields in the order of fields. Starting values are
// drawn from rng.
func newSeries(rng *rand.Rand, prefix string, devices, sites int) []*series {
	out := make([]*series, 0, 2*devices)
	for d := range devices {
		dev := "dev" + strconv.Itoa(d+1)
		site := "site" + strconv.Itoa(d%sites+1)
		for f, fd := range fields {
			out = append(out, &series{
				topic: prefix + "/" + site + "/" + dev + "/" + fd.name,
				line:  measurement + ",device=" + dev + ",site=" + site + " " + fd.name + "=",
				field: f,
				value: fd.center + rng.NormFloat64()*fd.spread,
			})
		}
	}
	return out
}

// next advances the walk one step with draws from rng and returns the new
// value with two decimals.
func (s *series) next(rng *rand.Rand) string {
	fd := &fields[s.field]
	v := s.value + 0.05*(fd.center-s.value) + rng.NormFloat64()*fd.step
	s.value = math.Min(fd.hi, math.Max(fd.lo, v))
	return strconv.FormatFloat(s.value, 'f', 2, 64)
}

// stamp returns the event time in ms of a normal reading of s made at now:
// now rounded up to an even millisecond, and past every earlier one of s.
func (s *series) stamp(now time.Time) int64 {
	ts := now.UnixMilli()
	ts += ts & 1
	if ts <= s.last {
		ts = s.last + 2
	}
	s.last = ts
	return ts
}

// stampLate returns the event time in ms of a late reading of s when newest
// is the newest event time published and lateness the gateway's allowed
// lateness in ms: an hour beyond the bound, odd, and past every earlier late
// reading of s.
func (s *series) stampLate(newest, lateness int64) int64 {
	ts := newest - lateness - time.Hour.Milliseconds()
	if ts&1 == 0 {
		ts--
	}
	if s.lastLate != 0 && ts <= s.lastLate {
		ts = s.lastLate + 2
	}
	s.lastLate = ts
	return ts
}

// reading is one distinct reading on its way out.
type reading struct {
	s     *series
	value string // two decimals
	ts    int64  // event time in ms
	late  bool
	held  bool // generated out of order, published after a delay
}

// kind is what one message slot publishes.
type kind int

const (
	normal kind = iota
	outOfOrder
	late
	duplicate
)

// heldReading is a reading held back to be published out of order.
type heldReading struct {
	due  time.Time // wall time it is due
	seq  int64     // breaks ties in generation order
	r    reading
	done bool // published (or dropped) through the other heap
}

// heldQueue holds readings back. A reading is released when its wall time
// is due, or, with event times (format json), once the newest event time
// published is maxLag past its own: so it never lags the stream by more than
// maxLag, even when event time runs ahead of the wall clock.
type heldQueue struct {
	byDue pq // by due, then seq
	byTS  pq // by event time, then seq; json only
	n     int
}

func newHeldQueue() heldQueue {
	return heldQueue{
		byDue: pq{less: func(a, b *heldReading) bool {
			if !a.due.Equal(b.due) {
				return a.due.Before(b.due)
			}
			return a.seq < b.seq
		}},
		byTS: pq{less: func(a, b *heldReading) bool {
			if a.r.ts != b.r.ts {
				return a.r.ts < b.r.ts
			}
			return a.seq < b.seq
		}},
	}
}

// Len returns the number of readings held.
func (q *heldQueue) Len() int { return q.n }

// push holds h; byTS orders it only when it has an event time.
func (q *heldQueue) push(h *heldReading) {
	heap.Push(&q.byDue, h)
	if h.r.ts != 0 {
		heap.Push(&q.byTS, h)
	}
	q.n++
}

// nextDue returns the earliest due time; ok is false when nothing is held.
func (q *heldQueue) nextDue() (due time.Time, ok bool) {
	if top := q.byDue.top(); top != nil {
		return top.due, true
	}
	return time.Time{}, false
}

// release returns a reading due at now or lagging newest by maxLag ms or
// more, or nil.
func (q *heldQueue) release(now time.Time, newest, maxLag int64) *heldReading {
	if top := q.byDue.top(); top != nil && !top.due.After(now) {
		return q.take(heap.Pop(&q.byDue).(*heldReading))
	}
	if top := q.byTS.top(); top != nil && newest-top.r.ts >= maxLag {
		return q.take(heap.Pop(&q.byTS).(*heldReading))
	}
	return nil
}

// popDue returns the reading due first, or nil when nothing is held.
func (q *heldQueue) popDue() *heldReading {
	if q.byDue.top() == nil {
		return nil
	}
	return q.take(heap.Pop(&q.byDue).(*heldReading))
}

func (q *heldQueue) take(h *heldReading) *heldReading {
	h.done = true
	q.n--
	return h
}

// pq is a min-heap of held readings; entries released through the other
// heap are dropped when they reach the top.
type pq struct {
	items []*heldReading
	less  func(a, b *heldReading) bool
}

// top returns the first entry not yet released, or nil.
func (p *pq) top() *heldReading {
	for len(p.items) > 0 && p.items[0].done {
		heap.Pop(p)
	}
	if len(p.items) == 0 {
		return nil
	}
	return p.items[0]
}

func (p pq) Len() int           { return len(p.items) }
func (p pq) Less(i, j int) bool { return p.less(p.items[i], p.items[j]) }
func (p pq) Swap(i, j int)      { p.items[i], p.items[j] = p.items[j], p.items[i] }
func (p *pq) Push(x any)        { p.items = append(p.items, x.(*heldReading)) }
func (p *pq) Pop() any {
	old := p.items
	x := old[len(old)-1]
	old[len(old)-1] = nil
	p.items = old[:len(old)-1]
	return x
}

// recentSize is how many published messages a duplicate is picked from.
const recentSize = 1024

// message is one MQTT message: its topic and payload.
type message struct {
	topic   string
	payload []byte
}

// recent is a ring of the last recentSize messages published.
type recent struct {
	buf [recentSize]message
	n   int // messages ever added
}

func (r *recent) add(m message) { r.buf[r.n%recentSize] = m; r.n++ }

// pick returns one of the messages in the ring, chosen with rng; the ring
// must not be empty.
func (r *recent) pick(rng *rand.Rand) message {
	return r.buf[rng.IntN(min(r.n, recentSize))]
}
