package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/edgegw/edgegw/internal/testenv"
	"github.com/edgegw/edgegw/simulator"
)

// The shape of the load and of the windows, fixed so that runs compare.
const (
	devices  = 1000 // × 2 fields (temperature, humidity)
	sites    = 10
	seed     = 42
	size     = 2 * time.Second // tumbling windows
	lateness = time.Second
	// defaultQueued is Mosquitto's max_queued_messages: large enough that
	// the broker never drops a message while the gateway is behind.
	defaultQueued = 1_000_000
	// pollEvery is how often the benchmark looks at the gateway's metrics
	// and, for the latency, at InfluxDB.
	pollEvery = 20 * time.Millisecond
)

// load is one publishing pattern.
type load struct {
	format string
	rate   float64 // messages per second; 0 = flat out
	count  int64   // messages
}

func (l load) name() string {
	r := "max"
	if l.rate > 0 {
		r = strconv.Itoa(int(l.rate))
	}
	return fmt.Sprintf("format=%s/rate=%s", l.format, r)
}

// result is what one gateway run measured.
type result struct {
	inflight int
	load     load
	readings int64
	rate     float64 // readings per second, first publish to last commit
	ceiling  float64 // messages per second a counting subscriber got, same broker and load
	cpuPerM  float64 // gateway CPU seconds per million readings
	rssMB    float64 // gateway peak RSS (VmHWM)
	p50, p99 time.Duration
	perBatch float64 // readings per commit while the messages flowed
	points   int     // points compared with the truth
}

// BenchmarkE2E measures the whole path at Mosquitto's default in-flight
// window (20) and at 1000. Run it with `make bench-e2e`. Environment: RUNS
// (default 1) repeats every measurement and reports medians; COUNT (default
// 60000) sets the messages of a flat-out run; INFLIGHT (default 20,1000)
// the windows; QUEUED (default 1000000) Mosquitto's max_queued_messages;
// FLAT_ONLY=1 skips the fixed rates; GW_BIN measures a given binary.
func BenchmarkE2E(b *testing.B) {
	runs := envInt(b, "RUNS", 1)
	count := int64(envInt(b, "COUNT", 60000))
	queued := envInt(b, "QUEUED", defaultQueued)
	loads := []load{
		{format: "json", rate: 0, count: count},
		{format: "value", rate: 0, count: count},
		{format: "json", rate: 2000, count: min(20000, count)}, // 10 s at most
		{format: "json", rate: 5000, count: min(50000, count)},
	}
	if os.Getenv("FLAT_ONLY") != "" {
		loads = loads[:2]
	}
	inflights := []int{20, 1000}
	if s := os.Getenv("INFLIGHT"); s != "" {
		inflights = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatalf("INFLIGHT=%q: want a comma-separated list of numbers such as 20,1000", s)
			}
			inflights = append(inflights, n)
		}
	}
	bin := buildGateway(b)
	influx := testenv.Influx(b)

	var all []result
	for _, inflight := range inflights {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			broker := testenv.Mosquitto(b, testenv.MosquittoOptions{MaxInflight: inflight, MaxQueued: queued})
			dropped := watchDropped(b, broker.URL())
			for _, ld := range loads {
				b.Run(ld.name(), func(b *testing.B) {
					var rs []result
					for range runs {
						r := result{inflight: inflight, load: ld}
						if ld.rate == 0 {
							r.ceiling = ceiling(b, broker.URL(), ld, dropped)
						}
						runGateway(b, bin, broker.URL(), influx, dropped, &r)
						rs = append(rs, r)
					}
					m := medians(rs)
					b.ReportMetric(m.rate, "readings/s")
					b.ReportMetric(m.cpuPerM, "cpu-s/Mreadings")
					b.ReportMetric(m.rssMB, "peak-rss-MB")
					b.ReportMetric(m.perBatch, "readings/commit")
					if m.ceiling > 0 {
						b.ReportMetric(m.ceiling, "ceiling-msg/s")
					}
					if m.p99 > 0 {
						b.ReportMetric(float64(m.p50.Milliseconds()), "p50-ms")
						b.ReportMetric(float64(m.p99.Milliseconds()), "p99-ms")
					}
					all = append(all, m)
				})
			}
			if n := dropped.final(b); n != 0 {
				b.Errorf("Mosquitto dropped %d QoS 1 messages ($SYS/broker/publish/messages/dropped); want 0 with max_queued_messages %d", n, queued)
			}
		})
	}
	printTable(os.Stdout, all, runs)
}

// runGateway runs the gateway as a process against broker and influx, runs
// the simulator with r.load, and fills r. It fails b unless InfluxDB holds
// exactly the rollups of what was published.
func runGateway(b *testing.B, bin, broker string, influx *testenv.InfluxDB, dropped *droppedWatch, r *result) {
	b.Helper()
	ld := r.load
	dir := b.TempDir()
	id := fmt.Sprintf("bench%d", time.Now().UnixNano())
	influx.CreateDatabase(b, id)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	cfg := fmt.Sprintf(`gateway:
  id: %s
  data_dir: %s
mqtt:
  broker: %s
  client_id: %s
  subscriptions:
    - topic: "sensors/{site}/{device}/{field}"
      format: %s
      measurement: sensors
window:
  size: %s
  slide: %s
  allowed_lateness: %s
uplink:
  influx:
    url: %s
    database: %s
metrics:
  listen: %s
log:
  level: warn
`, id, filepath.Join(dir, "data"), broker, id, ld.format, size, size, lateness, influx.URL(), id, metricsAddr)
	cfgPath := filepath.Join(dir, "edgegw.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	var stderr lockedBuffer
	cmd := exec.Command(bin, "run", "-c", cfgPath)
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start the gateway: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
			b.Logf("gateway log:\n%s", stderr.String())
		}
	}()
	metricsURL := "http://" + metricsAddr
	waitUntil(b, 15*time.Second, "the gateway's /readyz", func() bool {
		select {
		case <-exited:
			b.Fatalf("the gateway exited at start:\n%s", stderr.String())
		default:
		}
		resp, err := http.Get(metricsURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	pid := cmd.Process.Pid
	cpu0 := cpuSeconds(b, pid)
	batches0 := scrape(b, metricsURL)["edgegw_batches_committed_total"]

	// The latency poller records when each window's points become
	// readable; only at fixed rates, where event time follows wall time.
	var lat *latencyPoller
	start := time.Now()
	if ld.rate > 0 {
		lat = startLatencyPoller(influx, id, start)
	}
	truth := filepath.Join(dir, "truth.lp")
	tf, err := os.Create(truth)
	if err != nil {
		b.Fatal(err)
	}
	st, err := simulator.Run(context.Background(), simulator.Options{
		Broker: broker, Devices: devices, Sites: sites, Rate: ld.rate, Count: ld.count,
		Format: ld.format, QoS: 1, Seed: seed, Truth: tf,
	}, nil)
	tf.Close()
	if err != nil {
		b.Fatalf("simulator: %v", err)
	}
	// The run ends when the gateway has committed and acknowledged every
	// message published.
	var batches float64
	waitUntil(b, 5*time.Minute, "the gateway to commit every message", func() bool {
		dropped.check(b)
		m := scrape(b, metricsURL)
		batches = m["edgegw_batches_committed_total"]
		return m["edgegw_mqtt_messages_received_total"] >= float64(st.Messages) && m["edgegw_unacked_messages"] == 0
	})
	elapsed := time.Since(start)
	r.readings = st.Readings
	r.rate = float64(st.Readings) / elapsed.Seconds()
	r.perBatch = float64(st.Readings) / max(1, batches-batches0)

	// Every window closes size+lateness after its start; then the uplink
	// writes it.
	var want map[rollupKey]map[string]float64
	if ld.format == "json" {
		want = expectedRollups(b, truth)
	}
	deadline := time.Now().Add(size + lateness + 30*time.Second)
	var got map[rollupKey]map[string]float64
	for {
		got = influxRollups(b, influx, id)
		if total(got) >= st.Readings || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if lat != nil {
		r.p50, r.p99 = lat.stop(b)
	}
	r.cpuPerM = (cpuSeconds(b, pid) - cpu0) / float64(st.Readings) * 1e6
	r.rssMB = peakRSS(b, pid)
	time.Sleep(300 * time.Millisecond) // nothing extra arrives late
	got = influxRollups(b, influx, id)
	if want != nil {
		compareRollups(b, got, want)
		r.points = len(got)
	}
	if b.Failed() {
		m := scrape(b, metricsURL)
		b.Logf("gateway: %v readings received, %v late, %v duplicate, %v future; published %d messages, %d readings",
			m["edgegw_readings_received_total"], m["edgegw_readings_late_total"], m["edgegw_readings_duplicate_total"],
			m["edgegw_readings_future_total"], st.Messages, st.Readings)
	} else if n := total(got); n != st.Readings {
		// Readings of format value carry no event time: the gateway stamps
		// them on arrival, so only their total can be compared.
		b.Errorf("InfluxDB counts %d readings in all; want %d, the readings published", n, st.Readings)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		b.Fatalf("the gateway did not stop within 20s of SIGTERM")
	}
	stopped = true
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		b.Errorf("gateway exit code after SIGTERM = %d, want 0\n%s", code, stderr.String())
	}
	if b.Failed() {
		b.Logf("gateway log:\n%s", stderr.String())
	}
	endSession(b, broker, id)
}

// endSession removes the persistent session of client id from the broker,
// which would otherwise queue every later message of the run for it.
func endSession(b *testing.B, broker, id string) {
	b.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID(id).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("end the gateway's session %s: %v", id, tok.Error())
	}
	c.Disconnect(100)
}

// ceiling publishes ld to broker with a plain paho subscriber (QoS 1,
// automatic acknowledgement) that only counts, and returns the messages per
// second it received, from the first publish to the last message.
func ceiling(b *testing.B, broker string, ld load, dropped *droppedWatch) float64 {
	b.Helper()
	var n atomic.Int64
	var last atomic.Int64
	po := paho.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("bench-counter-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(false)
	po.SetDefaultPublishHandler(func(paho.Client, paho.Message) {
		n.Add(1)
		last.Store(time.Now().UnixNano())
	})
	c := paho.NewClient(po)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("counting subscriber: connect to %s: %v", broker, tok.Error())
	}
	defer c.Disconnect(250)
	if tok := c.Subscribe("sensors/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("counting subscriber: subscribe: %v", tok.Error())
	}
	start := time.Now()
	st, err := simulator.Run(context.Background(), simulator.Options{
		Broker: broker, Devices: devices, Sites: sites, Rate: ld.rate, Count: ld.count,
		Format: ld.format, QoS: 1, Seed: seed,
	}, nil)
	if err != nil {
		b.Fatalf("simulator: %v", err)
	}
	waitUntil(b, 2*time.Minute, "the counting subscriber to get every message", func() bool {
		dropped.check(b)
		return n.Load() >= st.Messages
	})
	return float64(st.Messages) / time.Unix(0, last.Load()).Sub(start).Seconds()
}

// droppedWatch follows $SYS/broker/publish/messages/dropped.
type droppedWatch struct {
	c     paho.Client
	value atomic.Int64
}

func watchDropped(b *testing.B, broker string) *droppedWatch {
	b.Helper()
	w := &droppedWatch{}
	po := paho.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("bench-sys-%d", time.Now().UnixNano())).SetCleanSession(true)
	w.c = paho.NewClient(po)
	if tok := w.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("$SYS subscriber: connect: %v", tok.Error())
	}
	tok := w.c.Subscribe("$SYS/broker/publish/messages/dropped", 0, func(_ paho.Client, m paho.Message) {
		v, err := strconv.ParseInt(strings.TrimSpace(string(m.Payload())), 10, 64)
		if err == nil {
			w.value.Store(v)
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("$SYS subscriber: subscribe: %v", tok.Error())
	}
	b.Cleanup(func() { w.c.Disconnect(100) })
	return w
}

// check fails b at once if Mosquitto reported dropped messages: what a run
// waits for would then never arrive.
func (w *droppedWatch) check(b *testing.B) {
	b.Helper()
	if n := w.value.Load(); n != 0 {
		b.Fatalf("Mosquitto dropped %d QoS 1 messages ($SYS/broker/publish/messages/dropped); raise max_queued_messages", n)
	}
}

// final waits for Mosquitto's next $SYS update (every 10 s; it publishes
// the counter only when it changed) and returns the messages dropped.
func (w *droppedWatch) final(b *testing.B) int64 {
	time.Sleep(11 * time.Second)
	return w.value.Load()
}

// latencyPoller polls InfluxDB for the number of points of each window and
// records, for every point, the time from its window's close (end +
// allowed_lateness, in wall time) to the poll that first saw it.
type latencyPoller struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	seen    map[int64]int // window start (ns) -> points seen
	samples []time.Duration
	errs    int
}

func startLatencyPoller(influx *testenv.InfluxDB, db string, since time.Time) *latencyPoller {
	ctx, cancel := context.WithCancel(context.Background())
	p := &latencyPoller{cancel: cancel, done: make(chan struct{}), seen: map[int64]int{}}
	q := fmt.Sprintf("SELECT count(temperature_count) FROM sensors WHERE time >= %d GROUP BY time(%s)",
		since.Add(-size).UnixNano(), size)
	go func() {
		defer close(p.done)
		tick := time.NewTicker(pollEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			rows, err := influx.QueryErr(db, q)
			now := time.Now()
			p.mu.Lock()
			if err != nil {
				p.errs++
			}
			for _, r := range rows {
				n, _ := r.Fields["count"].Int64()
				if d := int(n) - p.seen[r.Time]; d > 0 {
					closed := time.Unix(0, r.Time).Add(size + lateness)
					for range d {
						p.samples = append(p.samples, now.Sub(closed))
					}
					p.seen[r.Time] = int(n)
				}
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// stop ends the polling and returns p50 and p99 of the latencies of every
// point seen. The polling starts before the first publish, so every point
// was seen by the first poll after it became readable.
func (p *latencyPoller) stop(b *testing.B) (p50, p99 time.Duration) {
	b.Helper()
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.samples) == 0 {
		b.Errorf("latency: no point seen in InfluxDB (%d failed queries)", p.errs)
		return 0, 0
	}
	s := slices.Clone(p.samples)
	slices.Sort(s)
	pick := func(q float64) time.Duration { return s[min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1)] }
	return pick(0.50), pick(0.99)
}

// buildGateway builds the edgegw binary into a temporary folder, or returns
// $GW_BIN when set (to measure a given build).
func buildGateway(b *testing.B) string {
	b.Helper()
	if bin := os.Getenv("GW_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(b.TempDir(), "edgegw")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/edgegw/edgegw/cmd/edgegw")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// cpuSeconds returns utime+stime of process pid.
func cpuSeconds(b *testing.B, pid int) float64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("read the gateway's CPU time: %v", err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// peakRSS returns VmHWM of process pid in MB.
func peakRSS(b *testing.B, pid int) float64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatalf("read the gateway's peak RSS: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// scrape returns the gateway's metrics without labels.
func scrape(b *testing.B, url string) map[string]float64 {
	b.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		b.Fatalf("scrape the gateway's metrics: %v", err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			m[name] = v
		}
	}
	return m
}

func waitUntil(b *testing.B, timeout time.Duration, what string, ok func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pollEvery)
	}
}

func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive whole number", name, s)
	}
	return n
}

// medians returns the run whose fields are each the median over rs.
func medians(rs []result) result {
	m := rs[0]
	med := func(get func(result) float64) float64 {
		vs := make([]float64, len(rs))
		for i, r := range rs {
			vs[i] = get(r)
		}
		slices.Sort(vs)
		return vs[len(vs)/2]
	}
	m.rate = med(func(r result) float64 { return r.rate })
	m.ceiling = med(func(r result) float64 { return r.ceiling })
	m.cpuPerM = med(func(r result) float64 { return r.cpuPerM })
	m.rssMB = med(func(r result) float64 { return r.rssMB })
	m.perBatch = med(func(r result) float64 { return r.perBatch })
	m.p50 = time.Duration(med(func(r result) float64 { return float64(r.p50) }))
	m.p99 = time.Duration(med(func(r result) float64 { return float64(r.p99) }))
	return m
}

func printTable(w io.Writer, rs []result, runs int) {
	fmt.Fprintf(w, "\nedgegw end to end: %d devices x 2 fields, QoS 1, windows %v, medians of %d run(s)\n", devices, size, runs)
	fmt.Fprintf(w, "%-9s %-6s %-6s %12s %14s %14s %10s %8s %8s %12s %10s\n",
		"inflight", "format", "rate", "readings/s", "ceiling msg/s", "cpu s/M rdgs", "peak RSS", "p50", "p99", "rdgs/commit", "exact")
	for _, r := range rs {
		rate, ceil, p50, p99 := "max", "-", "-", "-"
		if r.load.rate > 0 {
			rate = strconv.Itoa(int(r.load.rate))
			p50, p99 = r.p50.Round(time.Millisecond).String(), r.p99.Round(time.Millisecond).String()
		}
		if r.ceiling > 0 {
			ceil = fmt.Sprintf("%.0f", r.ceiling)
		}
		exact := "count"
		if r.points > 0 {
			exact = fmt.Sprintf("%d pts", r.points)
		}
		fmt.Fprintf(w, "%-9d %-6s %-6s %12.0f %14s %14.1f %7.1f MB %8s %8s %12.0f %10s\n",
			r.inflight, r.load.format, rate, r.rate, ceil, r.cpuPerM, r.rssMB, p50, p99, r.perBatch, exact)
	}
	for _, inflight := range []int{20} {
		for _, r := range rs {
			if r.inflight != inflight || r.load.rate != 0 {
				continue
			}
			for _, o := range rs {
				if o.inflight == 1000 && o.load == r.load && o.rate > 0 {
					fmt.Fprintf(w, "inflight 20 / 1000, %s flat out: %.2f\n", r.load.format, r.rate/o.rate)
				}
			}
		}
	}
}

// lockedBuffer is a buffer safe to read while a process writes to it.
type lockedBuffer = testenv.LockedBuffer
