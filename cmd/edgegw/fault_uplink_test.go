package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testenv"
	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// uplinkConfig is a gateway config with 1 s windows closing 500 ms after
// their end, writing to influxURL.
func uplinkConfig(dir, broker, influxURL string, metricsPort int) string {
	return fmt.Sprintf(`
gateway:
  id: uplink-faults
  data_dir: %s
  shutdown_timeout: 2s
mqtt:
  broker: %s
window:
  size: 1s
  slide: 1s
  allowed_lateness: 500ms
metrics:
  listen: 127.0.0.1:%d
`, filepath.Join(dir, "data"), broker, metricsPort) + fmt.Sprintf(`
uplink:
  flush_interval: 200ms
  influx:
    url: %s
    database: edge
`, influxURL)
}

// uplinkMetric returns the sum over its labels of metric name (with the
// label selector sel, e.g. `reason="network"`, when not empty) as the
// gateway's /metrics shows it.
func uplinkMetric(t *testing.T, g *gateway, name, sel string) float64 {
	t.Helper()
	v, _, err := scrapeMetric(g, name, sel)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// simRun is `edgegw simulate` running in the background.
type simRun struct {
	args   []string
	done   chan struct{} // closed when it exits
	err    error
	errOut lockedBuffer
}

// simulate starts `edgegw simulate` with args in the background.
func simulate(t *testing.T, args ...string) *simRun {
	t.Helper()
	s := &simRun{args: args, done: make(chan struct{})}
	cmd := exec.Command(binary, append([]string{"simulate"}, args...)...)
	cmd.Stderr = &s.errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-s.done })
	return s
}

// wait returns once the simulator has sent everything (at most 60 s).
func (s *simRun) wait(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
		if s.err != nil {
			t.Fatalf("simulate %s: %v\n%s", strings.Join(s.args, " "), s.err, s.errOut.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("simulate %s: still running after 60s", strings.Join(s.args, " "))
	}
}

// waitInflux waits until InfluxDB holds at least want points of sensors,
// then a little longer, and returns them.
func waitInflux(t *testing.T, influx *testenv.InfluxDB, want int, timeout time.Duration) map[rollupKey]map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := influxRollups(t, influx)
		if len(got) >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("InfluxDB holds %d points after %v, want %d", len(got), timeout, want)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // nothing extra arrives late
	return influxRollups(t, influx)
}

// TestInfluxOutage stops influxd for 11 s while the simulator publishes
// through the gateway: the rollups wait in the outbox and, once influxd is
// back, InfluxDB holds exactly the rollups of the truth file.
func TestInfluxOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: skipped with -short")
	}
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	influx := testenv.Influx(t)
	influx.CreateDatabase(t, "edge")
	dir := t.TempDir()
	gw := startGateway(t, dir, uplinkConfig(dir, broker.URL(), influx.URL(), testenv.FreePort(t)))

	truth := filepath.Join(dir, "truth.lp")
	sim := simulate(t, "--broker", broker.URL(), "--devices", "20", "--sites", "2",
		"--rate", "400", "--count", "6000", "--format", "json", "--seed", "11",
		"--out-of-order", "0.05", "--late", "0.01", "--duplicates", "0.05", "--lateness", "500ms", "--truth", truth)

	time.Sleep(2 * time.Second)
	influx.Stop()
	down := time.Now()
	waitFor(t, 8*time.Second, "rollups to wait in the outbox while influxd is down", func() bool {
		return uplinkMetric(t, gw, "edgegw_outbox_rollups", "") > 50
	})
	if n := uplinkMetric(t, gw, "edgegw_uplink_write_errors_total", `reason="network"`); n == 0 {
		t.Errorf("edgegw_uplink_write_errors_total{reason=network} = 0 while influxd is down")
	}
	time.Sleep(11*time.Second - time.Since(down))
	influx.Start()
	t.Logf("influxd was down for %v", time.Since(down).Round(time.Millisecond))
	sim.wait(t)

	want := expectedRollups(t, truth, time.Second)
	// The uplink retries with a backoff of up to 30 s.
	got := waitInflux(t, influx, len(want), 45*time.Second)
	compareRollups(t, got, want)
	if n := uplinkMetric(t, gw, "edgegw_mqtt_messages_received_total", ""); n != 6000 {
		t.Errorf("edgegw_mqtt_messages_received_total = %v, want all 6000 published", n)
	}
	if !strings.Contains(gw.stderr.String(), "upstream writes recovered") {
		t.Errorf("the gateway did not log the recovery:\n%s", gw.stderr.String())
	}
	gw.stop(t)
}

// TestInfluxRefusesLines has InfluxDB refuse part of the rollups with a
// field type conflict (400 "partial write"): another writer made
// temperature_count a float in measurement "bad". The rollups of "bad" that
// carry temperature_count go to the dead letters, exactly those; the other
// rollups, of "sensors" and of "bad", are written; nothing stalls. Then
// `edgegw state inspect --dead-letters` prints exactly the refused rollups.
func TestInfluxRefusesLines(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: skipped with -short")
	}
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	influx := testenv.Influx(t)
	influx.CreateDatabase(t, "edge")
	conflict := time.Now().Add(-time.Hour).UnixNano()
	influxWrite(t, influx, fmt.Sprintf("bad temperature_count=0.5 %d", conflict))

	dir := t.TempDir()
	cfg := strings.Replace(uplinkConfig(dir, broker.URL(), influx.URL(), testenv.FreePort(t)), "  broker: "+broker.URL()+"\n",
		"  broker: "+broker.URL()+`
  subscriptions:
    - topic: "sensors/{site}/{device}/{field}"
      measurement: sensors
    - topic: "bad/{site}/{device}/{field}"
      measurement: bad
`, 1)
	gw := startGateway(t, dir, cfg)

	truth, badTruth := filepath.Join(dir, "truth.lp"), filepath.Join(dir, "bad.lp")
	sim1 := simulate(t, "--broker", broker.URL(), "--devices", "20", "--sites", "2", "--rate", "600", "--count", "3000",
		"--format", "json", "--seed", "21", "--duplicates", "0.05", "--truth", truth)
	sim2 := simulate(t, "--broker", broker.URL(), "--devices", "10", "--sites", "2", "--rate", "300", "--count", "1500",
		"--format", "json", "--seed", "22", "--topic-prefix", "bad", "--truth", badTruth)
	sim1.wait(t)
	sim2.wait(t)

	want := expectedRollups(t, truth, time.Second)
	refused := map[rollupKey]map[string]float64{} // the rollups of bad with temperature_count
	written := map[rollupKey]map[string]float64{}
	for k, f := range expectedRollups(t, badTruth, time.Second) {
		if _, ok := f["temperature_count"]; ok {
			refused[k] = f
		} else {
			written[k] = f
		}
	}
	if len(refused) == 0 {
		t.Fatal("no rollup of bad would conflict")
	}
	got := waitInflux(t, influx, len(want), 20*time.Second)
	compareRollups(t, got, want)
	waitFor(t, 10*time.Second, "every refused rollup counted", func() bool {
		return uplinkMetric(t, gw, "edgegw_rollups_dead_letter_total", "") >= float64(len(refused))
	})
	if n := uplinkMetric(t, gw, "edgegw_rollups_dead_letter_total", ""); n != float64(len(refused)) {
		t.Errorf("edgegw_rollups_dead_letter_total = %v, want %d", n, len(refused))
	}
	if n := uplinkMetric(t, gw, "edgegw_outbox_rollups", ""); n != 0 {
		t.Errorf("edgegw_outbox_rollups = %v, want 0: the refused rollups must not block the outbox", n)
	}
	// "bad" in InfluxDB: the other writer's point and the rollups without
	// temperature fields.
	rows := influx.Query(t, "edge", "SELECT * FROM bad GROUP BY *")
	if len(rows) != len(written)+1 {
		t.Errorf("InfluxDB holds %d points of bad, want %d (the rollups without temperature, and the conflicting point)", len(rows), len(written)+1)
	}
	log := gw.stderr.String()
	if n := strings.Count(log, "upstream refused rollups"); n < 1 || n > 3 {
		t.Errorf("logged the refusal %d times, want once per reason and 10 s:\n%s", n, log)
	}
	gw.stop(t)

	// The dead letters, as line protocol: exactly the refused rollups.
	out, errOut, code := edgegw(t, nil, "state", "inspect", "-c", filepath.Join(dir, "edgegw.yaml"), "--dead-letters")
	if code != 0 {
		t.Fatalf("state inspect --dead-letters: exit %d\n%s", code, errOut)
	}
	dead := map[rollupKey]map[string]float64{}
	comments := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "# refused ") {
			comments++
			if !strings.Contains(line, "field type conflict") {
				t.Errorf("dead letter comment %q does not give the reason", line)
			}
			continue
		}
		m, k, f := parseLine(t, line)
		if m != "bad" {
			t.Errorf("dead letter %q: measurement %q, want bad", line, m)
		}
		dead[k] = f
	}
	if comments != len(refused) {
		t.Errorf("%d reasons printed, want %d", comments, len(refused))
	}
	compareRollups(t, dead, refused)

	out, errOut, code = edgegw(t, nil, "state", "inspect", "-c", filepath.Join(dir, "edgegw.yaml"))
	if code != 0 || !regexp.MustCompile(fmt.Sprintf(`(?m)^dead letters: +%d, \d+ bytes`, len(refused))).MatchString(out) ||
		!regexp.MustCompile(`(?m)^outbox: +0 rollups, 0 bytes`).MatchString(out) {
		t.Errorf("state inspect: exit %d, want %d dead letters and an empty outbox:\n%s%s", code, len(refused), out, errOut)
	}
}

// influxWrite writes line protocol to database edge.
func influxWrite(t *testing.T, influx *testenv.InfluxDB, lp string) {
	t.Helper()
	resp, err := http.Post(influx.URL()+"/write?db=edge", "text/plain", strings.NewReader(lp))
	if err != nil {
		t.Fatalf("write %q: %v", lp, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("write %q: %s", lp, resp.Status)
	}
}

// parseLine reads one line of line protocol as influxRollups gives points.
func parseLine(t *testing.T, line string) (string, rollupKey, map[string]float64) {
	t.Helper()
	dec := lineprotocol.NewDecoderWithBytes([]byte(line + "\n"))
	if !dec.Next() {
		t.Fatalf("line %q: no point", line)
	}
	m, err := dec.Measurement()
	if err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	measurement := string(m)
	var tags []string
	for {
		k, v, err := dec.NextTag()
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if k == nil {
			break
		}
		tags = append(tags, string(k)+"="+string(v))
	}
	sort.Strings(tags)
	fields := map[string]float64{}
	for {
		k, v, err := dec.NextField()
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if k == nil {
			break
		}
		switch v.Kind() {
		case lineprotocol.Int:
			fields[string(k)] = float64(v.IntV())
		case lineprotocol.Float:
			fields[string(k)] = v.FloatV()
		default:
			t.Fatalf("line %q: field %s of kind %v", line, k, v.Kind())
		}
	}
	ts, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
	if err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return measurement, rollupKey{Series: strings.Join(tags, ","), Start: ts.UnixNano()}, fields
}

// rss returns the resident set size (VmRSS) of process pid in kB.
func rss(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read the gateway's memory: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// TestOutboxOverflow runs the gateway with its upstream unreachable and
// the smallest outbox the config allows (1 MiB), fed by 1000 devices into
// 250 ms windows: the oldest rollups are dropped, counted and logged, the
// gateway keeps acknowledging (every message published reaches it, which
// Mosquitto's window of 20 unacknowledged messages allows only while acks
// flow), and its memory stays flat.
func TestOutboxOverflow(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: skipped with -short")
	}
	// A queue deep enough that a gateway slowed down by a loaded machine
	// loses nothing at the broker: a gateway that stopped acknowledging
	// would still get only Mosquitto's 20 in-flight messages.
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{MaxQueued: 100000})
	dir := t.TempDir()
	closed := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t)) // nothing listens there
	cfg := uplinkConfig(dir, broker.URL(), closed, testenv.FreePort(t))
	cfg = strings.Replace(cfg, "  size: 1s\n  slide: 1s\n  allowed_lateness: 500ms\n", "  size: 250ms\n  slide: 250ms\n  allowed_lateness: 250ms\n", 1)
	cfg = strings.Replace(cfg, "uplink:\n", "uplink:\n  max_outbox_bytes: 1048576\n", 1)
	gw := startGateway(t, dir, cfg)

	const sent = 16000
	sim := simulate(t, "--broker", broker.URL(), "--devices", "1000", "--sites", "10", "--rate", "2000",
		"--count", strconv.Itoa(sent), "--format", "json", "--seed", "31")
	var samples []int
	var maxUnacked float64
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
sampling:
	for {
		select {
		case <-sim.done:
			break sampling
		case <-tick.C:
			samples = append(samples, rss(t, gw.cmd.Process.Pid))
			maxUnacked = max(maxUnacked, uplinkMetric(t, gw, "edgegw_unacked_messages", ""))
		}
	}
	sim.wait(t)
	var received float64
	deadline := time.Now().Add(20 * time.Second)
	for received = uplinkMetric(t, gw, "edgegw_mqtt_messages_received_total", ""); received != sent && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		received = uplinkMetric(t, gw, "edgegw_mqtt_messages_received_total", "")
	}
	if received != sent {
		t.Fatalf("edgegw_mqtt_messages_received_total = %v 20 s after the simulator ended, want all %d published: the gateway stopped acknowledging", received, sent)
	}
	dropped := uplinkMetric(t, gw, "edgegw_outbox_dropped_total", "")
	bytes := uplinkMetric(t, gw, "edgegw_outbox_bytes", "")
	rollups := uplinkMetric(t, gw, "edgegw_outbox_rollups", "")
	t.Logf("outbox: %v rollups, %v bytes, %v dropped; most unacknowledged seen: %v", rollups, bytes, dropped, maxUnacked)
	if dropped == 0 {
		t.Errorf("edgegw_outbox_dropped_total = 0, want rollups dropped past max_outbox_bytes")
	}
	if bytes > 1<<20 || bytes < 1<<19 {
		t.Errorf("edgegw_outbox_bytes = %v, want the outbox full up to 1 MiB", bytes)
	}
	if !strings.Contains(gw.stderr.String(), "oldest rollups dropped") {
		t.Errorf("the drops are not logged:\n%s", gw.stderr.String())
	}
	if len(samples) < 10 {
		t.Fatalf("%d memory samples, want 10 or more", len(samples))
	}
	half := len(samples) / 2
	first, second := slices.Max(samples[:half]), slices.Max(samples[half:])
	t.Logf("VmRSS: max %d kB in the first half of the run, %d kB in the second (%d samples)", first, second, len(samples))
	if second > first+first/4+8<<10 {
		t.Errorf("VmRSS grew from %d kB to %d kB while the outbox was full, want it flat", first, second)
	}
	gw.stop(t)
}

// TestStateInspect runs the gateway with its upstream unreachable, checks
// that `edgegw state inspect` refuses while it runs, stops it, and checks
// that what inspect prints matches what the gateway reports when it starts
// again on the same data_dir.
func TestStateInspect(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: skipped with -short")
	}
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	dir := t.TempDir()
	closed := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
	cfg := uplinkConfig(dir, broker.URL(), closed, testenv.FreePort(t))
	cfg = strings.Replace(cfg, "  size: 1s\n  slide: 1s\n", "  size: 2s\n  slide: 2s\n", 1)
	cfgPath := filepath.Join(dir, "edgegw.yaml")
	gw := startGateway(t, dir, cfg)

	truth := filepath.Join(dir, "truth.lp")
	_, errOut, code := edgegw(t, nil, "simulate", "--broker", broker.URL(), "--devices", "10", "--sites", "2",
		"--rate", "1000", "--count", "3000", "--format", "json", "--seed", "41", "--truth", truth)
	if code != 0 {
		t.Fatalf("simulate: exit %d\n%s", code, errOut)
	}
	waitFor(t, 10*time.Second, "every message received", func() bool {
		return uplinkMetric(t, gw, "edgegw_mqtt_messages_received_total", "") == 3000
	})
	waitFor(t, 10*time.Second, "a rollup in the outbox", func() bool {
		return uplinkMetric(t, gw, "edgegw_outbox_rollups", "") > 0
	})

	start := time.Now()
	_, errOut, code = edgegw(t, nil, "state", "inspect", "-c", cfgPath)
	want := fmt.Sprintf("data_dir %s is in use by a running edgegw; stop it first", filepath.Join(dir, "data"))
	if code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("state inspect while the gateway runs: exit %d, stderr %q; want exit 1 and %q", code, errOut, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("state inspect took %v to refuse, want at once", d)
	}
	gw.stop(t)

	out, errOut, code := edgegw(t, nil, "state", "inspect", "-c", cfgPath)
	if code != 0 {
		t.Fatalf("state inspect: exit %d\n%s", code, errOut)
	}
	t.Logf("state inspect:\n%s", out)
	field := func(re string) []string {
		t.Helper()
		m := regexp.MustCompile(`(?m)` + re).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("state inspect prints no %q:\n%s", re, out)
		}
		return m[1:]
	}
	panes := field(`^open panes: +(\d+) in (\d+) series$`)
	outbox := field(`^outbox: +(\d+) rollups, (\d+) bytes$`)
	field(`^dead letters: +0, 0 bytes$`)
	field(`^window: +size 2s, slide 2s$`)
	wm, _ := strconv.ParseInt(field(`^watermark: +\S+ \((-?\d+)\), as of the last commit`)[0], 10, 64)

	// The watermark is at least the latest event time published minus the
	// lateness, and not ahead of the wall clock.
	var latest int64
	series := map[string]bool{}
	for _, line := range readLines(t, truth) {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		_, k, _ := parseLine(t, line)
		latest = max(latest, k.Start)
		series[k.Series] = true
	}
	if wm < latest-int64(500*time.Millisecond) || wm > time.Now().UnixNano() {
		t.Errorf("watermark %d, want between the latest event time %d minus 500ms and now", wm, latest)
	}
	// Each series listed is one the simulator published.
	listed := 0
	for _, line := range strings.Split(out, "\n") {
		if k, ok := strings.CutPrefix(line, "sensors,"); ok {
			listed++
			tags := strings.Fields(k)[0]
			if !series[tags] {
				t.Errorf("state inspect lists series %q, not published", tags)
			}
		}
	}
	if strconv.Itoa(listed) != panes[1] {
		t.Errorf("state inspect lists %d series, says %s", listed, panes[1])
	}
	if out, _, code := edgegw(t, nil, "state", "inspect", "--data-dir", filepath.Join(dir, "data"), "--dead-letters"); code != 0 || out != "" {
		t.Errorf("state inspect --data-dir --dead-letters: exit %d, output %q; want exit 0, nothing", code, out)
	}

	// The gateway, started again, finds the same.
	gw = startGateway(t, dir, cfg)
	m := regexp.MustCompile(`open_panes=(\d+) outbox_rollups=(\d+) outbox_bytes=(\d+)`).FindStringSubmatch(gw.stderr.String())
	if m == nil {
		t.Fatalf("no open_panes, outbox_rollups and outbox_bytes in the gateway's start log:\n%s", gw.stderr.String())
	}
	if m[1] != panes[0] || m[2] != outbox[0] || m[3] != outbox[1] {
		t.Errorf("state inspect says %s panes, outbox %s rollups of %s bytes; the gateway at start says %s, %s, %s",
			panes[0], outbox[0], outbox[1], m[1], m[2], m[3])
	}
	if panes[0] == "0" || outbox[0] == "0" {
		t.Errorf("state inspect says %s panes and %s rollups, want some of each for this test to mean anything", panes[0], outbox[0])
	}
	gw.stop(t)
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(b), "\n")
}
