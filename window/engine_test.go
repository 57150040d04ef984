package window

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

// base is the wall and event time origin of the table tests.
var base = time.Unix(1_700_000_000, 0)

const s = int64(time.Second)

// at returns a reading of series "m,id=a" (or series, if given).
func rd(field string, v float64, t int64, series ...string) edgegw.Reading {
	k := "m,id=a"
	if len(series) > 0 {
		k = series[0]
	}
	return edgegw.Reading{Series: k, Field: field, Value: v, Time: base.UnixNano() + t}
}

// step feeds readings arriving at base+now (or only advances with none).
type step struct {
	now time.Duration
	rs  []edgegw.Reading
}

// format renders a rollup as "series@start(s since base) name=value ...",
// counts with an i suffix as in line protocol.
func format(r edgegw.Rollup) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s@%d", r.Series, (r.Start-base.UnixNano())/s)
	for _, f := range r.Fields {
		b.WriteString(" " + f.Name + "=" + strconv.FormatFloat(f.Value, 'g', -1, 64))
		if f.Integer {
			b.WriteString("i")
		}
	}
	return b.String()
}

type totals struct{ Accepted, Late, Duplicate, Future, Invalid int }

// drive runs the steps through a fresh engine, committing after each, and
// returns the rollups emitted and the counts.
func drive(t *testing.T, o Options, steps []step) ([]string, totals) {
	t.Helper()
	e, err := New(o)
	if err != nil {
		t.Fatalf("New(%+v) = %v", o, err)
	}
	var got []string
	var c totals
	for _, st := range steps {
		now := base.Add(st.now)
		e.Add(st.rs, now)
		e.Advance(now)
		r := e.Ready()
		for _, x := range r.Rollups {
			got = append(got, format(x))
		}
		c.Accepted += r.Accepted
		c.Late += r.Late
		c.Duplicate += r.Duplicate
		c.Future += r.Future
		c.Invalid += r.Invalid
		e.Done(r)
	}
	return got, c
}

func TestSemantics(t *testing.T) {
	ten := 10 * time.Second
	five := 5 * time.Second
	sum := []string{"count", "sum"}
	tests := []struct {
		name  string
		opts  Options
		steps []step
		want  []string
		count totals
	}{
		{
			name: "tumbling closes when the clock passes the end",
			opts: Options{Size: ten},
			steps: []step{
				{1 * time.Second, []edgegw.Reading{rd("t", 1, 1*s), rd("t", 2, 2*s)}},
				// 2s arrived 1s early, so the clock runs 1s ahead of wall time.
				{8 * time.Second, []edgegw.Reading{rd("t", 4, 9*s)}},
				{12 * time.Second, []edgegw.Reading{rd("t", 8, 12*s)}},
			},
			want:  []string{"m,id=a@0 t_count=3i t_max=4 t_mean=2.3333333333333335 t_min=1 t_sum=7"},
			count: totals{Accepted: 4},
		},
		{
			name: "hopping: a reading joins every window holding it",
			opts: Options{Size: ten, Slide: five, Aggregates: sum},
			steps: []step{
				{3 * time.Second, []edgegw.Reading{rd("t", 1, 3*s)}},
				{7 * time.Second, []edgegw.Reading{rd("t", 2, 7*s)}},
				{12 * time.Second, []edgegw.Reading{rd("t", 4, 12*s)}},
				{60 * time.Second, nil},
			},
			want: []string{
				"m,id=a@-5 t_count=1i t_sum=1",
				"m,id=a@0 t_count=2i t_sum=3",
				"m,id=a@5 t_count=2i t_sum=6",
				"m,id=a@10 t_count=1i t_sum=4",
			},
			count: totals{Accepted: 3},
		},
		{
			name: "within lateness a reading still joins",
			opts: Options{Size: ten, AllowedLateness: five, Aggregates: sum},
			steps: []step{
				{13 * time.Second, []edgegw.Reading{rd("t", 1, 13*s), rd("t", 2, 9*s)}},
				{14 * time.Second, []edgegw.Reading{rd("t", 4, 0)}},
				{15 * time.Second, nil},
			},
			want:  []string{"m,id=a@0 t_count=2i t_sum=6"},
			count: totals{Accepted: 3},
		},
		{
			name: "late under drop is counted, not aggregated",
			opts: Options{Size: ten, AllowedLateness: five, Aggregates: sum},
			steps: []step{
				{1 * time.Second, []edgegw.Reading{rd("t", 1, 1*s)}},
				{16 * time.Second, []edgegw.Reading{rd("t", 2, 16*s), rd("t", 4, 5*s)}},
			},
			want:  []string{"m,id=a@0 t_count=1i t_sum=1"},
			count: totals{Accepted: 2, Late: 1},
		},
		{
			name: "closing is evaluated reading by reading",
			opts: Options{Size: ten, Aggregates: sum},
			steps: []step{
				// The second reading moves the clock to 10s, closing [0,10)
				// before the third arrives.
				{0, []edgegw.Reading{rd("t", 1, 1*s), rd("t", 2, 10*s), rd("t", 4, 2*s)}},
			},
			want:  []string{"m,id=a@0 t_count=1i t_sum=1"},
			count: totals{Accepted: 2, Late: 1},
		},
		{
			name: "update re-emits a corrected window until end+2*lateness",
			opts: Options{Size: ten, AllowedLateness: five, LatePolicy: LateUpdate, Aggregates: sum},
			steps: []step{
				{1 * time.Second, []edgegw.Reading{rd("t", 1, 1*s)}},
				{16 * time.Second, nil}, // closes [0,10) at clock 15
				{17 * time.Second, []edgegw.Reading{rd("t", 2, 5*s), rd("t", 4, 6*s)}},
				{21 * time.Second, []edgegw.Reading{rd("t", 8, 7*s)}}, // past 20: late
			},
			want: []string{
				"m,id=a@0 t_count=1i t_sum=1",
				"m,id=a@0 t_count=3i t_sum=7", // both corrections in one rollup
			},
			count: totals{Accepted: 3, Late: 1},
		},
		{
			name: "hopping under drop: closed windows never get the reading",
			opts: Options{Size: ten, Slide: five, Aggregates: sum},
			steps: []step{
				{1 * time.Second, []edgegw.Reading{rd("t", 1, 1*s)}},
				// Clock 11s closes [0,10); the reading at 7s still joins [5,15).
				{11 * time.Second, []edgegw.Reading{rd("t", 2, 7*s)}},
				{60 * time.Second, nil},
			},
			want: []string{
				"m,id=a@-5 t_count=1i t_sum=1",
				"m,id=a@0 t_count=1i t_sum=1",
				"m,id=a@5 t_count=1i t_sum=2",
			},
			count: totals{Accepted: 2},
		},
		{
			name: "dedup drops a repeat of series, field and event time",
			opts: Options{Size: ten, Dedup: true, Aggregates: sum},
			steps: []step{
				{1 * time.Second, []edgegw.Reading{rd("t", 1, 1*s), rd("t", 1, 1*s), rd("h", 1, 1*s), rd("t", 1, 1*s, "m,id=b")}},
				{2 * time.Second, []edgegw.Reading{rd("t", 5, 1*s), rd("t", 2, 2*s)}},
				{20 * time.Second, nil},
			},
			want: []string{
				"m,id=a@0 h_count=1i h_sum=1 t_count=2i t_sum=3",
				"m,id=b@0 t_count=1i t_sum=1",
			},
			count: totals{Accepted: 4, Duplicate: 2},
		},
		{
			name: "without dedup a repeat counts",
			opts: Options{Size: ten, Aggregates: sum},
			steps: []step{
				{1 * time.Second, []edgegw.Reading{rd("t", 1, 1*s), rd("t", 1, 1*s)}},
				{20 * time.Second, nil},
			},
			want:  []string{"m,id=a@0 t_count=2i t_sum=2"},
			count: totals{Accepted: 2},
		},
		{
			name: "max_future rejects and does not move the clock",
			opts: Options{Size: ten, MaxFuture: time.Minute, Aggregates: sum},
			steps: []step{
				{1 * time.Second, []edgegw.Reading{rd("t", 1, 1*s), rd("t", 2, 62*s), rd("t", 4, 63*s)}},
				// Had 62s or 63s moved the clock, [0,10) would be closed and
				// this late.
				{2 * time.Second, []edgegw.Reading{rd("t", 8, 2*s)}},
				{2 * time.Minute, nil},
			},
			want: []string{
				"m,id=a@0 t_count=2i t_sum=9",
			},
			count: totals{Accepted: 2, Future: 2},
		},
		{
			name: "a silent spell closes windows on Advance",
			opts: Options{Size: ten, AllowedLateness: five, Aggregates: sum},
			steps: []step{
				{1 * time.Second, []edgegw.Reading{rd("t", 1, 1*s)}},
				{14 * time.Second, nil}, // clock 14s: open
				{15 * time.Second, nil}, // clock 15s: closed
			},
			want:  []string{"m,id=a@0 t_count=1i t_sum=1"},
			count: totals{Accepted: 1},
		},
		{
			name: "replayed old data closes windows as live data does",
			opts: Options{Size: ten, Aggregates: sum},
			steps: []step{
				{0, []edgegw.Reading{rd("t", 1, -3600*s), rd("t", 2, -3595*s), rd("t", 4, -3589*s)}},
			},
			want:  []string{"m,id=a@-3600 t_count=2i t_sum=3"},
			count: totals{Accepted: 3},
		},
		{
			name: "negative event times use floor division",
			opts: Options{Size: ten, Aggregates: sum},
			steps: []step{
				{0, []edgegw.Reading{
					{Series: "m", Field: "t", Value: 1, Time: -1},
					{Series: "m", Field: "t", Value: 2, Time: -10 * s},
					{Series: "m", Field: "t", Value: 4, Time: 0},
				}},
			},
			want:  []string{fmt.Sprintf("m@%d t_count=2i t_sum=3", (-10*s-base.UnixNano())/s)},
			count: totals{Accepted: 3},
		},
		{
			name: "NaN, Inf and out-of-range times are invalid",
			opts: Options{Size: ten, Aggregates: sum},
			steps: []step{
				{1 * time.Second, []edgegw.Reading{
					rd("t", math.NaN(), 1*s), rd("t", math.Inf(1), 1*s), rd("t", math.Inf(-1), 1*s),
					{Series: "m", Field: "t", Value: 1, Time: math.MaxInt64},
					{Series: "m", Field: "t", Value: 1, Time: math.MinInt64},
					rd("t", 1, 1*s),
				}},
				{20 * time.Second, nil},
			},
			want:  []string{"m,id=a@0 t_count=1i t_sum=1"},
			count: totals{Accepted: 1, Invalid: 5},
		},
		{
			name: "every aggregate, fields sorted by name",
			opts: Options{Size: ten, Aggregates: []string{"p99", "stddev", "last", "first", "p50", "p90", "p95", "count", "mean", "min", "max", "sum"}},
			steps: []step{
				{5 * time.Second, []edgegw.Reading{rd("a_b", 3, 3*s), rd("a", 2, 2*s), rd("a", 4, 4*s), rd("a", 1, 1*s), rd("a", 3, 3*s)}},
				{20 * time.Second, nil},
			},
			want: []string{"m,id=a@0" +
				" a_b_count=1i a_b_first=3 a_b_last=3 a_b_max=3 a_b_mean=3 a_b_min=3 a_b_p50=2.9742334234767003 a_b_p90=2.9742334234767003" +
				" a_b_p95=2.9742334234767003 a_b_p99=2.9742334234767003 a_b_stddev=0 a_b_sum=3" +
				" a_count=4i a_first=1 a_last=4 a_max=4 a_mean=2.5 a_min=1 a_p50=1.9936617014173443 a_p90=2.9742334234767003" +
				" a_p95=2.9742334234767003 a_p99=2.9742334234767003 a_stddev=1.2909944487358056 a_sum=10"},
			count: totals{Accepted: 5},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, c := drive(t, tc.opts, tc.steps)
			if !slices.Equal(got, tc.want) {
				t.Errorf("rollups:\n got %q\nwant %q", got, tc.want)
			}
			if c != tc.count {
				t.Errorf("counts: got %+v, want %+v", c, tc.count)
			}
		})
	}
}
