package window

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// LatePolicy says what happens to a reading whose window has already closed.
type LatePolicy string

// The late policies.
const (
	// LateDrop drops a reading whose window has closed and counts it Late.
	LateDrop LatePolicy = "drop"
	// LateUpdate aggregates a reading that arrives after its window closed,
	// for one more AllowedLateness, and emits the corrected rollup again.
	LateUpdate LatePolicy = "update"
)

// Bounds on Options and on event times.
const (
	// MaxDuration is the largest Size, AllowedLateness and MaxFuture
	// accepted: 8760h, one year.
	MaxDuration = 8760 * time.Hour
	// MaxPanesPerWindow is the largest Size/Slide accepted.
	MaxPanesPerWindow = 10000
	// MaxEventTime is the largest event time accepted, in ns since the Unix
	// epoch (year 2116); readings outside ±MaxEventTime are counted Invalid.
	MaxEventTime = int64(1) << 62
)

// DefaultAggregates are the aggregates computed when Options.Aggregates is
// empty.
var DefaultAggregates = []string{"count", "mean", "min", "max", "sum"}

// Options configures an Engine. The zero value of an option means its
// default where one is named.
type Options struct {
	// Size is the length of a window; required.
	Size time.Duration
	// Slide is the distance between the starts of two windows. Equal to
	// Size (or 0, the default) gives tumbling windows; smaller gives hopping
	// windows and Size must then be a whole multiple of Slide.
	Slide time.Duration
	// AllowedLateness is how far behind the event clock a reading may be and
	// still join its window: a window [start, end) closes once the watermark
	// (the event clock minus AllowedLateness) reaches end.
	AllowedLateness time.Duration
	// MaxFuture rejects readings stamped more than this ahead of the wall
	// clock passed to Add; they are counted Future. 0 means no limit.
	MaxFuture time.Duration
	// LatePolicy is LateDrop (the default, also for "") or LateUpdate.
	LatePolicy LatePolicy
	// Dedup drops a repeat of a reading (same series, field and event time)
	// and counts it Duplicate.
	Dedup bool
	// Aggregates names the aggregates computed for every field: count mean
	// min max sum first last stddev p50 p90 p95 p99. Empty means
	// DefaultAggregates. Output fields are named "<field>_<aggregate>".
	Aggregates []string
}

type aggKind uint8

const (
	aggCount aggKind = iota
	aggMean
	aggMin
	aggMax
	aggSum
	aggFirst
	aggLast
	aggStddev
	aggP50
	aggP90
	aggP95
	aggP99
	numAggs
)

var aggNames = [numAggs]string{"count", "mean", "min", "max", "sum", "first", "last", "stddev", "p50", "p90", "p95", "p99"}

var aggQuantile = [numAggs]float64{aggP50: 0.50, aggP90: 0.90, aggP95: 0.95, aggP99: 0.99}

func (a aggKind) percentile() bool { return a >= aggP50 }

// validate checks o and returns the normalised options and the aggregates,
// or every problem found, each naming the option and what is accepted.
func (o Options) validate() (Options, []aggKind, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrOptions}, args...)...))
	}
	if o.Slide == 0 {
		o.Slide = o.Size
	}
	if o.LatePolicy == "" {
		o.LatePolicy = LateDrop
	}
	switch {
	case o.Size <= 0:
		bad("window.size %s: must be a positive duration such as 10s", o.Size)
	case o.Size > MaxDuration:
		bad("window.size %s: must be at most %s", o.Size, MaxDuration)
	}
	switch {
	case o.Slide < 0:
		bad("window.slide %s: must be a positive duration such as 10s (or 0 for window.size)", o.Slide)
	case o.Size > 0 && o.Slide > o.Size:
		bad("window.slide %s: must not exceed window.size %s", o.Slide, o.Size)
	case o.Size > 0 && o.Slide > 0 && o.Size%o.Slide != 0:
		bad("window.slide %s: window.size %s must be a whole multiple of it", o.Slide, o.Size)
	case o.Size > 0 && o.Slide > 0 && o.Size/o.Slide > MaxPanesPerWindow:
		bad("window.slide %s: window.size/window.slide is %d, at most %d is accepted", o.Slide, o.Size/o.Slide, MaxPanesPerWindow)
	}
	if o.AllowedLateness < 0 || o.AllowedLateness > MaxDuration {
		bad("window.allowed_lateness %s: must be between 0s and %s", o.AllowedLateness, MaxDuration)
	}
	if o.MaxFuture < 0 || o.MaxFuture > MaxDuration {
		bad("window.max_future %s: must be between 0s (no limit) and %s", o.MaxFuture, MaxDuration)
	}
	if o.LatePolicy != LateDrop && o.LatePolicy != LateUpdate {
		bad("window.late_policy %q: must be %q or %q", o.LatePolicy, LateDrop, LateUpdate)
	}
	names := o.Aggregates
	if len(names) == 0 {
		names = DefaultAggregates
	}
	var aggs []aggKind
	var seen [numAggs]bool
	for _, n := range names {
		k, ok := parseAgg(n)
		switch {
		case !ok:
			bad("window.aggregates %q: unknown aggregate, accepted: %s", n, strings.Join(aggNames[:], " "))
		case seen[k]:
			bad("window.aggregates %q: listed twice", n)
		default:
			seen[k] = true
			aggs = append(aggs, k)
		}
	}
	if len(errs) > 0 {
		return o, nil, errors.Join(errs...)
	}
	o.Aggregates = make([]string, len(aggs))
	for i, k := range aggs {
		o.Aggregates[i] = aggNames[k]
	}
	return o, aggs, nil
}

func parseAgg(s string) (aggKind, bool) {
	for k, n := range aggNames {
		if n == s {
			return aggKind(k), true
		}
	}
	return 0, false
}
