package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testenv"
)

// TestDataDirFull fills the file system under data_dir (a small tmpfs) while
// readings flow, twice: the gateway stops acknowledging and the broker keeps
// the messages, /readyz says why, the log says it once; when space returns
// (a file deleted, then the file system grown) it goes on by itself, and
// InfluxDB ends up with exactly the truth's rollups.
func TestDataDirFull(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: skipped with -short")
	}
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{MaxQueued: 100000})
	influx := testenv.Influx(t)
	influx.CreateDatabase(t, "edge")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	mountTmpfs(t, data, "8m")
	gw := startGateway(t, dir, diskConfig(data, broker.URL(), influx.URL(), testenv.FreePort(t)))

	var truths []string
	sent := 0
	publish := func(n, devices int, seed string) {
		t.Helper()
		truth := filepath.Join(dir, "truth-"+seed+".lp")
		_, errOut, code := edgegw(t, nil, "simulate", "--broker", broker.URL(), "--devices", fmt.Sprint(devices), "--sites", "4",
			"--rate", "2000", "--count", fmt.Sprint(n), "--format", "json", "--seed", seed,
			"--out-of-order", "0.05", "--lateness", "1s", "--truth", truth)
		if code != 0 {
			t.Fatalf("simulate: exit %d\n%s", code, errOut)
		}
		truths = append(truths, truth)
		sent += n
	}
	publish(500, 20, "21")
	waitFor(t, 10*time.Second, "the gateway to receive the first messages", func() bool {
		return gatewayMetric(t, gw, "edgegw_mqtt_messages_received_total") == 500
	})

	// Full: the filler takes every free byte, new series need new pages.
	filler := fillFS(t, data)
	publish(3000, 300, "22")
	expectStuck(t, gw, sent, "no space left on device")
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	expectRecovered(t, gw, sent)

	// Full again, with more series than before; this time the file system
	// grows.
	fillFS(t, data)
	publish(4000, 1000, "23")
	expectStuck(t, gw, sent, "no space left on device")
	if err := syscall.Mount("", data, "", syscall.MS_REMOUNT, "size=64m"); err != nil {
		t.Fatalf("grow tmpfs %s: %v", data, err)
	}
	expectRecovered(t, gw, sent)

	want := expectedRollups(t, concatFiles(t, filepath.Join(dir, "truth.lp"), truths...), time.Second)
	waitRollups(t, influx, len(want), 20*time.Second)
	compareRollups(t, influxRollups(t, influx), want)
	gw.stop(t)
}

func diskConfig(data, broker, influx string, metricsPort int) string {
	return fmt.Sprintf(`
gateway:
  id: disk
  data_dir: %s
mqtt:
  broker: %s
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
`, data, broker, influx, metricsPort)
}

// expectStuck waits for the gateway to see the store fail, then checks that
// it stopped taking messages from the broker (the broker keeps them), says
// why on /readyz, logs it once, and holds its memory.
func expectStuck(t *testing.T, gw *gateway, sent int, why string) {
	t.Helper()
	var body string
	waitFor(t, 15*time.Second, "/readyz to say the store fails", func() bool {
		code, b := readyz(t, gw)
		body = b
		return code == http.StatusServiceUnavailable && strings.Contains(b, "store")
	})
	if !strings.Contains(body, why) || !strings.Contains(body, "data_dir") {
		t.Errorf("/readyz body = %q; want it to name data_dir and %q", body, why)
	}
	t.Logf("/readyz: 503 %s", strings.TrimSpace(body))
	received := gatewayMetric(t, gw, "edgegw_mqtt_messages_received_total")
	rss := gatewayMetric(t, gw, "process_resident_memory_bytes")
	logged := strings.Count(gw.stderr.String(), failLine)
	time.Sleep(3 * time.Second) // about 30 failed commits
	if now := strings.Count(gw.stderr.String(), failLine); logged == 0 || now != logged {
		t.Errorf("log lines about failing commits: %d when /readyz said so, %d after 3s more of failing commits; want the failure logged once:\n%s", logged, now, gw.stderr.String())
	}
	if now := gatewayMetric(t, gw, "edgegw_mqtt_messages_received_total"); now != received || now >= float64(sent) {
		t.Errorf("messages received while the store fails: %v, then %v 3s later, of %d sent; want it to stop, the broker keeping the rest", received, now, sent)
	}
	// Mostly 20 (Mosquitto's max_inflight_messages), at times a few hundred
	// with Mosquitto 2.0; the batcher holds at most 2*batch.max_readings.
	if n := gatewayMetric(t, gw, "edgegw_unacked_messages"); n == 0 || n > 2*10000 {
		t.Errorf("edgegw_unacked_messages = %v while the store fails; want 1 to 2*batch.max_readings", n)
	} else {
		t.Logf("%v messages wait unacknowledged while the store fails", n)
	}
	if now := gatewayMetric(t, gw, "process_resident_memory_bytes"); now > rss+16<<20 {
		t.Errorf("resident memory grew from %.0f to %.0f bytes in 3s of failing commits; want it flat", rss, now)
	}
	if code, b := readyz(t, gw); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d %q after 3s of failing commits; want 503", code, b)
	}
}

// failLine starts the log line about failing commits.
const failLine = `level=ERROR msg="commit batch`

// expectRecovered waits for the gateway to commit again and to take every
// message sent, and checks that each series of failed commits was logged
// once, and so was its end. A commit that needs no new page succeeds on a
// full file system, so a fill may give more than one series.
func expectRecovered(t *testing.T, gw *gateway, sent int) {
	t.Helper()
	waitFor(t, 15*time.Second, "/readyz to say ready again", func() bool {
		code, _ := readyz(t, gw)
		return code == http.StatusOK
	})
	waitFor(t, 20*time.Second, "the gateway to receive every message sent", func() bool {
		return gatewayMetric(t, gw, "edgegw_mqtt_messages_received_total") == float64(sent)
	})
	log := gw.stderr.String()
	if fails, oks := strings.Count(log, failLine), strings.Count(log, `msg="commit succeeded again"`); oks != fails {
		t.Errorf("%d log lines about failing commits, %d about commits succeeding again; want one of each per series of failures:\n%s", fails, oks, log)
	}
}

// mountTmpfs mounts a tmpfs of size at dir until the test ends. Without the
// right to mount the test is skipped, or fails under CI.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0750"); err != nil {
		msg := fmt.Sprintf("mount a tmpfs on %s: %v (the disk fault tests need root, or CAP_SYS_ADMIN)", dir, err)
		if os.Getenv("CI") != "" || !errors.Is(err, syscall.EPERM) {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// fillFS writes a file into dir until its file system is full and returns
// the file's path.
func fillFS(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			break
		}
	}
	for _, n := range []int{4096, 1} { // the last partial pages
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	return path
}

// readyz returns the gateway's /readyz status and body.
func readyz(t *testing.T, gw *gateway) (int, string) {
	t.Helper()
	resp, err := http.Get(gw.metrics + "/readyz")
	if err != nil {
		t.Fatalf("GET %s/readyz: %v", gw.metrics, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// concatFiles writes the files one after the other to path and returns it.
func concatFiles(t *testing.T, path string, files ...string) string {
	t.Helper()
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if err := os.WriteFile(path, all, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDataDirReadOnly turns the file system under data_dir read-only while
// readings flow, the way the kernel does after an ext4 error
// (errors=remount-ro, on a loop device): the gateway stops acknowledging,
// /readyz and the log say why, and SIGTERM exits 1 without acknowledging
// what it could not commit. The kernel lets such a file system be written
// again only after it is unmounted, repaired and mounted, which needs the
// gateway stopped; started again, it loses nothing and counts nothing twice.
func TestDataDirReadOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: skipped with -short")
	}
	for _, tool := range []string{"mkfs.ext4", "e2fsck", "losetup"} {
		testenv.Require(t, tool)
	}
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{MaxQueued: 100000})
	influx := testenv.Influx(t)
	influx.CreateDatabase(t, "edge")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	img := filepath.Join(dir, "data.img")
	runTool(t, "truncate", "-s", "32M", img)
	runTool(t, "mkfs.ext4", "-q", "-F", img)
	mountExt4(t, img, data)
	// A lateness above the time the gateway stands still, so that readings
	// the broker held meanwhile are not late after the restart.
	cfg := strings.Replace(diskConfig(data, broker.URL(), influx.URL(), testenv.FreePort(t)),
		"allowed_lateness: 1s", "allowed_lateness: 10s", 1)
	gw := startGateway(t, dir, cfg)

	var truths []string
	publish := func(n int, seed string) {
		t.Helper()
		truth := filepath.Join(dir, "truth-"+seed+".lp")
		_, errOut, code := edgegw(t, nil, "simulate", "--broker", broker.URL(), "--devices", "100", "--sites", "4",
			"--rate", "2000", "--count", fmt.Sprint(n), "--format", "json", "--seed", seed,
			"--out-of-order", "0.05", "--lateness", "10s", "--truth", truth)
		if code != 0 {
			t.Fatalf("simulate: exit %d\n%s", code, errOut)
		}
		truths = append(truths, truth)
	}
	publish(500, "31")
	waitFor(t, 10*time.Second, "the gateway to receive the first messages", func() bool {
		return gatewayMetric(t, gw, "edgegw_mqtt_messages_received_total") == 500
	})

	dev := strings.TrimSpace(runTool(t, "findmnt", "-n", "-o", "SOURCE", data))
	trigger := filepath.Join("/sys/fs/ext4", filepath.Base(dev), "trigger_fs_error")
	if err := os.WriteFile(trigger, []byte("1"), 0o200); err != nil {
		t.Fatalf("make %s fail: %v", dev, err)
	}
	publish(1500, "32")
	expectStuck(t, gw, 2000, "read-only file system")

	gw.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-gw.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("gateway still runs 15s after SIGTERM")
	}
	if code, log := gw.cmd.ProcessState.ExitCode(), gw.stderr.String(); code != 1 || !strings.Contains(log, "commit last batch") {
		t.Errorf("SIGTERM with a read-only data_dir: exit %d; want 1 and a line saying the last batch was not committed:\n%s", code, log)
	}

	// The operator's repair: unmount, check, mount; then start the gateway.
	if err := syscall.Unmount(data, 0); err != nil {
		t.Fatalf("unmount %s: %v", data, err)
	}
	// e2fsck exits 1 when it corrected something: the aborted journal.
	var exit *exec.ExitError
	if out, err := exec.Command("e2fsck", "-f", "-y", img).CombinedOutput(); err != nil && (!errors.As(err, &exit) || exit.ExitCode() > 1) {
		t.Fatalf("e2fsck %s: %v\n%s", img, err, out)
	}
	mountExt4(t, img, data)
	gw = startGateway(t, dir, cfg)
	want := expectedRollups(t, concatFiles(t, filepath.Join(dir, "truth.lp"), truths...), time.Second)
	waitRollups(t, influx, len(want), 25*time.Second)
	compareRollups(t, influxRollups(t, influx), want)
	gw.stop(t)
}

// mountExt4 mounts the ext4 image img at dir on a loop device, with
// errors=remount-ro, until the test ends.
func mountExt4(t *testing.T, img, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-o", "loop,errors=remount-ro", img, dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("mount %s on %s: %v: %s (the disk fault tests need root and loop devices)", img, dir, err, out)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// runTool runs a command to completion and returns its output; it fails the
// test if the command fails.
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
