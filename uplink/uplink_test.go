package uplink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	edgegw "github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memOutbox is an in-memory Outbox that records what was removed.
type memOutbox struct {
	mu      sync.Mutex
	seq     uint64
	items   []memItem
	removed []uint64 // the through of each Remove or DeadLetter
	dead    []deadLine
	notify  chan struct{}
}

// deadLine is one line passed to memOutbox.DeadLetter.
type deadLine struct {
	line, reason string
}

type memItem struct {
	seq uint64
	r   edgegw.Rollup
}

func newOutbox(rs ...edgegw.Rollup) *memOutbox {
	ob := &memOutbox{notify: make(chan struct{}, 1)}
	ob.add(rs...)
	return ob
}

func (ob *memOutbox) add(rs ...edgegw.Rollup) {
	ob.mu.Lock()
	for _, r := range rs {
		ob.seq++
		ob.items = append(ob.items, memItem{ob.seq, r})
	}
	ob.mu.Unlock()
	select {
	case ob.notify <- struct{}{}:
	default:
	}
}

func (ob *memOutbox) Peek(max int) ([]edgegw.Rollup, uint64, error) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	var rs []edgegw.Rollup
	var through uint64
	for _, it := range ob.items[:min(max, len(ob.items))] {
		rs = append(rs, it.r)
		through = it.seq
	}
	return rs, through, nil
}

func (ob *memOutbox) Remove(through uint64) error {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	ob.removed = append(ob.removed, through)
	ob.items = slices.DeleteFunc(ob.items, func(it memItem) bool { return it.seq <= through })
	return nil
}

func (ob *memOutbox) DeadLetter(through uint64, lines [][]byte, reasons []string) error {
	ob.mu.Lock()
	for i, l := range lines {
		ob.dead = append(ob.dead, deadLine{string(l), reasons[i]})
	}
	ob.mu.Unlock()
	return ob.Remove(through)
}

func (ob *memOutbox) deadLetters() []deadLine {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return slices.Clone(ob.dead)
}

func (ob *memOutbox) Notify() <-chan struct{} { return ob.notify }

func (ob *memOutbox) len() int {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return len(ob.items)
}

func (ob *memOutbox) removals() []uint64 {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return slices.Clone(ob.removed)
}

// waitEmpty waits until ob is empty, at most d.
func waitEmpty(t *testing.T, ob *memOutbox, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for ob.len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d rollups after %v", ob.len(), d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// run starts u.Run and stops it when the test ends, checking it returns nil.
func run(t *testing.T, u *Uplink) (stop func()) {
	t.Helper()
	return testenv.Run(t, u.Run)
}

func newUplink(t *testing.T, opts Options, ob Outbox, logger *slog.Logger, reg prometheus.Registerer) *Uplink {
	t.Helper()
	u, err := New(opts, ob, logger, reg)
	if err != nil {
		t.Fatalf("New(%+v) = %v", opts, err)
	}
	return u
}

// sample returns n rollups over three series, one window apart.
func sample(n int) []edgegw.Rollup {
	series := []string{
		edgegw.SeriesKey("sensors", []edgegw.Tag{{Key: "site", Value: "s1"}, {Key: "device", Value: "d1"}}),
		edgegw.SeriesKey("sensors", []edgegw.Tag{{Key: "site", Value: "s 2,b"}, {Key: "device", Value: "d=2"}}),
		edgegw.SeriesKey("weather station", []edgegw.Tag{{Key: "site", Value: "roof"}}),
	}
	var rs []edgegw.Rollup
	for i := range n {
		rs = append(rs, edgegw.Rollup{
			Series: series[i%len(series)],
			Start:  1_700_000_000_000_000_000 + int64(i/len(series))*10_000_000_000 + int64(i%7),
			Fields: []edgegw.Field{
				{Name: "humidity_mean", Value: 40 + float64(i)/3},
				{Name: "temperature_count", Value: float64(i + 1), Integer: true},
				{Name: "temperature_max", Value: 22.125 + float64(i)},
				{Name: "temperature_mean", Value: 21.1234567890123 - float64(i)*1e-9},
			},
		})
	}
	return rs
}

// checkStored checks that InfluxDB database holds exactly the rollups rs.
func checkStored(t *testing.T, db *testenv.InfluxDB, database string, rs []edgegw.Rollup) {
	t.Helper()
	rows := db.Query(t, database, `SELECT * FROM /.*/ GROUP BY *`)
	type key struct {
		series string
		start  int64
	}
	got := map[key]testenv.Row{}
	for _, row := range rows {
		var tags []edgegw.Tag
		for k, v := range row.Tags {
			if v != "" {
				tags = append(tags, edgegw.Tag{Key: k, Value: v})
			}
		}
		got[key{edgegw.SeriesKey(row.Measurement, tags), row.Time}] = row
	}
	if len(got) != len(rs) {
		t.Errorf("InfluxDB holds %d points, want %d", len(got), len(rs))
	}
	for _, r := range rs {
		row, ok := got[key{r.Series, r.Start}]
		if !ok {
			t.Errorf("no point for %s at %d", r.Series, r.Start)
			continue
		}
		if len(row.Fields) != len(r.Fields) {
			t.Errorf("point %s at %d has fields %v, want %d fields", r.Series, r.Start, row.Fields, len(r.Fields))
		}
		for _, f := range r.Fields {
			v, err := strconv.ParseFloat(string(row.Fields[f.Name]), 64)
			if err != nil || v != f.Value {
				t.Errorf("point %s at %d: %s = %q, want %v", r.Series, r.Start, f.Name, row.Fields[f.Name], f.Value)
			}
		}
	}
}

// fieldTypes returns the field types InfluxDB holds for measurement.
func fieldTypes(t *testing.T, db *testenv.InfluxDB, database, measurement string) map[string]string {
	t.Helper()
	q := url.Values{"db": {database}, "q": {fmt.Sprintf("SHOW FIELD KEYS FROM %q", measurement)}}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(db.URL() + "/query?" + q.Encode())
	if err != nil {
		t.Fatalf("SHOW FIELD KEYS: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			Series []struct {
				Values [][]string `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("SHOW FIELD KEYS: %v", err)
	}
	types := map[string]string{}
	for _, r := range out.Results {
		for _, s := range r.Series {
			for _, v := range s.Values {
				types[v[0]] = v[1]
			}
		}
	}
	return types
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func lines(t *testing.T, rs []edgegw.Rollup) string {
	t.Helper()
	var b []byte
	for _, r := range rs {
		var err error
		if b, err = AppendLine(b, r); err != nil {
			t.Fatal(err)
		}
	}
	return string(b)
}

// TestInflux writes to a real influxd (1.x, API v1).
func TestInflux(t *testing.T) {
	db := testenv.Influx(t)

	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", gz), func(t *testing.T) {
			name := fmt.Sprintf("edge_gzip_%v", gz)
			db.CreateDatabase(t, name)
			rs := sample(30)
			ob := newOutbox(rs...)
			var out syncBuffer
			u := newUplink(t, Options{URL: db.URL(), Database: name, Gzip: gz, Stdout: &out}, ob, nil, nil)
			run(t, u)
			waitEmpty(t, ob, 10*time.Second)
			checkStored(t, db, name, rs)
			want := map[string]string{"humidity_mean": "float", "temperature_count": "integer", "temperature_max": "float", "temperature_mean": "float"}
			for _, m := range []string{"sensors", "weather station"} {
				if got := fieldTypes(t, db, name, m); !equalMaps(got, want) {
					t.Errorf("field types of %s = %v, want %v", m, got, want)
				}
			}
			if got, want := out.String(), lines(t, rs); got != want {
				t.Errorf("Stdout =\n%s\nwant\n%s", got, want)
			}
		})
	}

	t.Run("batch size", func(t *testing.T) {
		db.CreateDatabase(t, "edge_batches")
		rs := sample(10)
		ob := newOutbox(rs...)
		u := newUplink(t, Options{URL: db.URL(), Database: "edge_batches", BatchSize: 3}, ob, nil, nil)
		if err := u.Flush(context.Background()); err != nil {
			t.Fatalf("Flush() = %v", err)
		}
		if got, want := ob.removals(), []uint64{3, 6, 9, 10}; !slices.Equal(got, want) {
			t.Errorf("removed through %v, want %v: one request per 3 rollups", got, want)
		}
		checkStored(t, db, "edge_batches", rs)
	})

	t.Run("latency", func(t *testing.T) {
		db.CreateDatabase(t, "edge_latency")
		ob := newOutbox()
		u := newUplink(t, Options{URL: db.URL(), Database: "edge_latency", Gzip: true}, ob, nil, nil)
		run(t, u)
		var took []time.Duration
		rs := sample(100)
		for _, r := range rs {
			start := time.Now()
			ob.add(r)
			waitEmpty(t, ob, 5*time.Second)
			took = append(took, time.Since(start))
		}
		sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
		p99 := took[len(took)*99/100-1]
		t.Logf("commit to InfluxDB 2xx: p50 %v, p99 %v, max %v", took[len(took)/2], p99, took[len(took)-1])
		if p99 > 250*time.Millisecond {
			t.Errorf("p99 latency from Notify to a 2xx = %v, want at most 250ms", p99)
		}
		checkStored(t, db, "edge_latency", rs)
	})

	// Last: it stops and restarts influxd.
	t.Run("influxd down then back", func(t *testing.T) {
		db.CreateDatabase(t, "edge_outage")
		var logs syncBuffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		reg := prometheus.NewRegistry()
		ob := newOutbox(sample(5)...)
		u := newUplink(t, Options{URL: db.URL(), Database: "edge_outage", Gzip: true,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}, ob, logger, reg)
		run(t, u)
		waitEmpty(t, ob, 10*time.Second)

		db.Stop()
		rs := sample(40)
		ob.add(rs[5:20]...)
		time.Sleep(300 * time.Millisecond)
		ob.add(rs[20:]...)
		time.Sleep(300 * time.Millisecond)
		if n := ob.len(); n != 35 {
			t.Errorf("outbox holds %d rollups while influxd is down, want all 35", n)
		}
		if got := ob.removals(); len(got) != 1 {
			t.Errorf("removed through %v while influxd was down, want only the first batch", got)
		}
		failures := testutil.ToFloat64(u.mErrors.WithLabelValues("network"))
		if failures < 3 {
			t.Errorf("edgegw_uplink_write_errors_total{reason=network} = %v after 600ms down with a 10-100ms backoff, want retries", failures)
		}

		db.Start()
		waitEmpty(t, ob, 10*time.Second)
		checkStored(t, db, "edge_outage", rs)
		if got := testutil.ToFloat64(u.mWritten); got != 40 {
			t.Errorf("edgegw_rollups_written_total = %v, want 40", got)
		}
		if n := strings.Count(logs.String(), "upstream write failed"); n != 1 {
			t.Errorf("logged %d failures for %v failed attempts, want 1 (each distinct failure once):\n%s", n, failures, logs.String())
		}
		if n := strings.Count(logs.String(), "upstream writes recovered"); n != 1 {
			t.Errorf("logged %d recoveries, want 1:\n%s", n, logs.String())
		}
	})
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestStdoutOnly(t *testing.T) {
	rs := sample(7)
	ob := newOutbox(rs...)
	var out syncBuffer
	u := newUplink(t, Options{Stdout: &out, BatchSize: 2}, ob, nil, nil)
	if err := u.Flush(context.Background()); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	if got, want := out.String(), lines(t, rs); got != want {
		t.Errorf("Stdout =\n%s\nwant\n%s", got, want)
	}
	if ob.len() != 0 {
		t.Errorf("outbox holds %d rollups after Flush to stdout, want 0", ob.len())
	}
}

// failingWriter fails its first n writes.
type failingWriter struct {
	n   int
	out bytes.Buffer
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n > 0 {
		w.n--
		return 0, errors.New("broken pipe")
	}
	return w.out.Write(p)
}

func TestStdoutOnlyRetries(t *testing.T) {
	rs := sample(3)
	ob := newOutbox(rs...)
	w := &failingWriter{n: 2}
	u := newUplink(t, Options{Stdout: w, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, ob, nil, nil)
	if err := u.Flush(context.Background()); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	if got, want := w.out.String(), lines(t, rs); got != want {
		t.Errorf("Stdout after two failed writes =\n%s\nwant\n%s", got, want)
	}
	if got := testutil.ToFloat64(u.mErrors.WithLabelValues("stdout")); got != 2 {
		t.Errorf("edgegw_uplink_write_errors_total{reason=stdout} = %v, want 2", got)
	}
}

func TestUnencodableRollupIsLeftOut(t *testing.T) {
	rs := sample(3)
	bad := edgegw.Rollup{Series: "m", Start: 1, Fields: []edgegw.Field{{Name: "x_mean", Value: 1.5, Integer: true}}}
	ob := newOutbox(rs[0], bad, rs[1], rs[2])
	var out bytes.Buffer
	var logs syncBuffer
	u := newUplink(t, Options{Stdout: &out}, ob, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	if err := u.Flush(context.Background()); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	if got, want := out.String(), lines(t, rs); got != want {
		t.Errorf("Stdout =\n%s\nwant the 3 good rollups\n%s", got, want)
	}
	if got := testutil.ToFloat64(u.mErrors.WithLabelValues("encode")); got != 1 {
		t.Errorf("edgegw_uplink_write_errors_total{reason=encode} = %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "x_mean = 1.5 is not a whole int64") {
		t.Errorf("log does not name the bad field:\n%s", logs.String())
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	ob := newOutbox()
	for _, tc := range []struct {
		name string
		opts Options
		want []string
	}{
		{"nowhere", Options{}, []string{"URL is empty and Stdout is nil"}},
		{"scheme", Options{URL: "tcp://127.0.0.1:8086", Database: "d"}, []string{`scheme "tcp"; want http or https`}},
		{"no host", Options{URL: "http://", Database: "d"}, []string{"has no host"}},
		{"query", Options{URL: "http://h:1/?db=x", Database: "d"}, []string{"query or fragment"}},
		{"v1 no database", Options{URL: "http://h:1"}, []string{"Database is empty"}},
		{"v2 no bucket", Options{URL: "http://h:1", API: "v2"}, []string{"Bucket is empty"}},
		{"api", Options{URL: "http://h:1", API: "v3"}, []string{`API "v3"; want v1 or v2`}},
		{"all at once", Options{URL: "http://h:1", BatchSize: -1, Timeout: -1, MinBackoff: time.Minute, MaxBackoff: time.Second},
			[]string{"Database is empty", "BatchSize -1 is negative", "Timeout -1ns is negative", "MinBackoff 1m0s is above MaxBackoff 1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts, ob, nil, nil)
			if err == nil {
				t.Fatalf("New(%+v) = nil error", tc.opts)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New(%+v) = %q, want it to contain %q", tc.opts, err, w)
				}
			}
		})
	}
	if _, err := New(Options{Stdout: io.Discard}, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "outbox is nil") {
		t.Errorf("New(nil outbox) = %v, want an error naming it", err)
	}
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	u := newUplink(t, Options{Stdout: io.Discard}, newOutbox(sample(2)...), nil, reg)
	if err := u.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	u.mErrors.WithLabelValues("network")
	want := `
# HELP edgegw_rollups_written_total Rollups written upstream (a 2xx from InfluxDB, or printed without InfluxDB).
# TYPE edgegw_rollups_written_total counter
edgegw_rollups_written_total 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "edgegw_rollups_written_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg); n != 4 {
		t.Errorf("metrics collected = %d, want 4 (written, errors{network}, write seconds, dead letters)", n)
	}
	if _, err := New(Options{Stdout: io.Discard}, newOutbox(), nil, reg); err == nil {
		t.Error("New with a registry already holding the metrics = nil error, want a register error")
	}
}
