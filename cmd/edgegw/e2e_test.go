package main

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testenv"
	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// TestEndToEnd runs the simulator against a real Mosquitto, the gateway as a
// process, and a real InfluxDB, and compares every point in InfluxDB with the
// rollups computed from the simulator's truth file.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: skipped with -short")
	}
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	influx := testenv.Influx(t)
	influx.CreateDatabase(t, "edge")
	dir := t.TempDir()

	const size, lateness = 2 * time.Second, time.Second
	gw := startGateway(t, dir, fmt.Sprintf(`
gateway:
  id: e2e
  data_dir: %s
mqtt:
  broker: %s
window:
  size: %s
  slide: %s
  allowed_lateness: %s
uplink:
  influx:
    url: %s
    database: edge
metrics:
  listen: 127.0.0.1:%d
`, filepath.Join(dir, "data"), broker.URL(), size, size, lateness, influx.URL(), testenv.FreePort(t)))

	truth := filepath.Join(dir, "truth.lp")
	_, errOut, code := edgegw(t, nil, "simulate", "--broker", broker.URL(), "--devices", "20", "--sites", "2",
		"--rate", "1000", "--count", "6000", "--format", "json", "--seed", "7",
		"--out-of-order", "0.05", "--late", "0.01", "--duplicates", "0.05", "--lateness", lateness.String(),
		"--truth", truth)
	if code != 0 {
		t.Fatalf("simulate: exit %d\n%s", code, errOut)
	}
	want := expectedRollups(t, truth, size)
	if len(want) == 0 {
		t.Fatal("the truth file gives no rollups")
	}

	// The last windows close size+lateness after the last reading; then the
	// uplink writes them.
	var got map[rollupKey]map[string]float64
	deadline := time.Now().Add(size + lateness + 20*time.Second)
	for {
		got = influxRollups(t, influx)
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // nothing extra arrives late
	got = influxRollups(t, influx)
	compareRollups(t, got, want)

	gw.stop(t)
}

type gateway struct {
	cmd     *exec.Cmd
	stderr  *lockedBuffer
	metrics string
	exited  chan struct{}
}

// startGateway writes cfg and runs `edgegw run -c` on it until /readyz says
// ready.
func startGateway(t *testing.T, dir, cfg string) *gateway {
	t.Helper()
	path := filepath.Join(dir, "edgegw.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	g := &gateway{cmd: exec.Command(binary, "run", "-c", path), stderr: &lockedBuffer{}, exited: make(chan struct{})}
	g.cmd.Stderr = g.stderr
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		g.cmd.Process.Kill()
		<-g.exited
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.stderr.String())
		}
	})
	for _, line := range strings.Split(cfg, "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "listen: ") {
			g.metrics = "http://" + strings.TrimPrefix(l, "listen: ")
		}
	}
	waitFor(t, 15*time.Second, "the gateway's /readyz", func() bool {
		select {
		case <-g.exited:
			t.Fatalf("gateway exited at start:\n%s", g.stderr.String())
		default:
		}
		resp, err := http.Get(g.metrics + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return g
}

// stop sends SIGTERM and expects exit 0 within 15 s.
func (g *gateway) stop(t *testing.T) {
	t.Helper()
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("gateway did not stop within 15s of SIGTERM")
	}
	if code := g.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("gateway exit code after SIGTERM = %d, want 0\n%s", code, g.stderr.String())
	}
}

type rollupKey struct {
	series string // tags as "device=dev1,site=site1"
	start  int64
}

// expectedRollups computes the rollups a correct gateway writes for the
// readings in the truth file: every reading not marked late, grouped by
// series and tumbling window of size, with count, sum, mean, min and max.
func expectedRollups(t *testing.T, truth string, size time.Duration) map[rollupKey]map[string]float64 {
	t.Helper()
	f, err := os.Open(truth)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type agg struct{ n, sum, min, max float64 }
	aggs := map[rollupKey]map[string]*agg{}
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

// influxRollups reads every point of measurement sensors from InfluxDB.
func influxRollups(t *testing.T, db *testenv.InfluxDB) map[rollupKey]map[string]float64 {
	t.Helper()
	rows, err := db.QueryErr("edge", "SELECT * FROM sensors GROUP BY *")
	if err != nil {
		t.Fatalf("query InfluxDB: %v", err)
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

func compareRollups(t *testing.T, got, want map[rollupKey]map[string]float64) {
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
