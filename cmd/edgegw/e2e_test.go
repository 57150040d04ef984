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
)

// e2eCase is one format of TestEndToEnd: the simulator's flags and the
// gateway subscription that reads its payloads (empty: the default one).
type e2eCase struct {
	name         string
	args         []string // simulate flags besides broker, devices, sites, seed, lateness and truth
	batch        int      // readings per message
	subscription string   // the mqtt.subscriptions block
	arrival      bool     // format value: stamped on arrival; compare per-series totals
}

// e2eCases are the formats of TestEndToEnd, each sending 5000 readings in
// about 5 s. The subscriptions are those the simulator package documents.
var e2eCases = []e2eCase{
	{name: "json", batch: 1,
		args: []string{"--format", "json", "--rate", "1000", "--count", "5000"}},
	{name: "json-batch", batch: 10,
		args: []string{"--format", "json", "--batch", "10", "--rate", "100", "--count", "500"},
		subscription: `  subscriptions:
    - topic: "sensors/{site}/{device}"
      format: json
      measurement: sensors`},
	{name: "json-nested", batch: 5,
		args: []string{"--format", "json", "--json-nested", "--batch", "5", "--rate", "200", "--count", "1000"},
		subscription: `  subscriptions:
    - topic: "sensors/{site}/{device}"
      format: json
      measurement: sensors
      json:
        time_key: "readings.*.ts"`},
	{name: "influx", batch: 10,
		args: []string{"--format", "influx", "--batch", "10", "--rate", "100", "--count", "500"},
		subscription: `  subscriptions:
    - topic: "sensors/+/+"
      format: influx
      measurement: sensors`},
	{name: "senml", batch: 10,
		args: []string{"--format", "senml", "--batch", "10", "--rate", "100", "--count", "500"},
		subscription: `  subscriptions:
    - topic: "sensors/{site}/+"
      format: senml
      measurement: sensors
      senml:
        device_separator: ":"`},
	{name: "value", batch: 1, arrival: true,
		args: []string{"--format", "value", "--rate", "1000", "--count", "5000"},
		subscription: `  subscriptions:
    - topic: "sensors/{site}/{device}/{field}"
      format: value
      measurement: sensors`},
}

// TestEndToEnd runs, for every format the simulator sends, the simulator
// against a real Mosquitto, the gateway as a process, and a real InfluxDB,
// and compares every point in InfluxDB with the rollups computed from the
// simulator's truth file. Format value is stamped on arrival, so its windows
// depend on timing: for it the counts and sums per series over all points
// must add up to the readings published.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: skipped with -short")
	}
	influx := testenv.Influx(t)
	for _, tc := range e2eCases {
		t.Run(tc.name, func(t *testing.T) { endToEnd(t, influx, tc) })
	}
}

func endToEnd(t *testing.T, influx *testenv.InfluxDB, tc e2eCase) {
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	db := "e2e_" + strings.ReplaceAll(tc.name, "-", "_")
	influx.CreateDatabase(t, db)
	dir := t.TempDir()

	const size, lateness = 2 * time.Second, time.Second
	gw := startGateway(t, dir, fmt.Sprintf(`
gateway:
  id: e2e-%s
  data_dir: %s
mqtt:
  broker: %s
%s
window:
  size: %s
  slide: %s
  allowed_lateness: %s
uplink:
  flush_interval: 200ms
  influx:
    url: %s
    database: %s
metrics:
  listen: 127.0.0.1:%d
`, tc.name, filepath.Join(dir, "data"), broker.URL(), tc.subscription, size, size, lateness, influx.URL(), db, testenv.FreePort(t)))

	truth := filepath.Join(dir, "truth.lp")
	args := append([]string{"simulate", "--broker", broker.URL(), "--devices", "20", "--sites", "2", "--seed", "7",
		"--out-of-order", "0.05", "--lateness", lateness.String(), "--truth", truth}, tc.args...)
	if !tc.arrival {
		// A repeated bare value is a new reading to the gateway, and a late
		// one needs an event time.
		args = append(args, "--late", "0.01", "--duplicates", "0.05")
	}
	start := time.Now()
	_, errOut, code := edgegw(t, nil, args...)
	if code != 0 {
		t.Fatalf("simulate: exit %d\n%s", code, errOut)
	}
	sent := parseSimSummary(t, errOut)
	t.Logf("simulate %s: %s in %v", strings.Join(tc.args, " "), sent.line, time.Since(start).Round(time.Millisecond))

	// Every message reaches the gateway and is read, none rejected and
	// no part skipped: batch readings each, duplicates included.
	waitFor(t, 15*time.Second, "the gateway to receive every message", func() bool {
		if n := gatewayMetric(t, gw, "edgegw_readings_rejected_total"); n > 0 {
			t.Fatalf("the gateway rejected %v messages; want none (its log follows)", n)
		}
		return gatewayMetric(t, gw, "edgegw_mqtt_messages_received_total") >= float64(sent.messages)
	})
	if n := gatewayMetric(t, gw, "edgegw_readings_skipped_total"); n > 0 {
		t.Errorf("the gateway skipped %v parts of messages; want none", n)
	}
	wantRead := sent.readings + sent.duplicates*int64(tc.batch)
	if n := gatewayMetric(t, gw, "edgegw_readings_received_total"); n != float64(wantRead) {
		t.Errorf("edgegw_readings_received_total = %v, want %d (%d readings + %d duplicate messages × %d)",
			n, wantRead, sent.readings, sent.duplicates, tc.batch)
	}

	// The last windows close size+lateness after the last reading; then the
	// uplink writes them.
	deadline := time.Now().Add(size + lateness + 10*time.Second)
	if tc.arrival {
		want := seriesTotals(expectedRollups(t, truth, size))
		var got map[string]float64
		for {
			got = seriesTotals(influx.Rollups(t, db))
			if sumCounts(got) >= sumCounts(want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // nothing extra arrives late
		compareTotals(t, seriesTotals(influx.Rollups(t, db)), want)
	} else {
		want := expectedRollups(t, truth, size)
		if len(want) == 0 {
			t.Fatal("the truth file gives no rollups")
		}
		for len(influx.Rollups(t, db)) < len(want) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // nothing extra arrives late
		compareRollups(t, influx.Rollups(t, db), want)
	}
	gw.stop(t)
}

// simSummary is the final line of `edgegw simulate`.
type simSummary struct {
	line                                             string
	messages, readings, outOfOrder, late, duplicates int64
}

// parseSimSummary reads the summary line "sent N messages (R readings: O out
// of order, L late; D duplicates) in ..." from the simulator's stderr.
func parseSimSummary(t *testing.T, stderr string) simSummary {
	t.Helper()
	var s simSummary
	for _, l := range strings.Split(stderr, "\r") {
		if strings.Contains(l, " readings: ") {
			s.line = strings.TrimSpace(l)
		}
	}
	if _, err := fmt.Sscanf(s.line, "sent %d messages (%d readings: %d out of order, %d late; %d duplicates)",
		&s.messages, &s.readings, &s.outOfOrder, &s.late, &s.duplicates); err != nil {
		t.Fatalf("simulate printed no summary line (%v):\n%s", err, stderr)
	}
	return s
}

// compareTotals fails t for every per-series total of got that differs
// from want (counts exactly, sums within 1e-9 relative) and for every
// extra one.
func compareTotals(t *testing.T, got, want map[string]float64) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g, w := got[k], want[k]
		switch {
		case strings.HasSuffix(k, "_count") && g != w:
			t.Errorf("%s = %v over all points; want %v (the readings published)", k, g, w)
		case math.Abs(g-w) > 1e-9*math.Abs(w):
			t.Errorf("%s = %v over all points; want %v", k, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s = %v", k, g)
		}
	}
	t.Logf("compared %d per-series totals: %v readings counted, %v published", len(want), sumCounts(got), sumCounts(want))
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

// The truth-file arithmetic lives in internal/testenv, shared with bench/.
type rollupKey = testenv.RollupKey

func expectedRollups(t *testing.T, truth string, size time.Duration) map[rollupKey]map[string]float64 {
	t.Helper()
	return testenv.ExpectedRollups(t, truth, size)
}

func influxRollups(t *testing.T, db *testenv.InfluxDB) map[rollupKey]map[string]float64 {
	t.Helper()
	return db.Rollups(t, "edge")
}

func compareRollups(t *testing.T, got, want map[rollupKey]map[string]float64) {
	t.Helper()
	testenv.CompareRollups(t, got, want)
}

// scrapeMetric returns the sum of the samples of metric name on the
// gateway's /metrics, of those whose labels contain sel when sel is not
// empty, and whether there was any.
func scrapeMetric(g *gateway, name, sel string) (sum float64, found bool, err error) {
	resp, err := http.Get(g.metrics + "/metrics")
	if err != nil {
		return 0, false, fmt.Errorf("GET %s/metrics: %w", g.metrics, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') || (sel != "" && !strings.Contains(rest, sel)) {
			continue
		}
		f := strings.Fields(rest)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, false, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum, found = sum+v, true
	}
	return sum, found, sc.Err()
}
