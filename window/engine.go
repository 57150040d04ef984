package window

import (
	"bytes"
	"cmp"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/edgegw/edgegw"
)

// Errors returned by New and Restore.
var (
	// ErrOptions marks a problem with Options; the message names the option
	// and what is accepted.
	ErrOptions = errors.New("invalid window option")
	// ErrNotEmpty is returned by Restore on an engine that was already fed
	// or restored.
	ErrNotEmpty = errors.New("restore window state: engine is not empty")
	// ErrCorrupt is returned by Restore for metadata or a state entry it
	// cannot decode.
	ErrCorrupt = errors.New("corrupt window state")
	// ErrIncompatible is returned by Restore for state written with a
	// different window.size, window.slide, or with percentiles configured
	// on one side only.
	ErrIncompatible = errors.New("window state written with other options")
)

// SketchAccuracy is the relative accuracy of the percentile aggregates.
const SketchAccuracy = 0.01

// dedupSetAt is the number of event times a pane keeps in a plain slice
// before it also indexes them in a map.
const dedupSetAt = 32

// clockLimit bounds the event clock so that window arithmetic never
// overflows.
const clockLimit = MaxEventTime + 4*int64(MaxDuration)

type counts struct {
	accepted, late, duplicate, future, invalid int
}

// Engine assigns readings to event-time windows and turns closed windows
// into rollups. It holds no goroutines, clocks or I/O: time enters only as
// the now passed to Add and Advance.
//
// An Engine is not safe for concurrent use.
type Engine struct {
	opts               Options
	aggs               []aggKind
	slide, size, late  int64
	maxFuture          int64
	m                  int64 // panes per window
	update, dedup      bool
	needM2, needSketch bool
	mapping            mapping.IndexMapping
	binLo, binHi       int

	used      bool
	hasClock  bool
	anchorT   int64 // event time of the reading that set the clock
	anchorW   int64 // wall time at which it arrived
	clock     int64 // event clock high-water mark
	nextClose int64 // every window below this index is closed
	wake      int64 // run closeAndDrop once clock reaches this

	series map[string]*series
	last   *series
	groups []*group // by idx ascending
	nPanes int

	readyCount, doneUpto uint64
	pending              []pendingRollup
	pendingIdx           map[rollupKey]int
	dirty                []dirtyRef
	dels                 []deletion
	tot, doneTot         counts

	freePanes  []*pane
	freeGroups []*group
	freeSeries []*series
	freeFields []*field
	names      map[string]*[numAggs]string
	fieldBuf   []edgegw.Field
	scratch    *ddsketch.DDSketch
	mark       uint64
	touched    []*series
}

type series struct {
	key    string
	fields []*field // by name
	order  []outName
	live   int // panes held
	mark   uint64
}

// holds reports whether s has a pane in [lo, hi].
func (s *series) holds(lo, hi int64) bool {
	for _, f := range s.fields {
		for _, pn := range f.panes {
			if pn.idx > hi {
				break
			}
			if pn.idx >= lo {
				return true
			}
		}
	}
	return false
}

type outName struct {
	name string
	f    *field
	agg  aggKind
}

type field struct {
	name  string
	s     *series
	out   *[numAggs]string
	panes []*pane // by idx ascending
	acc   acc
}

type group struct {
	idx   int64
	panes []*pane
}

type pendingRollup struct {
	tag uint64
	r   edgegw.Rollup
}

type rollupKey struct {
	series string
	start  int64
}

type dirtyRef struct {
	p   *pane
	gen uint32
}

type deletion struct {
	tag    uint64
	idx    int64
	series string
	field  string
}

// New returns an empty Engine, or an error naming every option at fault
// and what it accepts (errors.Is(err, ErrOptions)).
func New(opts Options) (*Engine, error) {
	o, aggs, err := opts.validate()
	if err != nil {
		return nil, err
	}
	e := &Engine{
		opts:      o,
		aggs:      aggs,
		slide:     int64(o.Slide),
		size:      int64(o.Size),
		late:      int64(o.AllowedLateness),
		maxFuture: int64(o.MaxFuture),
		update:    o.LatePolicy == LateUpdate,
		dedup:     o.Dedup,
		series:    make(map[string]*series),
		names:     make(map[string]*[numAggs]string),
		wake:      math.MaxInt64,
	}
	e.m = e.size / e.slide
	for _, a := range aggs {
		e.needM2 = e.needM2 || a == aggStddev
		e.needSketch = e.needSketch || a.percentile()
	}
	if e.needSketch {
		m, err := mapping.NewLogarithmicMapping(SketchAccuracy)
		if err != nil {
			return nil, err
		}
		e.mapping = m
		e.binLo, e.binHi = m.Index(m.MinIndexableValue()), m.Index(m.MaxIndexableValue())
		e.scratch = e.newSketch()
	}
	if e.update {
		e.pendingIdx = make(map[rollupKey]int)
	}
	return e, nil
}

// Options returns the options in effect, defaults filled in.
func (e *Engine) Options() Options {
	o := e.opts
	o.Aggregates = slices.Clone(o.Aggregates)
	return o
}

func (e *Engine) newSketch() *ddsketch.DDSketch {
	return ddsketch.NewDDSketchFromStoreProvider(e.mapping, store.BufferedPaginatedStoreConstructor)
}

// Add aggregates rs, which arrived at wall time now, reading by reading:
// before each reading the event clock moves to now and windows whose time
// has come close, so a reading is late exactly when the window it would
// join has closed. Add never fails: every reading is counted in the next
// Ready by outcome. Add keeps the Series and Field strings of the readings
// it holds.
func (e *Engine) Add(rs []edgegw.Reading, now time.Time) {
	e.used = true
	w := wallNanos(now)
	for i := range rs {
		e.add(&rs[i], w)
	}
}

// Advance moves the event clock to wall time now with no new reading, and
// closes the windows whose time has come: windows close when sensors fall
// silent. Before the first reading there is no clock and Advance does
// nothing.
func (e *Engine) Advance(now time.Time) {
	e.used = true
	if e.hasClock {
		e.tick(0, wallNanos(now), false)
	}
}

// Resume continues the event clock, at wall time now, from where it stood
// at the last Add or Advance: the wall time in between does not advance it.
// The caller resumes after a spell in which the gateway could not hear its
// sensors (the process was stopped, the broker was unreachable, commits
// failed), so that readings held by the broker during the spell are not made
// late by it. Before the first reading Resume does nothing.
func (e *Engine) Resume(now time.Time) {
	if !e.hasClock {
		return
	}
	e.used = true
	e.anchorW = satSub(wallNanos(now), satSub(e.clock, e.anchorT))
}

// Watermark returns the event clock minus AllowedLateness in ns since the
// Unix epoch, as of the last Add or Advance: every window ending at or
// before it is closed. Before the first reading it is math.MinInt64.
func (e *Engine) Watermark() int64 {
	if !e.hasClock {
		return math.MinInt64
	}
	return e.clock - e.late
}

// OpenWindows returns the number of windows, over all series, that hold a
// reading and have not closed yet.
func (e *Engine) OpenWindows() int {
	n := int64(0)
	next := e.nextClose // first window not counted yet
	for _, g := range e.groups {
		lo := max(next, g.idx-e.m+1)
		if g.idx >= lo {
			n += g.idx - lo + 1
			next = g.idx + 1
		}
	}
	return int(n)
}

// Panes returns the number of (series, field, pane) aggregates held; each
// costs memory and a state entry.
func (e *Engine) Panes() int { return e.nPanes }

// Series returns the number of series held.
func (e *Engine) Series() int { return len(e.series) }

func wallNanos(now time.Time) int64 {
	s := now.Unix()
	const lim = MaxEventTime / 1e9
	switch {
	case s > lim:
		return MaxEventTime
	case s < -lim:
		return -MaxEventTime
	}
	return now.UnixNano()
}

func (e *Engine) add(r *edgegw.Reading, w int64) {
	t, v := r.Time, r.Value
	if math.IsNaN(v) || math.IsInf(v, 0) || t > MaxEventTime || t < -MaxEventTime {
		e.tot.invalid++
		return
	}
	if e.maxFuture > 0 && t > w+e.maxFuture {
		e.tot.future++
		return
	}
	e.tick(t, w, true)
	p := floorDiv(t, e.slide)
	if e.dropAt(p) <= e.clock {
		e.tot.late++
		return
	}
	s := e.last
	if s == nil || s.key != r.Series {
		s = e.series[r.Series]
		if s == nil {
			s = e.newSeries(r.Series)
		}
		e.last = s
	}
	var f *field
	for _, x := range s.fields {
		if x.name == r.Field {
			f = x
			break
		}
	}
	if f == nil {
		f = e.newField(s, r.Field)
	}
	var pn *pane
	i := len(f.panes)
	for i > 0 && f.panes[i-1].idx > p {
		i--
	}
	if i > 0 && f.panes[i-1].idx == p {
		pn = f.panes[i-1]
		if e.dedup && pn.seen(t) {
			e.tot.duplicate++
			return
		}
	} else {
		pn = e.newPane(f, p, i)
	}
	pn.add(t, v, e)
	if e.dedup {
		pn.remember(t)
	}
	pn.tag = e.readyCount
	if !pn.dirty {
		pn.dirty = true
		e.dirty = append(e.dirty, dirtyRef{pn, pn.gen})
	}
	e.tot.accepted++
	if e.update && p-e.m+1 < e.nextClose {
		// Closed windows holding pane p that still take corrections.
		lo := max(p-e.m+1, floorDiv(e.clock-e.size-2*e.late, e.slide)+1)
		hi := min(p, e.nextClose-1)
		for k := lo; k <= hi; k++ {
			e.emit(s, k)
		}
	}
}

// tick moves the event clock to wall time w and, with withT, to event time
// t; then closes windows and drops panes whose time has come.
func (e *Engine) tick(t, w int64, withT bool) {
	if withT && (!e.hasClock || satSub(t, w) > satSub(e.anchorT, e.anchorW)) {
		e.anchorT, e.anchorW = t, w
		if !e.hasClock {
			e.hasClock = true
			e.clock = t
			e.nextClose = e.closeIndex(t)
			e.setWake()
		}
	}
	c := satAdd(e.anchorT, satSub(w, e.anchorW))
	c = min(max(c, -clockLimit), clockLimit)
	if c > e.clock {
		e.clock = c
	}
	if e.clock >= e.wake {
		e.closeAndDrop()
	}
}

// closeAt returns the clock value at which window k closes.
func (e *Engine) closeAt(k int64) int64 { return k*e.slide + e.size + e.late }

// dropAt returns the clock value at which pane p is dropped: readings for
// it are late from then on.
func (e *Engine) dropAt(p int64) int64 {
	if e.update {
		return e.closeAt(p) + e.late
	}
	return e.closeAt(p)
}

// closeIndex returns the first window still open at clock c.
func (e *Engine) closeIndex(c int64) int64 {
	return floorDiv(c-e.size-e.late, e.slide) + 1
}

func (e *Engine) setWake() {
	e.wake = e.closeAt(e.nextClose)
	if len(e.groups) > 0 {
		e.wake = min(e.wake, e.dropAt(e.groups[0].idx))
	}
}

func (e *Engine) closeAndDrop() {
	for {
		gi, _ := slices.BinarySearchFunc(e.groups, e.nextClose, func(g *group, k int64) int { return cmp.Compare(g.idx, k) })
		if gi == len(e.groups) {
			break
		}
		k := max(e.nextClose, e.groups[gi].idx-e.m+1)
		if e.closeAt(k) > e.clock {
			break
		}
		e.closeWindow(k, gi)
		e.nextClose = k + 1
	}
	e.nextClose = max(e.nextClose, e.closeIndex(e.clock))
	n := 0
	for n < len(e.groups) && e.dropAt(e.groups[n].idx) <= e.clock {
		e.dropGroup(e.groups[n])
		n++
	}
	if n > 0 {
		clear(e.groups[:n])
		e.groups = slices.Delete(e.groups, 0, n)
	}
	e.setWake()
}

// closeWindow emits window k for every series holding a pane in it; gi is
// the first group at or after k.
func (e *Engine) closeWindow(k int64, gi int) {
	e.mark++
	touched := e.touched[:0]
	gj, held := gi, 0
	for gj < len(e.groups) && e.groups[gj].idx < k+e.m {
		held += len(e.groups[gj].panes)
		gj++
	}
	if held <= len(e.series) {
		for _, g := range e.groups[gi:gj] {
			for _, pn := range g.panes {
				if s := pn.f.s; s.mark != e.mark {
					s.mark = e.mark
					touched = append(touched, s)
				}
			}
		}
	} else {
		// Fewer series than panes to visit: ask each series instead.
		for _, s := range e.series {
			if s.holds(k, k+e.m-1) {
				touched = append(touched, s)
			}
		}
	}
	for _, s := range touched {
		e.emit(s, k)
	}
	clear(touched)
	e.touched = touched[:0]
}

// emit queues the rollup of series s over window k.
func (e *Engine) emit(s *series, k int64) {
	lo, hi := k, k+e.m-1
	nf := 0
	for _, f := range s.fields {
		a := &f.acc
		a.reset()
		if e.needSketch {
			e.scratch.Clear()
		}
		for _, pn := range f.panes {
			if pn.idx < lo {
				continue
			}
			if pn.idx > hi {
				break
			}
			a.merge(pn)
			if e.needSketch {
				_ = e.scratch.MergeWith(pn.sk)
			}
		}
		if a.n == 0 {
			continue
		}
		nf++
		a.finish(e)
	}
	if nf == 0 {
		return
	}
	fields := e.takeFields(nf * len(e.aggs))
	for _, on := range s.order {
		a := &on.f.acc
		if a.n == 0 {
			continue
		}
		v := a.vals[on.agg]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		fields = append(fields, edgegw.Field{Name: on.name, Value: v, Integer: on.agg == aggCount})
	}
	r := edgegw.Rollup{Series: s.key, Start: k * e.slide, Fields: fields}
	if e.update {
		key := rollupKey{s.key, r.Start}
		if i, ok := e.pendingIdx[key]; ok {
			e.pending[i] = pendingRollup{e.readyCount, r}
			return
		}
		e.pendingIdx[key] = len(e.pending)
	}
	e.pending = append(e.pending, pendingRollup{e.readyCount, r})
}

// takeFields returns an empty slice with capacity n carved from a shared
// chunk, so that rollups cost no allocation each.
func (e *Engine) takeFields(n int) []edgegw.Field {
	if cap(e.fieldBuf)-len(e.fieldBuf) < n {
		e.fieldBuf = make([]edgegw.Field, 0, max(1024, n))
	}
	l := len(e.fieldBuf)
	e.fieldBuf = e.fieldBuf[:l+n]
	return e.fieldBuf[l : l : l+n]
}

func (e *Engine) newSeries(key string) *series {
	var s *series
	if n := len(e.freeSeries); n > 0 {
		s = e.freeSeries[n-1]
		e.freeSeries = e.freeSeries[:n-1]
	} else {
		s = new(series)
	}
	s.key = key
	e.series[key] = s
	return s
}

func (e *Engine) newField(s *series, name string) *field {
	var f *field
	if n := len(e.freeFields); n > 0 {
		f = e.freeFields[n-1]
		e.freeFields = e.freeFields[:n-1]
	} else {
		f = new(field)
	}
	f.name, f.s = name, s
	f.out = e.names[name]
	if f.out == nil {
		f.out = new([numAggs]string)
		for _, a := range e.aggs {
			f.out[a] = name + "_" + aggNames[a]
		}
		e.names[name] = f.out
	}
	i, _ := slices.BinarySearchFunc(s.fields, name, func(x *field, n string) int { return cmp.Compare(x.name, n) })
	s.fields = slices.Insert(s.fields, i, f)
	s.order = s.order[:0]
	for _, x := range s.fields {
		for _, a := range e.aggs {
			s.order = append(s.order, outName{x.out[a], x, a})
		}
	}
	slices.SortFunc(s.order, func(a, b outName) int { return cmp.Compare(a.name, b.name) })
	return f
}

// newPane inserts a new pane p at position i of f.panes and into its group.
func (e *Engine) newPane(f *field, p int64, i int) *pane {
	var pn *pane
	if n := len(e.freePanes); n > 0 {
		pn = e.freePanes[n-1]
		e.freePanes = e.freePanes[:n-1]
	} else {
		pn = new(pane)
		if e.needSketch {
			pn.sk = e.newSketch()
		}
	}
	pn.idx, pn.f = p, f
	f.panes = slices.Insert(f.panes, i, pn)
	f.s.live++
	e.nPanes++

	gi := len(e.groups)
	for gi > 0 && e.groups[gi-1].idx > p {
		gi--
	}
	var g *group
	if gi > 0 && e.groups[gi-1].idx == p {
		g = e.groups[gi-1]
	} else {
		if n := len(e.freeGroups); n > 0 {
			g = e.freeGroups[n-1]
			e.freeGroups = e.freeGroups[:n-1]
		} else {
			g = new(group)
		}
		g.idx = p
		e.groups = slices.Insert(e.groups, gi, g)
		e.wake = min(e.wake, e.dropAt(p))
	}
	g.panes = append(g.panes, pn)
	return pn
}

// dropGroup forgets every pane of g, recording the deletion of those that
// may have been persisted, and frees series left empty.
func (e *Engine) dropGroup(g *group) {
	for _, pn := range g.panes {
		f := pn.f
		if i := slices.Index(f.panes, pn); i >= 0 {
			f.panes = slices.Delete(f.panes, i, i+1)
		}
		if pn.saved {
			e.dels = append(e.dels, deletion{e.readyCount, pn.idx, f.s.key, f.name})
		}
		e.nPanes--
		s := f.s
		s.live--
		pn.reset()
		e.freePanes = append(e.freePanes, pn)
		if s.live == 0 {
			e.freeSeriesAndFields(s)
		}
	}
	clear(g.panes)
	g.panes = g.panes[:0]
	e.freeGroups = append(e.freeGroups, g)
}

func (e *Engine) freeSeriesAndFields(s *series) {
	delete(e.series, s.key)
	if e.last == s {
		e.last = nil
	}
	for _, f := range s.fields {
		f.name, f.s, f.out = "", nil, nil
		f.panes = f.panes[:0]
		e.freeFields = append(e.freeFields, f)
	}
	clear(s.fields)
	s.fields = s.fields[:0]
	clear(s.order)
	s.order = s.order[:0]
	s.key = ""
	e.freeSeries = append(e.freeSeries, s)
}

// Ready returns everything changed since the last Done. It may be called
// any number of times; each call contains what the previous ones did.
func (e *Engine) Ready() Ready {
	e.readyCount++
	c := e.tot
	rd := Ready{
		eng:       e,
		upto:      e.readyCount,
		at:        c,
		Accepted:  c.accepted - e.doneTot.accepted,
		Late:      c.late - e.doneTot.late,
		Duplicate: c.duplicate - e.doneTot.duplicate,
		Future:    c.future - e.doneTot.future,
		Invalid:   c.invalid - e.doneTot.invalid,
	}
	if len(e.pending) > 0 {
		rd.Rollups = make([]edgegw.Rollup, len(e.pending))
		for i, p := range e.pending {
			rd.Rollups[i] = p.r
		}
		slices.SortFunc(rd.Rollups, func(a, b edgegw.Rollup) int {
			if c := cmp.Compare(a.Start, b.Start); c != 0 {
				return c
			}
			return cmp.Compare(a.Series, b.Series)
		})
	}
	live := e.dirty[:0]
	for _, d := range e.dirty {
		if d.gen == d.p.gen && d.p.dirty {
			live = append(live, d)
		}
	}
	clear(e.dirty[len(live):])
	e.dirty = live
	if n := len(e.dirty) + len(e.dels); n > 0 {
		type span struct{ k0, k1, v1 int }
		spans := make([]span, 0, n)
		var buf []byte
		for _, d := range e.dirty {
			k0 := len(buf)
			buf = appendKey(buf, d.p.idx, d.p.f.s.key, d.p.f.name)
			k1 := len(buf)
			buf = d.p.appendValue(buf, e)
			spans = append(spans, span{k0, k1, len(buf)})
			d.p.saved = true
		}
		for _, d := range e.dels {
			k0 := len(buf)
			buf = appendKey(buf, d.idx, d.series, d.field)
			spans = append(spans, span{k0, len(buf), -1})
		}
		rd.State = make([]Change, len(spans))
		for i, sp := range spans {
			rd.State[i].Key = buf[sp.k0:sp.k1:sp.k1]
			if sp.v1 >= 0 {
				rd.State[i].Value = buf[sp.k1:sp.v1:sp.v1]
			}
		}
		slices.SortFunc(rd.State, func(a, b Change) int { return bytes.Compare(a.Key, b.Key) })
	}
	rd.Meta = e.appendMeta(nil)
	return rd
}

// Done tells the engine that rd was made durable: what rd contained is
// forgotten, what changed after Ready returned it is kept for the next
// Ready. Done ignores a Ready it did not make, or one older than a Ready
// already passed to Done.
func (e *Engine) Done(rd Ready) {
	if rd.eng != e || rd.upto <= e.doneUpto || rd.upto > e.readyCount {
		return
	}
	e.doneUpto, e.doneTot = rd.upto, rd.at
	keep := e.pending[:0]
	for _, p := range e.pending {
		if p.tag >= rd.upto {
			keep = append(keep, p)
		}
	}
	clear(e.pending[len(keep):])
	e.pending = keep
	if e.update {
		clear(e.pendingIdx)
		for i, p := range e.pending {
			e.pendingIdx[rollupKey{p.r.Series, p.r.Start}] = i
		}
	}
	live := e.dirty[:0]
	for _, d := range e.dirty {
		if d.gen != d.p.gen || !d.p.dirty {
			continue
		}
		if d.p.tag < rd.upto {
			d.p.dirty = false
			continue
		}
		live = append(live, d)
	}
	clear(e.dirty[len(live):])
	e.dirty = live
	dels := e.dels[:0]
	for _, d := range e.dels {
		if d.tag >= rd.upto {
			dels = append(dels, d)
		}
	}
	clear(e.dels[len(dels):])
	e.dels = dels
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func satAdd(a, b int64) int64 {
	c := a + b
	if (c > a) != (b > 0) {
		if b > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return c
}

func satSub(a, b int64) int64 {
	c := a - b
	if (c < a) != (b > 0) {
		if b > 0 {
			return math.MinInt64
		}
		return math.MaxInt64
	}
	return c
}
