package window

import (
	"fmt"
	"iter"
	"slices"
	"time"
)

// Checkpoint describes committed engine state for display, as Inspect reads
// it: what `edgegw state inspect` prints.
type Checkpoint struct {
	// Size and Slide are the window.size and window.slide the state was
	// written with; zero in a new file.
	Size, Slide time.Duration
	// HasClock is false until the first reading was committed.
	HasClock bool
	// Clock is the event clock as of the last commit, in ns since the Unix
	// epoch: the latest event time seen, advanced by the wall time elapsed
	// until that commit.
	Clock int64
	// ClosedBefore is the start, in ns, of the first window not yet closed:
	// every window starting before it has been turned into a rollup.
	ClosedBefore int64
	// Panes counts the (series, field, pane) aggregates held.
	Panes int
	// Series describes each series with open panes, sorted by Key.
	Series []SeriesState
}

// SeriesState summarizes the open panes of one series.
type SeriesState struct {
	// Key is the series key: measurement and tags, as in line protocol.
	Key string
	// Fields are the field names with open panes, sorted.
	Fields []string
	// Panes is the number of (field, pane) aggregates held; Readings the
	// readings they aggregate.
	Panes    int
	Readings int64
	// First and Last are the start of the earliest and the end of the
	// latest pane held, in ns.
	First, Last int64
}

// Watermark returns the watermark as of the last commit for the given
// window.allowed_lateness, in ns, and false before the first reading.
func (c *Checkpoint) Watermark(allowedLateness time.Duration) (int64, bool) {
	if !c.HasClock {
		return 0, false
	}
	return c.Clock - int64(allowedLateness), true
}

// Inspect decodes the engine metadata and state entries that a Store holds
// (the Meta and State of the Readys made durable) without an Engine of the
// caller's: it reads window.size, window.slide and the aggregates kind from
// meta, and restores them as Restore does, so that anything Restore would
// refuse (ErrCorrupt) is refused here too. Empty meta and state give an
// empty Checkpoint.
func Inspect(meta []byte, state iter.Seq2[[]byte, []byte]) (*Checkpoint, error) {
	if len(meta) == 0 {
		if state != nil {
			for range state {
				return nil, fmt.Errorf("inspect window state: %w: state entries without metadata", ErrCorrupt)
			}
		}
		return &Checkpoint{}, nil
	}
	d := decoder{b: meta}
	version := d.byte("version")
	flags := d.byte("flags")
	slide := d.uvarint("slide")
	size := d.uvarint("size")
	if d.err != nil {
		return nil, fmt.Errorf("inspect window metadata: %w", d.err)
	}
	if version != metaVersion {
		return nil, fmt.Errorf("inspect window metadata: %w: version %d, want %d", ErrCorrupt, version, metaVersion)
	}
	if size == 0 || slide == 0 || size > uint64(MaxDuration) || slide > size {
		return nil, fmt.Errorf("inspect window metadata: %w: window.size %d ns, window.slide %d ns", ErrCorrupt, size, slide)
	}
	opts := Options{Size: time.Duration(size), Slide: time.Duration(slide), Dedup: flags&metaDedup != 0, Aggregates: []string{"count"}}
	if flags&metaSketch != 0 {
		opts.Aggregates = append(opts.Aggregates, "p50")
	}
	e, err := New(opts)
	if err != nil {
		return nil, fmt.Errorf("inspect window metadata: %w: %w", ErrCorrupt, err)
	}
	if err := e.Restore(meta, state); err != nil {
		return nil, fmt.Errorf("inspect window state: %w", err)
	}
	c := &Checkpoint{
		Size: opts.Size, Slide: opts.Slide,
		HasClock: e.hasClock, Clock: e.clock,
		ClosedBefore: e.nextClose * e.slide,
		Panes:        e.nPanes,
	}
	for _, s := range e.series {
		ss := SeriesState{Key: s.key}
		for _, f := range s.fields {
			if len(f.panes) == 0 {
				continue
			}
			ss.Fields = append(ss.Fields, f.name)
			for _, pn := range f.panes {
				start := pn.idx * e.slide
				if ss.Panes == 0 || start < ss.First {
					ss.First = start
				}
				ss.Last = max(ss.Last, start+e.slide)
				ss.Panes++
				ss.Readings += pn.n
			}
		}
		if ss.Panes > 0 {
			slices.Sort(ss.Fields)
			c.Series = append(c.Series, ss)
		}
	}
	slices.SortFunc(c.Series, func(a, b SeriesState) int {
		if a.Key < b.Key {
			return -1
		}
		if a.Key > b.Key {
			return 1
		}
		return 0
	})
	return c, nil
}
