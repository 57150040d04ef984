package window

import (
	"encoding/binary"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/DataDog/sketches-go/ddsketch/store"
)

// State layout. Every key is 'p', the pane index as 8 bytes big endian
// with the sign bit flipped (so keys sort by time), the series key length
// as a uvarint, the series key, then the field name. Its value:
//
//	flags byte (valM2, valSketch, valTimes), uvarint count,
//	float64 sum, min, max, first value, last value (little endian bits),
//	uvarint offsets in the pane of the first and last event times,
//	[float64 mean, M2], [sketch: uvarint zero count, then positive and
//	negative bins, each a uvarint number of bins and per bin a varint
//	index delta and a uvarint count], [uvarint number of event times, each
//	a varint delta from the previous one, starting at the pane start].
//
// Meta: version byte, flags byte (metaClock, metaSketch, metaDedup),
// uvarint slide and size in ns, varint anchor event time, anchor wall
// time, clock and next window to close.
const (
	keyPane = 'p'

	valM2     = 1
	valSketch = 2
	valTimes  = 4

	metaVersion = 1
	metaClock   = 1
	metaSketch  = 2
	metaDedup   = 4
)

func appendKey(b []byte, p int64, series, field string) []byte {
	b = append(b, keyPane)
	b = binary.BigEndian.AppendUint64(b, uint64(p)^(1<<63))
	b = binary.AppendUvarint(b, uint64(len(series)))
	b = append(b, series...)
	return append(b, field...)
}

func appendFloat(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

func (pn *pane) appendValue(b []byte, e *Engine) []byte {
	var flags byte
	if e.needM2 {
		flags |= valM2
	}
	if e.needSketch {
		flags |= valSketch
	}
	if e.dedup {
		flags |= valTimes
	}
	base := pn.idx * e.slide
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(pn.n))
	b = appendFloat(b, pn.sum)
	b = appendFloat(b, pn.min)
	b = appendFloat(b, pn.max)
	b = appendFloat(b, pn.firstV)
	b = appendFloat(b, pn.lastV)
	b = binary.AppendUvarint(b, uint64(pn.firstT-base))
	b = binary.AppendUvarint(b, uint64(pn.lastT-base))
	if e.needM2 {
		b = appendFloat(b, pn.mean)
		b = appendFloat(b, pn.m2)
	}
	if e.needSketch {
		b = binary.AppendUvarint(b, uint64(pn.sk.GetZeroCount()))
		b = appendBins(b, pn.sk.GetPositiveValueStore())
		b = appendBins(b, pn.sk.GetNegativeValueStore())
	}
	if e.dedup {
		b = binary.AppendUvarint(b, uint64(len(pn.times)))
		prev := base
		for _, t := range pn.times {
			b = binary.AppendVarint(b, t-prev)
			prev = t
		}
	}
	return b
}

func appendBins(b []byte, st store.Store) []byte {
	n := 0
	st.ForEach(func(int, float64) bool { n++; return false })
	b = binary.AppendUvarint(b, uint64(n))
	prev := 0
	st.ForEach(func(i int, c float64) bool {
		b = binary.AppendVarint(b, int64(i-prev))
		b = binary.AppendUvarint(b, uint64(c))
		prev = i
		return false
	})
	return b
}

func (e *Engine) appendMeta(b []byte) []byte {
	var flags byte
	if e.hasClock {
		flags |= metaClock
	}
	if e.needSketch {
		flags |= metaSketch
	}
	if e.dedup {
		flags |= metaDedup
	}
	b = append(b, metaVersion, flags)
	b = binary.AppendUvarint(b, uint64(e.slide))
	b = binary.AppendUvarint(b, uint64(e.size))
	b = binary.AppendVarint(b, e.anchorT)
	b = binary.AppendVarint(b, e.anchorW)
	b = binary.AppendVarint(b, e.clock)
	return binary.AppendVarint(b, e.nextClose)
}

// decoder reads the fields of one entry and remembers the first problem.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail("truncated " + what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) float(what string) float64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail("truncated " + what)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

// Restore rebuilds the engine from the Meta and State entries of the Readys
// made durable so far (state yields each key and value as last put). It
// works only on an engine that was neither fed nor restored (ErrNotEmpty).
// Empty meta and state restore nothing. On error the engine stays empty; a
// state written with another window.size or window.slide, or with
// percentiles on one side only, is ErrIncompatible. The engine copies what
// it keeps: state may reuse its slices.
func (e *Engine) Restore(meta []byte, state iter.Seq2[[]byte, []byte]) error {
	if e.used {
		return ErrNotEmpty
	}
	fresh, err := New(e.opts)
	if err != nil {
		return err
	}
	if err := fresh.restore(meta, state); err != nil {
		return err
	}
	*e = *fresh
	return nil
}

func (e *Engine) restore(meta []byte, state iter.Seq2[[]byte, []byte]) error {
	e.used = true
	if len(meta) > 0 {
		if err := e.restoreMeta(meta); err != nil {
			return fmt.Errorf("restore window metadata: %w", err)
		}
	}
	if state == nil {
		return nil
	}
	for k, v := range state {
		if len(meta) == 0 {
			return fmt.Errorf("restore window state: %w: state entries without metadata", ErrCorrupt)
		}
		if err := e.restoreEntry(k, v); err != nil {
			return fmt.Errorf("restore window state %q: %w", k, err)
		}
	}
	if e.hasClock {
		e.setWake()
	}
	return nil
}

func (e *Engine) restoreMeta(meta []byte) error {
	d := decoder{b: meta}
	if v := d.byte("version"); d.err == nil && v != metaVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrCorrupt, v, metaVersion)
	}
	flags := d.byte("flags")
	slide := d.uvarint("slide")
	size := d.uvarint("size")
	anchorT := d.varint("anchor event time")
	anchorW := d.varint("anchor wall time")
	clock := d.varint("clock")
	nextClose := d.varint("next window")
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	if slide != uint64(e.slide) || size != uint64(e.size) {
		return fmt.Errorf("%w: window.size %s and window.slide %s, now %s and %s; remove the state to start afresh",
			ErrIncompatible, time.Duration(size), time.Duration(slide), e.opts.Size, e.opts.Slide)
	}
	if (flags&metaSketch != 0) != e.needSketch {
		return fmt.Errorf("%w: percentile aggregates added or removed; remove the state to start afresh", ErrIncompatible)
	}
	if flags&metaClock == 0 {
		return nil
	}
	if clock < -clockLimit || clock > clockLimit || anchorT < -MaxEventTime || anchorT > MaxEventTime ||
		anchorW < -MaxEventTime || anchorW > MaxEventTime || nextClose < e.closeIndex(-clockLimit) || nextClose > e.closeIndex(clockLimit) {
		return fmt.Errorf("%w: clock out of range", ErrCorrupt)
	}
	e.hasClock = true
	e.anchorT, e.anchorW, e.clock, e.nextClose = anchorT, anchorW, clock, nextClose
	return nil
}

func (e *Engine) restoreEntry(k, v []byte) error {
	if len(k) < 9 || k[0] != keyPane {
		return fmt.Errorf("%w: unknown key", ErrCorrupt)
	}
	p := int64(binary.BigEndian.Uint64(k[1:9]) ^ (1 << 63))
	kd := decoder{b: k[9:]}
	ls := kd.uvarint("series length")
	if kd.err != nil || ls > uint64(len(kd.b)) {
		return fmt.Errorf("%w: bad series in key", ErrCorrupt)
	}
	seriesKey, fieldName := string(kd.b[:ls]), string(kd.b[ls:])
	if p < floorDiv(-MaxEventTime, e.slide) || p > floorDiv(MaxEventTime, e.slide) {
		return fmt.Errorf("%w: pane out of range", ErrCorrupt)
	}
	base := p * e.slide

	d := decoder{b: v}
	flags := d.byte("flags")
	n := d.uvarint("count")
	sum, mn, mx := d.float("sum"), d.float("min"), d.float("max")
	firstV, lastV := d.float("first"), d.float("last")
	firstOff, lastOff := d.uvarint("first time"), d.uvarint("last time")
	var mean, m2 float64
	if flags&valM2 != 0 {
		mean, m2 = d.float("mean"), d.float("m2")
	}
	if d.err != nil {
		return d.err
	}
	if n == 0 || n > 1<<53 || firstOff >= uint64(e.slide) || lastOff >= uint64(e.slide) {
		return fmt.Errorf("%w: count or times out of range", ErrCorrupt)
	}
	if (flags&valSketch != 0) != e.needSketch {
		return fmt.Errorf("%w: percentile aggregates added or removed", ErrIncompatible)
	}

	s := e.series[seriesKey]
	if s == nil {
		s = e.newSeries(seriesKey)
	}
	var f *field
	for _, x := range s.fields {
		if x.name == fieldName {
			f = x
		}
	}
	if f == nil {
		f = e.newField(s, fieldName)
	}
	i := len(f.panes)
	for i > 0 && f.panes[i-1].idx > p {
		i--
	}
	if i > 0 && f.panes[i-1].idx == p {
		return fmt.Errorf("%w: pane listed twice", ErrCorrupt)
	}
	pn := e.newPane(f, p, i)
	pn.n, pn.sum, pn.min, pn.max = int64(n), sum, mn, mx
	pn.firstT, pn.firstV = base+int64(firstOff), firstV
	pn.lastT, pn.lastV = base+int64(lastOff), lastV
	pn.mean, pn.m2 = mean, m2
	pn.saved = true

	if flags&valSketch != 0 {
		switch zero := d.uvarint("zero count"); {
		case zero > 1<<53:
			d.fail("zero count out of range")
		case zero > 0:
			_ = pn.sk.AddWithCount(0, float64(zero))
		}
		e.decodeBins(&d, pn.sk.GetPositiveValueStore())
		e.decodeBins(&d, pn.sk.GetNegativeValueStore())
	}
	if flags&valTimes != 0 {
		cnt := d.uvarint("number of times")
		if d.err == nil && cnt > uint64(len(d.b)) {
			d.fail("number of times")
		}
		prev := base
		for j := uint64(0); j < cnt && d.err == nil; j++ {
			t := prev + d.varint("time")
			if t < base || t >= base+e.slide {
				d.fail("time outside its pane")
				break
			}
			if e.dedup {
				pn.remember(t)
			}
			prev = t
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

func (e *Engine) decodeBins(d *decoder, st store.Store) {
	cnt := d.uvarint("number of bins")
	if d.err == nil && cnt > uint64(len(d.b)) {
		d.fail("number of bins")
	}
	idx := int64(0)
	for j := uint64(0); j < cnt && d.err == nil; j++ {
		delta := d.varint("bin index")
		c := d.uvarint("bin count")
		if d.err != nil {
			return
		}
		// The bins are written in increasing index order, each once: a
		// bin repeated would add up counts past what a pane can hold.
		if j > 0 && delta <= 0 {
			d.fail("bin indexes not increasing")
			return
		}
		idx += delta
		if idx < int64(e.binLo) || idx > int64(e.binHi) || c == 0 || c > 1<<53 {
			d.fail("bin out of range")
			return
		}
		st.AddWithCount(int(idx), float64(c))
	}
}
