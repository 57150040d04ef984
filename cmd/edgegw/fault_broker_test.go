package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testenv"
)

// TestBrokerRestart restarts Mosquitto (persistence on) while the gateway is
// in the middle of a backlog of QoS 1 messages: some are in flight, some
// committed and not yet acknowledged, the rest queued. The gateway must
// reconnect, resubscribe and count every message published before and after
// the restart once: InfluxDB must hold exactly the rollups of the two
// simulator runs' truth files. (The simulator does not reconnect, so it runs
// once before the restart and once after, with different seeds.)
func TestBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: skipped with -short")
	}
	broker, influx, dir, cfg := faultSetup(t, "broker-restart", "")

	// The gateway's session exists at the broker, which keeps the first
	// run's messages for it while it is stopped: a backlog.
	gw := startGateway(t, dir, cfg)
	gw.stop(t)
	const backlog = 30000
	truth1 := filepath.Join(dir, "truth1.lp")
	simulateRun(t, broker, truth1, "21", backlog, 10000)

	gw = startGateway(t, dir, cfg)
	waitFor(t, 20*time.Second, "the gateway to take part of the backlog", func() bool {
		return scrapeGateway(gw, "edgegw_mqtt_messages_received_total") >= backlog/30
	})
	broker.Stop()
	received := scrapeGateway(gw, "edgegw_mqtt_messages_received_total")
	if received >= backlog {
		t.Fatalf("the gateway received the whole backlog (%v messages) before the broker stopped; want a restart in the middle of it", received)
	}
	waitFor(t, 10*time.Second, "/readyz to say not ready with the broker down", func() bool { return readyzCode(gw) == http.StatusServiceUnavailable })
	broker.Start()
	waitFor(t, 20*time.Second, "/readyz to say ready after the broker restarted", func() bool { return readyzCode(gw) == http.StatusOK })
	t.Logf("broker restarted after the gateway received %v of the %d messages queued", received, backlog)

	truth2 := filepath.Join(dir, "truth2.lp")
	simulateRun(t, broker, truth2, "22", 3000, 1000)

	truth := filepath.Join(dir, "truth.lp")
	mergeFiles(t, truth, truth1, truth2)
	want := expectedRollups(t, truth, faultSize)
	waitAllRollups(t, influx, want)
	if n := scrapeGateway(gw, "edgegw_mqtt_reconnects_total"); n < 1 {
		t.Errorf("edgegw_mqtt_reconnects_total = %v; want at least 1", n)
	}
	t.Logf("resends recognised as committed after the restart: %v", scrapeGateway(gw, "edgegw_mqtt_resends_skipped_total"))
	gw.stop(t)
}

// simulateRun publishes count json messages at rate with seed, out of order,
// late and duplicated as in TestEndToEnd, and writes truth.
func simulateRun(t *testing.T, broker *testenv.Broker, truth, seed string, count, rate int) {
	t.Helper()
	_, errOut, code := edgegw(t, nil, "simulate", "--broker", broker.URL(), "--devices", "20", "--sites", "2",
		"--rate", fmt.Sprint(rate), "--count", fmt.Sprint(count), "--format", "json", "--seed", seed,
		"--out-of-order", "0.05", "--late", "0.01", "--duplicates", "0.05", "--lateness", simLateness,
		"--truth", truth)
	if code != 0 {
		t.Fatalf("simulate --seed %s: exit %d\n%s", seed, code, errOut)
	}
}

// readyzCode returns the status of the gateway's /readyz, or 0 when it does
// not answer.
func readyzCode(g *gateway) int {
	resp, err := http.Get(g.metrics + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
