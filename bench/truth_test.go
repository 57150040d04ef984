package bench

import (
	"bufio"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testenv"
	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// The truth-file arithmetic of cmd/edgegw/e2e_test.go, for the windows of
// this benchmark (a test package cannot import another's test helpers).

type rollupKey struct {
	series string // tags as "device=dev1,site=site1"
	start  int64
}

// expectedRollups computes the rollups a correct gateway writes for the
// readings in the truth file: every reading not marked late, grouped by
// series and tumbling window of size, with count, sum, mean, min and max.
func expectedRollups(tb testing.TB, truth string) map[rollupKey]map[string]float64 {
	tb.Helper()
	f, err := os.Open(truth)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	type agg struct{ n, sum, min, max float64 }
	aggs := map[rollupKey]map[string]*agg{}
	late := false
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
		if late {
			late = false
			continue
		}
		dec := lineprotocol.NewDecoderWithBytes([]byte(line + "\n"))
		if !dec.Next() {
			tb.Fatalf("truth line %q: no point", line)
		}
		if _, err := dec.Measurement(); err != nil {
			tb.Fatalf("truth line %q: %v", line, err)
		}
		var tags []string
		for {
			k, v, err := dec.NextTag()
			if err != nil {
				tb.Fatalf("truth line %q: %v", line, err)
			}
			if k == nil {
				break
			}
			tags = append(tags, string(k)+"="+string(v))
		}
		sort.Strings(tags)
		k, v, err := dec.NextField()
		if err != nil || k == nil {
			tb.Fatalf("truth line %q: field: %v", line, err)
		}
		field, value := string(k), v.Interface().(float64)
		ts, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
		if err != nil {
			tb.Fatalf("truth line %q: time: %v", line, err)
		}
		start := ts.UnixNano() - ts.UnixNano()%int64(size)
		key := rollupKey{strings.Join(tags, ","), start}
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
	if err := sc.Err(); err != nil {
		tb.Fatalf("read %s: %v", truth, err)
	}
	want := map[rollupKey]map[string]float64{}
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

// influxRollups reads every point of measurement sensors from database db.
func influxRollups(tb testing.TB, influx *testenv.InfluxDB, db string) map[rollupKey]map[string]float64 {
	tb.Helper()
	rows, err := influx.QueryErr(db, "SELECT * FROM sensors GROUP BY *")
	if err != nil {
		tb.Fatalf("query InfluxDB: %v", err)
	}
	got := map[rollupKey]map[string]float64{}
	for _, r := range rows {
		var tags []string
		for k, v := range r.Tags {
			tags = append(tags, k+"="+v)
		}
		sort.Strings(tags)
		key := rollupKey{strings.Join(tags, ","), r.Time}
		got[key] = map[string]float64{}
		for name, n := range r.Fields {
			v, err := strconv.ParseFloat(string(n), 64)
			if err != nil {
				tb.Fatalf("%v: field %s = %q: %v", key, name, n, err)
			}
			got[key][name] = v
		}
	}
	return got
}

// total returns the readings the rollups count.
func total(rs map[rollupKey]map[string]float64) int64 {
	var n int64
	for _, fields := range rs {
		for name, v := range fields {
			if strings.HasSuffix(name, "_count") {
				n += int64(v)
			}
		}
	}
	return n
}

// compareRollups fails tb for every point or field that differs.
func compareRollups(tb testing.TB, got, want map[rollupKey]map[string]float64) {
	tb.Helper()
	bad := 0
	report := func(format string, args ...any) {
		bad++
		if bad <= 20 {
			tb.Errorf(format, args...)
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
		tb.Errorf("... %d problems in all", bad)
	}
}
