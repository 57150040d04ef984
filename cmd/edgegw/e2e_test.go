package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testenv"
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
