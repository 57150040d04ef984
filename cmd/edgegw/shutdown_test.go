package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testenv"
)

// shutdownConfig is a gateway config with windows of one second whose
// batches stay open up to interval.
func shutdownConfig(dir, broker, influx string, metricsPort int, interval, shutdownTimeout time.Duration) string {
	return fmt.Sprintf(`
gateway:
  id: shutdown
  data_dir: %s
  shutdown_timeout: %s
mqtt:
  broker: %s
batch:
  interval: %s
  max_readings: 100000
window:
  size: 1s
  slide: 1s
  allowed_lateness: 1s
uplink:
  flush_interval: 100ms
  influx:
    url: %s
    database: edge
metrics:
  listen: 127.0.0.1:%d
`, filepath.Join(dir, "data"), shutdownTimeout, broker, interval, influx, metricsPort)
}

// TestSIGTERMCommitsAcknowledgesAndFlushes stops a gateway whose open batch
// holds acknowledged-to-nobody messages and whose outbox holds rollups, and
// checks what a user would: exit 0 within shutdown_timeout, the broker keeps
// nothing for the gateway's session (a restarted gateway receives no old
// message), and InfluxDB ends up with exactly the truth's rollups.
func TestSIGTERMCommitsAcknowledgesAndFlushes(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: skipped with -short")
	}
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	influx := testenv.Influx(t)
	influx.CreateDatabase(t, "edge")
	dir := t.TempDir()
	const shutdownTimeout = 5 * time.Second
	// Batches stay open 5s, so that SIGTERM finds readings not committed.
	cfg := shutdownConfig(dir, broker.URL(), influx.URL(), testenv.FreePort(t), 5*time.Second, shutdownTimeout)
	gw := startGateway(t, dir, cfg)

	truth1 := publishTruth(t, dir, broker, 1000, "11")
	waitFor(t, 10*time.Second, "the gateway to receive and commit every message", func() bool {
		return gatewayMetric(t, gw, "edgegw_mqtt_messages_received_total") == 1000 &&
			gatewayMetric(t, gw, "edgegw_unacked_messages") == 0
	})
	// Too few to fill the broker's flow window: they wait in the open batch.
	truth2 := publishTruth(t, dir, broker, 5, "13")
	waitFor(t, 5*time.Second, "the gateway to receive 5 more messages", func() bool {
		return gatewayMetric(t, gw, "edgegw_mqtt_messages_received_total") == 1005
	})
	if n := gatewayMetric(t, gw, "edgegw_unacked_messages"); n != 5 {
		t.Fatalf("edgegw_unacked_messages = %v before SIGTERM; want the 5 messages waiting in the open batch (batch.interval 5s)", n)
	}

	took := gw.terminate(t, shutdownTimeout+5*time.Second)
	t.Logf("exit 0 %v after SIGTERM", took.Round(time.Millisecond))
	if log := gw.stderr.String(); strings.Contains(log, "rollups still wait for the upstream") {
		t.Errorf("rollups left in the outbox at shutdown with InfluxDB up:\n%s", log)
	}

	// The broker keeps nothing for the session: a new gateway on the same
	// client_id receives no message.
	gw = startGateway(t, dir, cfg)
	time.Sleep(2 * time.Second)
	if n := gatewayMetric(t, gw, "edgegw_mqtt_messages_received_total"); n != 0 {
		t.Errorf("after SIGTERM and restart the broker redelivered %v messages; want 0 (each was acknowledged at shutdown)", n)
	}
	want := expectedRollups(t, concatFiles(t, filepath.Join(dir, "truth.lp"), truth1, truth2), time.Second)
	waitRollups(t, influx, len(want), 15*time.Second)
	compareRollups(t, influxRollups(t, influx), want)
	gw.stop(t)
}

// TestSIGTERMWithUpstreamDown stops a gateway while InfluxDB is down: it
// exits 0 after about shutdown_timeout, its rollups stay in the outbox and
// the next start delivers them.
func TestSIGTERMWithUpstreamDown(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: skipped with -short")
	}
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	influx := testenv.Influx(t)
	influx.CreateDatabase(t, "edge")
	influx.Stop()
	dir := t.TempDir()
	const shutdownTimeout = 2 * time.Second
	cfg := shutdownConfig(dir, broker.URL(), influx.URL(), testenv.FreePort(t), 100*time.Millisecond, shutdownTimeout)
	gw := startGateway(t, dir, cfg)

	const messages = 610
	truth := publishTruth(t, dir, broker, messages, "12")
	waitFor(t, 10*time.Second, "the gateway to receive every message", func() bool {
		return gatewayMetric(t, gw, "edgegw_mqtt_messages_received_total") == messages
	})
	waitFor(t, 10*time.Second, "closed windows in the outbox", func() bool {
		return gatewayMetric(t, gw, "edgegw_outbox_rollups") > 0
	})

	took := gw.terminate(t, shutdownTimeout+5*time.Second)
	if took < shutdownTimeout {
		t.Errorf("gateway exited %v after SIGTERM with InfluxDB down; want it to try for shutdown_timeout %v", took, shutdownTimeout)
	}
	if log := gw.stderr.String(); !strings.Contains(log, "rollups still wait for the upstream") {
		t.Errorf("log does not say rollups wait in the outbox:\n%s", log)
	}
	t.Logf("exit 0 %v after SIGTERM with InfluxDB down", took.Round(time.Millisecond))

	influx.Start()
	gw = startGateway(t, dir, cfg)
	if log := gw.stderr.String(); !strings.Contains(log, "gateway starting") || strings.Contains(log, " outbox_rollups=0 ") {
		t.Errorf("the next start finds no rollups in the outbox; want those left at shutdown:\n%s", log)
	}
	want := expectedRollups(t, truth, time.Second)
	waitRollups(t, influx, len(want), 15*time.Second)
	compareRollups(t, influxRollups(t, influx), want)
	if n := gatewayMetric(t, gw, "edgegw_mqtt_messages_received_total"); n != 0 {
		t.Errorf("after SIGTERM and restart the broker redelivered %v messages; want 0", n)
	}
	gw.stop(t)
}

// publishTruth publishes n json messages at 500/s, one reading each and
// none late, and returns the truth file.
func publishTruth(t *testing.T, dir string, broker *testenv.Broker, n int, seed string) string {
	t.Helper()
	truth := filepath.Join(dir, "truth-"+seed+".lp")
	_, errOut, code := edgegw(t, nil, "simulate", "--broker", broker.URL(), "--devices", "10", "--sites", "2",
		"--rate", "500", "--count", strconv.Itoa(n), "--format", "json", "--seed", seed,
		"--out-of-order", "0.05", "--lateness", "1s", "--truth", truth)
	if code != 0 {
		t.Fatalf("simulate: exit %d\n%s", code, errOut)
	}
	return truth
}

// terminate sends SIGTERM and expects exit 0 within limit; it returns how
// long the gateway took.
func (g *gateway) terminate(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-g.exited:
	case <-time.After(limit):
		t.Fatalf("gateway still runs %v after SIGTERM\n%s", limit, g.stderr.String())
	}
	took := time.Since(start)
	if code := g.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("gateway exit code after SIGTERM = %d, want 0\n%s", code, g.stderr.String())
	}
	return took
}

// waitRollups waits up to timeout for InfluxDB to hold n points, then a
// moment more so that nothing extra goes unseen.
func waitRollups(t *testing.T, influx *testenv.InfluxDB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(influxRollups(t, influx)) < n && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
}

// gatewayMetric returns the sum of the samples of metric name on the
// gateway's /metrics; it fails the test when there are none.
func gatewayMetric(t *testing.T, g *gateway, name string) float64 {
	t.Helper()
	v, found, err := scrapeMetric(g, name, "")
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("%s/metrics has no %s", g.metrics, name)
	}
	return v
}
