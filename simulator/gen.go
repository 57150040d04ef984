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

// device is one simulated device: its names, topic and series.
type device struct {
	name, site string
	topic      string    // <prefix>/<site>/<device>
	key        string    // line-protocol series key: "sensors,device=dev3,site=site1"
	series     []*series // one per field, in the order of fields
}

// series is one device's field: its topic, its truth-file line prefix and the
// state of its random walk and timestamps.
type series struct {
	dev   *device
	topic string // <prefix>/<site>/<device>/<field>
	line  string // "sensors,device=dev3,site=site1 temperature="
	field int    // index into fields

	value    float64 // current value of the walk, unrounded
	last     int64   // newest normal event time in ms (a multiple of the grid)
	lastLate int64   // newest late event time in ms (half a grid past a multiple)
}

// name returns the field name of s.
func (s *series) name() string { return fields[s.field].name }

// newDevices returns devices devices on sites sites, each with a series
// per field in the order of fields. Starting values are drawn from rng,
// device by device.
func newDevices(rng *rand.Rand, prefix string, devices, sites int) []*device {
	devs := make([]*device, 0, devices)
	for d := range devices {
		dev := &device{name: "dev" + strconv.Itoa(d+1), site: "site" + strconv.Itoa(d%sites+1)}
		dev.topic = prefix + "/" + dev.site + "/" + dev.name
		dev.key = measurement + ",device=" + dev.name + ",site=" + dev.site
		for f, fd := range fields {
			s := &series{
				dev:   dev,
				topic: dev.topic + "/" + fd.name,
				line:  dev.key + " " + fd.name + "=",
				field: f,
				value: fd.center + rng.NormFloat64()*fd.spread,
			}
			dev.series = append(dev.series, s)
		}
		devs = append(devs, dev)
	}
	return devs
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
// now rounded up to a multiple of grid ms, and past every earlier one of s.
func (s *series) stamp(now time.Time, grid int64) int64 {
	ts := now.UnixMilli()
	ts += (grid - ts%grid) % grid
	if ts <= s.last {
		ts = s.last + grid
	}
	s.last = ts
	return ts
}

// stampLate returns the event time in ms of a late reading of s when newest
// is the newest event time published and lateness the gateway's allowed
// lateness in ms: an hour beyond the bound, half a grid past a multiple of
// grid ms (so never the time of a normal reading), and past every earlier
// late reading of s.
func (s *series) stampLate(newest, lateness, grid int64) int64 {
	ts := newest - lateness - time.Hour.Milliseconds()
	ts -= ((ts-grid/2)%grid + grid) % grid
	if s.lastLate != 0 && ts <= s.lastLate {
		ts = s.lastLate + grid
	}
	s.lastLate = ts
	return ts
}

// reading is one distinct reading on its way out.
type reading struct {
	s     *series
	value string // two decimals
	ts    int64  // event time in ms
}

// batch is the readings of one message, all of one device.
type batch struct {
	dev  *device
	rs   []reading
	late bool // stamped beyond the lateness bound
	held bool // made out of order, published after a delay
}

// earliest returns the earliest event time of b, 0 when it is not stamped.
func (b *batch) earliest() int64 {
	ts := b.rs[0].ts
	for _, rd := range b.rs[1:] {
		ts = min(ts, rd.ts)
	}
	return ts
}

// kind is what one message slot publishes.
type kind int

const (
	normal kind = iota
	outOfOrder
	late
	duplicate
)

// heldBatch is a message held back to be published out of order.
type heldBatch struct {
	due  time.Time // wall time it is due
	seq  int64     // breaks ties in generation order
	ts   int64     // earliest event time of b in ms; 0 without (format value)
	b    *batch
	done bool // published (or dropped) through the other heap
}

// heldQueue holds messages back. A message is released when its wall time
// is due, or, with event times, once the newest event time published is
// maxLag past its earliest: so it never lags the stream by more than maxLag,
// even when event time runs ahead of the wall clock.
type heldQueue struct {
	byDue pq // by due, then seq
	byTS  pq // by event time, then seq; with event times only
	n     int
}

func newHeldQueue() heldQueue {
	return heldQueue{
		byDue: pq{less: func(a, b *heldBatch) bool {
			if !a.due.Equal(b.due) {
				return a.due.Before(b.due)
			}
			return a.seq < b.seq
		}},
		byTS: pq{less: func(a, b *heldBatch) bool {
			if a.ts != b.ts {
				return a.ts < b.ts
			}
			return a.seq < b.seq
		}},
	}
}

// Len returns the number of messages held.
func (q *heldQueue) Len() int { return q.n }

// push holds h; byTS orders it only when it has an event time.
func (q *heldQueue) push(h *heldBatch) {
	heap.Push(&q.byDue, h)
	if h.ts != 0 {
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

// release returns a message due at now or lagging newest by maxLag ms or
// more, or nil.
func (q *heldQueue) release(now time.Time, newest, maxLag int64) *heldBatch {
	if top := q.byDue.top(); top != nil && !top.due.After(now) {
		return q.take(heap.Pop(&q.byDue).(*heldBatch))
	}
	if top := q.byTS.top(); top != nil && newest-top.ts >= maxLag {
		return q.take(heap.Pop(&q.byTS).(*heldBatch))
	}
	return nil
}

// popDue returns the message due first, or nil when nothing is held.
func (q *heldQueue) popDue() *heldBatch {
	if q.byDue.top() == nil {
		return nil
	}
	return q.take(heap.Pop(&q.byDue).(*heldBatch))
}

func (q *heldQueue) take(h *heldBatch) *heldBatch {
	h.done = true
	q.n--
	return h
}

// pq is a min-heap of held messages; entries released through the other
// heap are dropped when they reach the top.
type pq struct {
	items []*heldBatch
	less  func(a, b *heldBatch) bool
}

// top returns the first entry not yet released, or nil.
func (p *pq) top() *heldBatch {
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
func (p *pq) Push(x any)        { p.items = append(p.items, x.(*heldBatch)) }
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
