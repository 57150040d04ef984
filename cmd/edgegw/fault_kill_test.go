package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testenv"
)

// The fault tests use windows of 2 s closing 3 s after their end, while the
// simulator holds its out-of-order readings back for at most 0.5 s (its
// --lateness 1s). The watermark does not advance while the gateway is down
// (TestRestartAfterLongDowntime), so outages longer than the lateness lose
// nothing either.
const (
	faultSize     = 2 * time.Second
	faultLateness = 3 * time.Second
	simLateness   = "1s"
)

// faultBroker starts a Mosquitto that keeps every message for the gateway's
// session while it is down: the stock max_queued_messages (1000) drops the
// rest silently, which no gateway could make up for.
func faultBroker(t *testing.T) *testenv.Broker {
	return testenv.Mosquitto(t, testenv.MosquittoOptions{MaxQueued: 1_000_000})
}

// faultSetup starts what a fault test runs against: a Mosquitto that keeps
// the gateway's messages (faultBroker), an InfluxDB with database edge, and
// the gateway config (faultConfig) in a fresh folder.
func faultSetup(t *testing.T, id, subscription string) (broker *testenv.Broker, influx *testenv.InfluxDB, dir, cfg string) {
	t.Helper()
	broker = faultBroker(t)
	influx = testenv.Influx(t)
	influx.CreateDatabase(t, "edge")
	dir = t.TempDir()
	cfg = faultConfig(dir, id, broker.URL(), influx.URL(), testenv.FreePort(t), subscription)
	return broker, influx, dir, cfg
}

// simulateJSON starts the simulator publishing count json readings with
// out-of-order, late and duplicate ones, at 1000 messages/s, with its truth
// file at truth.
func simulateJSON(t *testing.T, broker *testenv.Broker, count int, seed, truth string) *bgSimulation {
	t.Helper()
	return startSimulation(t, "--broker", broker.URL(), "--devices", "20", "--sites", "2",
		"--rate", "1000", "--count", strconv.Itoa(count), "--format", "json", "--seed", seed,
		"--out-of-order", "0.05", "--late", "0.01", "--duplicates", "0.05", "--lateness", simLateness,
		"--truth", truth)
}

// faultConfig is the gateway config of the fault tests; subscription, when
// not empty, replaces the default json one.
func faultConfig(dir, id, broker, influx string, metricsPort int, subscription string) string {
	return fmt.Sprintf(`
gateway:
  id: %s
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
    database: edge
metrics:
  listen: 127.0.0.1:%d
`, id, filepath.Join(dir, "data"), broker, subscription, faultSize, faultSize, faultLateness, influx, metricsPort)
}

// bgSimulation is `edgegw simulate` running in the background.
type bgSimulation struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
}

// startSimulation starts `edgegw simulate args...`; it is killed when the
// test ends.
func startSimulation(t *testing.T, args ...string) *bgSimulation {
	t.Helper()
	s := &bgSimulation{cmd: exec.Command(binary, append([]string{"simulate"}, args...)...), stderr: &lockedBuffer{}, done: make(chan struct{})}
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start edgegw simulate: %v", err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.cmd.Process.Kill(); <-s.done })
	return s
}

func (s *bgSimulation) running() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// wait waits up to d for the simulator to exit and fails the test unless it
// exited 0.
func (s *bgSimulation) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(d):
		t.Fatalf("edgegw simulate still running after %v:\n%s", d, s.stderr.String())
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("edgegw simulate: exit %d\n%s", code, s.stderr.String())
	}
}

// scrapeGateway returns the value of metric name at the gateway's /metrics,
// or -1 when it cannot be read.
func scrapeGateway(g *gateway, name string) float64 {
	v, found, err := scrapeMetric(g, name, "")
	if err != nil || !found {
		return -1
	}
	return v
}

// killGateway sends SIGKILL and waits for the process to end.
func killGateway(g *gateway) {
	g.cmd.Process.Kill()
	<-g.exited
}

// waitAllRollups waits for InfluxDB to hold as many points as want (at most
// 30 s after the last window closed) and compares.
func waitAllRollups(t *testing.T, influx *testenv.InfluxDB, want map[rollupKey]map[string]float64) {
	t.Helper()
	waitRollups(t, influx, len(want), faultSize+faultLateness+30*time.Second)
	compareRollups(t, influxRollups(t, influx), want)
}

// killRestarts kills the gateway with SIGKILL at random moments (seeded) while
// sim runs, restarting it on the same data_dir each time, and returns the
// gateway running at the end and the number of kills made. Before each kill
// it adds the resends the dying gateway recognised to *resends.
func killRestarts(t *testing.T, gw *gateway, dir, cfg string, sim *bgSimulation, seed uint64, maxKills int, resends *float64) (*gateway, int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	kills := 0
	for kills < maxKills {
		time.Sleep(700*time.Millisecond + time.Duration(rng.Float64()*float64(800*time.Millisecond)))
		if !sim.running() {
			break
		}
		n := max(scrapeGateway(gw, "edgegw_mqtt_resends_skipped_total"), 0)
		*resends += n
		killGateway(gw)
		kills++
		start := time.Now()
		gw = startGateway(t, dir, cfg)
		t.Logf("kill %d: the gateway had recognised %v resends; restarted and ready in %v", kills, n, time.Since(start).Round(time.Millisecond))
	}
	return gw, kills
}

// TestKillNineJSON kills the gateway with SIGKILL six times while the
// simulator publishes json readings with event times (out of order, late
// ones, exact duplicates), restarting it each time on the same data_dir: at
// the end InfluxDB must hold exactly the rollups computed from the truth
// file, nothing lost and nothing counted twice.
func TestKillNineJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: skipped with -short")
	}
	broker, influx, dir, cfg := faultSetup(t, "kill-json", "")
	gw := startGateway(t, dir, cfg)

	truth := filepath.Join(dir, "truth.lp")
	sim := simulateJSON(t, broker, 11000, "7", truth)
	var resends float64
	gw, kills := killRestarts(t, gw, dir, cfg, sim, 1, 6, &resends)
	if kills < 5 {
		t.Errorf("%d kills while the simulator ran; want at least 5", kills)
	}
	sim.wait(t, 60*time.Second)

	want := expectedRollups(t, truth, faultSize)
	if len(want) == 0 {
		t.Fatal("the truth file gives no rollups")
	}
	waitAllRollups(t, influx, want)
	t.Logf("%d kills; resends recognised as committed: %v", kills, resends)
	gw.stop(t)
}

// TestKillNineArrivalTime is TestKillNineJSON with bare values, which the
// gateway stamps with their arrival time: the window engine cannot recognise
// a redelivery, only the packets committed with each batch can. Windows
// depend on arrival, so the check is per series and field: the counts over
// all points add up to the readings published, and so do the sums.
func TestKillNineArrivalTime(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: skipped with -short")
	}
	broker, influx, dir, cfg := faultSetup(t, "kill-value", `  subscriptions:
    - topic: "sensors/{site}/{device}/{field}"
      format: value
      measurement: sensors`)
	gw := startGateway(t, dir, cfg)

	truth := filepath.Join(dir, "truth.lp")
	// No duplicates: a repeated bare value is a new reading to the gateway.
	sim := startSimulation(t, "--broker", broker.URL(), "--devices", "20", "--sites", "2",
		"--rate", "2000", "--count", "20000", "--format", "value", "--seed", "8",
		"--out-of-order", "0.05", "--lateness", simLateness, "--truth", truth)
	var resends float64
	gw, kills := killRestarts(t, gw, dir, cfg, sim, 2, 6, &resends)
	if kills < 5 {
		t.Errorf("%d kills while the simulator ran; want at least 5", kills)
	}
	sim.wait(t, 60*time.Second)

	want := seriesTotals(expectedRollups(t, truth, faultSize))
	var got map[string]float64
	deadline := time.Now().Add(faultSize + faultLateness + 30*time.Second)
	for {
		got = seriesTotals(influxRollups(t, influx))
		if sumCounts(got) >= sumCounts(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	got = seriesTotals(influxRollups(t, influx))
	compareTotals(t, got, want)
	t.Logf("%d kills; %v readings counted, %v published; resends recognised as committed: %v", kills, sumCounts(got), sumCounts(want), resends)
	gw.stop(t)
}

// seriesTotals adds up the _count and _sum fields of every point per series
// and field: "device=dev1,site=site1 temperature_count" and so on.
func seriesTotals(points map[rollupKey]map[string]float64) map[string]float64 {
	tot := map[string]float64{}
	for key, fields := range points {
		for name, v := range fields {
			if strings.HasSuffix(name, "_count") || strings.HasSuffix(name, "_sum") {
				tot[key.Series+" "+name] += v
			}
		}
	}
	return tot
}

func sumCounts(tot map[string]float64) float64 {
	n := 0.0
	for k, v := range tot {
		if strings.HasSuffix(k, "_count") {
			n += v
		}
	}
	return n
}

// mergeFiles writes the concatenation of srcs to dst.
func mergeFiles(t *testing.T, dst string, srcs ...string) {
	t.Helper()
	var all []byte
	for _, src := range srcs {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if err := os.WriteFile(dst, all, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRestartAfterLongDowntime stops the gateway (SIGKILL) for longer than
// window size + allowed_lateness while the simulator goes on publishing: the
// readings the broker held meanwhile must all count once the gateway is back,
// since the event clock resumes where it stood instead of jumping by the
// downtime.
func TestRestartAfterLongDowntime(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: skipped with -short")
	}
	broker, influx, dir, cfg := faultSetup(t, "downtime", "")
	gw := startGateway(t, dir, cfg)

	truth := filepath.Join(dir, "truth.lp")
	sim := simulateJSON(t, broker, 9000, "11", truth)
	time.Sleep(2 * time.Second)
	killGateway(gw)
	time.Sleep(faultSize + faultLateness + 2*time.Second)
	gw = startGateway(t, dir, cfg)
	sim.wait(t, 60*time.Second)

	want := expectedRollups(t, truth, faultSize)
	waitAllRollups(t, influx, want)
	if late := scrapeGateway(gw, "edgegw_readings_late_total"); late > 200 {
		t.Errorf("edgegw_readings_late_total after the restart = %v; the held readings were taken for late", late)
	}
	gw.stop(t)
}
