package testenv

import (
	"bufio"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// The truth-file arithmetic of the end-to-end tests and benchmarks: the
// rollups a correct gateway writes, computed from a simulator's --truth file
// without the window engine, and their comparison with InfluxDB's points.

// RollupKey names one point of a rollup: its series, as its tags sorted
// ("device=dev1,site=site1"), and its window start in ns.
type RollupKey struct {
	Series string
	Start  int64
}

// ExpectedRollups computes the rollups a correct gateway writes for the
// readings in the truth file: every reading not marked late, grouped by
// series and tumbling window of size, with count, sum, mean, min and max.
func ExpectedRollups(t testing.TB, truth string, size time.Duration) map[RollupKey]map[string]float64 {
	t.Helper()
	f, err := os.Open(truth)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type agg struct{ n, sum, min, max float64 }
	aggs := map[RollupKey]map[string]*agg{}
	late := false
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "# late" {
			late = true
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if seen[line] {
			t.Fatalf("truth file repeats a reading: %s", line)
		}
		seen[line] = true
		if late {
			late = false
			continue
		}
		dec := lineprotocol.NewDecoderWithBytes([]byte(line + "\n"))
		if !dec.Next() {
			t.Fatalf("truth line %q: no point", line)
		}
		if _, err := dec.Measurement(); err != nil {
			t.Fatalf("truth line %q: %v", line, err)
		}
		var tags []string
		for {
			k, v, err := dec.NextTag()
			if err != nil {
				t.Fatalf("truth line %q: %v", line, err)
			}
			if k == nil {
				break
			}
			tags = append(tags, string(k)+"="+string(v))
		}
		sort.Strings(tags)
		k, v, err := dec.NextField()
		if err != nil || k == nil {
			t.Fatalf("truth line %q: field: %v", line, err)
		}
		field, value := string(k), v.Interface().(float64)
		ts, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
		if err != nil {
			t.Fatalf("truth line %q: time: %v", line, err)
		}
		start := ts.UnixNano() - ts.UnixNano()%int64(size)
		key := RollupKey{Series: strings.Join(tags, ","), Start: start}
		if aggs[key] == nil {
			aggs[key] = map[string]*agg{}
		}
		a := aggs[key][field]
		if a == nil {
			a = &agg{min: math.Inf(1), max: math.Inf(-1)}
			aggs[key][field] = a
		}
		a.n++
		a.sum += value
		a.min = math.Min(a.min, value)
		a.max = math.Max(a.max, value)
	}
	want := map[RollupKey]map[string]float64{}
	for key, fields := range aggs {
		want[key] = map[string]float64{}
		for field, a := range fields {
			want[key][field+"_count"] = a.n
			want[key][field+"_sum"] = a.sum
			want[key][field+"_mean"] = a.sum / a.n
			want[key][field+"_min"] = a.min
			want[key][field+"_max"] = a.max
		}
	}
	return want
}

// Rollups reads every point of measurement sensors from database, as
// ExpectedRollups gives them; an integer field _count must be an integer.
func (db *InfluxDB) Rollups(t testing.TB, database string) map[RollupKey]map[string]float64 {
	t.Helper()
	rows, err := db.QueryErr(database, "SELECT * FROM sensors GROUP BY *")
	if err != nil {
		t.Fatalf("query InfluxDB: %v", err)
	}
	got := map[RollupKey]map[string]float64{}
	for _, r := range rows {
		var tags []string
		for k, v := range r.Tags {
			tags = append(tags, k+"="+v)
		}
		sort.Strings(tags)
		key := RollupKey{Series: strings.Join(tags, ","), Start: r.Time}
		got[key] = map[string]float64{}
		for name, n := range r.Fields {
			if strings.HasSuffix(name, "_count") && strings.ContainsAny(string(n), ".eE") {
				t.Errorf("%v: %s = %s, want an integer", key, name, n)
			}
			v, err := strconv.ParseFloat(string(n), 64)
			if err != nil {
				t.Fatalf("%v: field %s = %q: %v", key, name, n, err)
			}
			got[key][name] = v
		}
	}
	return got
}

// CompareRollups fails t for every point or field of got that differs from
// want: counts exactly, other fields within 1e-9 relative, nothing missing
// and nothing extra.
func CompareRollups(t testing.TB, got, want map[RollupKey]map[string]float64) {
	t.Helper()
	bad := 0
	report := func(format string, args ...any) {
		bad++
		if bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	for key, wf := range want {
		gf, ok := got[key]
		if !ok {
			report("missing point %v (want %v)", key, wf)
			continue
		}
		for name, w := range wf {
			g, ok := gf[name]
			switch {
			case !ok:
				report("%v: missing field %s (want %v)", key, name, w)
			case strings.HasSuffix(name, "_count") && g != w:
				report("%v: %s = %v, want %v", key, name, g, w)
			case math.Abs(g-w) > 1e-9*math.Abs(w) && g != w:
				report("%v: %s = %v, want %v", key, name, g, w)
			}
		}
		for name, g := range gf {
			if _, ok := wf[name]; !ok {
				report("%v: extra field %s = %v", key, name, g)
			}
		}
	}
	for key, gf := range got {
		if _, ok := want[key]; !ok {
			report("extra point %v: %v", key, gf)
		}
	}
	if bad > 20 {
		t.Errorf("... %d problems in all", bad)
	}
	t.Logf("compared %d points (want %d)", len(got), len(want))
}
