package window

import (
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
)

// pane aggregates the readings of one series and field over one slide.
type pane struct {
	idx int64
	f   *field
	gen uint32 // bumped when the pane is freed

	n             int64
	sum, min, max float64
	firstT, lastT int64
	firstV, lastV float64
	mean, m2      float64 // Welford, with stddev only
	sk            *ddsketch.DDSketch
	times         []int64 // event times held, in arrival order (dedup)
	set           map[int64]struct{}
	useSet        bool
	dirty, saved  bool
	tag           uint64 // readyCount at the last change
}

func (pn *pane) add(t int64, v float64, e *Engine) {
	pn.n++
	if pn.n == 1 {
		pn.sum, pn.min, pn.max = v, v, v
		pn.firstT, pn.firstV, pn.lastT, pn.lastV = t, v, t, v
	} else {
		pn.sum += v
		if v < pn.min {
			pn.min = v
		}
		if v > pn.max {
			pn.max = v
		}
		if t < pn.firstT {
			pn.firstT, pn.firstV = t, v
		}
		if t >= pn.lastT {
			pn.lastT, pn.lastV = t, v
		}
	}
	if e.needM2 {
		d := v - pn.mean
		pn.mean += d / float64(pn.n)
		pn.m2 += d * (v - pn.mean)
	}
	if e.needSketch {
		lim := e.mapping.MaxIndexableValue()
		_ = pn.sk.Add(min(max(v, -lim), lim))
	}
}

func (pn *pane) seen(t int64) bool {
	if pn.useSet {
		_, ok := pn.set[t]
		return ok
	}
	for i := len(pn.times) - 1; i >= 0; i-- {
		if pn.times[i] == t {
			return true
		}
	}
	return false
}

func (pn *pane) remember(t int64) {
	pn.times = append(pn.times, t)
	switch {
	case pn.useSet:
		pn.set[t] = struct{}{}
	case len(pn.times) > dedupSetAt:
		if pn.set == nil {
			pn.set = make(map[int64]struct{}, 2*dedupSetAt)
		}
		for _, x := range pn.times {
			pn.set[x] = struct{}{}
		}
		pn.useSet = true
	}
}

func (pn *pane) reset() {
	sk, times, set := pn.sk, pn.times[:0], pn.set
	if sk != nil {
		sk.Clear()
	}
	if pn.useSet {
		clear(set)
	}
	*pn = pane{gen: pn.gen + 1, sk: sk, times: times, set: set}
}

// acc is the merge of the panes of one field over one window.
type acc struct {
	n             int64
	sum, min, max float64
	firstT, lastT int64
	firstV, lastV float64
	mean, m2      float64
	vals          [numAggs]float64
}

func (a *acc) reset() { *a = acc{} }

func (a *acc) merge(pn *pane) {
	if a.n == 0 {
		a.n, a.sum, a.min, a.max = pn.n, pn.sum, pn.min, pn.max
		a.firstT, a.firstV, a.lastT, a.lastV = pn.firstT, pn.firstV, pn.lastT, pn.lastV
		a.mean, a.m2 = pn.mean, pn.m2
		return
	}
	na, nb := float64(a.n), float64(pn.n)
	n := na + nb
	d := pn.mean - a.mean
	a.mean += d * nb / n
	a.m2 += pn.m2 + d*d*na*nb/n
	a.n += pn.n
	a.sum += pn.sum
	a.min = min(a.min, pn.min)
	a.max = max(a.max, pn.max)
	if pn.firstT < a.firstT {
		a.firstT, a.firstV = pn.firstT, pn.firstV
	}
	if pn.lastT >= a.lastT {
		a.lastT, a.lastV = pn.lastT, pn.lastV
	}
}

// finish computes the aggregate values; the merged sketch is e.scratch.
func (a *acc) finish(e *Engine) {
	n := float64(a.n)
	for _, k := range e.aggs {
		var v float64
		switch k {
		case aggCount:
			v = n
		case aggMean:
			v = a.sum / n
		case aggMin:
			v = a.min
		case aggMax:
			v = a.max
		case aggSum:
			v = a.sum
		case aggFirst:
			v = a.firstV
		case aggLast:
			v = a.lastV
		case aggStddev:
			if a.n > 1 {
				v = math.Sqrt(max(a.m2, 0) / (n - 1))
			}
		default:
			v, _ = e.scratch.GetValueAtQuantile(aggQuantile[k])
		}
		a.vals[k] = v
	}
}
