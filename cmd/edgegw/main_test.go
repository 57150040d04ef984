package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/testenv"
)

// binary is the edgegw binary built once by TestMain; the tests run it as a
// user would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edgegw-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "edgegw")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// edgegw runs the binary with args to completion (at most 30 s) and returns
// its stdout, stderr and exit code.
func edgegw(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("edgegw %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

func TestVersion(t *testing.T) {
	out, _, code := edgegw(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "edgegw ") || !strings.Contains(out, "linux/") {
		t.Errorf("edgegw version = %q, exit %d; want a version line naming GOOS/GOARCH, exit 0", out, code)
	}
}

func TestConfigExampleChecks(t *testing.T) {
	example, _, code := edgegw(t, nil, "config", "example")
	if code != 0 || !strings.Contains(example, "subscriptions:") {
		t.Fatalf("config example: exit %d, output %q", code, example)
	}
	path := filepath.Join(t.TempDir(), "edgegw.yaml")
	os.WriteFile(path, []byte(example), 0o644)
	out, errOut, code := edgegw(t, nil, "config", "check", "-c", path)
	if code != 0 {
		t.Fatalf("config check of the example: exit %d, stderr %s", code, errOut)
	}
	if !strings.Contains(out, "broker:") {
		t.Errorf("config check prints no effective config: %q", out)
	}
	// EDGEGW_CONFIG is read when no flag is given.
	if _, errOut, code := edgegw(t, []string{"EDGEGW_CONFIG=" + path}, "config", "check"); code != 0 {
		t.Errorf("config check with EDGEGW_CONFIG: exit %d, stderr %s", code, errOut)
	}
}

func TestConfigCheckListsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("mqtt:\n  qos: 3\n  brokr: x\nbatch:\n  interval: fast\nuplink:\n  influx:\n    password: hunter2\n"), 0o644)
	_, errOut, code := edgegw(t, nil, "config", "check", "-c", path)
	if code != 2 {
		t.Errorf("config check of a bad config: exit %d, want 2", code)
	}
	for _, key := range []string{"mqtt.qos", "mqtt.brokr", "batch.interval"} {
		if !strings.Contains(errOut, key) {
			t.Errorf("config check error does not name %s:\n%s", key, errOut)
		}
	}
	if strings.Contains(errOut, "hunter2") {
		t.Errorf("config check printed a secret:\n%s", errOut)
	}
}

func TestConfigCheckNamesSubscriptionThatCanNeverMatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shadowed.yaml")
	os.WriteFile(path, []byte(`mqtt:
  subscriptions:
    - topic: "sensors/{site}/{device}/{field}"
    - topic: "sensors/special/{device}/{field}"
      format: value
`), 0o644)
	_, errOut, code := edgegw(t, nil, "config", "check", "-c", path)
	want := `mqtt.subscriptions[1]: can never match: subscription 0 (topic "sensors/{site}/{device}/{field}") comes first`
	if code != 2 || !strings.Contains(errOut, want) {
		t.Errorf("config check of a shadowed subscription: exit %d, stderr:\n%s\nwant exit 2 and %q", code, errOut, want)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"run"}, {"run", "--nope"}, {"simulate", "--qos", "2"}, {"simulate", "--format", "value", "--batch", "2"}, {"frobnicate"}} {
		if _, errOut, code := edgegw(t, []string{"EDGEGW_CONFIG="}, args...); code != 2 || errOut == "" {
			t.Errorf("edgegw %s: exit %d, stderr %q; want exit 2 with a message", strings.Join(args, " "), code, errOut)
		}
	}
}

func TestSecondGatewayOnSameDataDir(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "edgegw.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("gateway:\n  data_dir: %s\nmqtt:\n  broker: tcp://127.0.0.1:1\nuplink:\n  stdout: true\n  influx:\n    url: \"\"\nmetrics:\n  listen: \"\"\n", filepath.Join(dir, "data"))), 0o644)
	first := exec.Command(binary, "run", "-c", cfg)
	firstErr := &lockedBuffer{}
	first.Stderr = firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { first.Process.Kill(); first.Wait() }()
	waitFor(t, 10*time.Second, "the first gateway to open its store", func() bool {
		return strings.Contains(firstErr.String(), "gateway starting")
	})
	start := time.Now()
	_, errOut, code := edgegw(t, nil, "run", "-c", cfg)
	if code == 0 || !strings.Contains(errOut, "in use by another edgegw") {
		t.Errorf("second gateway on the same data_dir: exit %d, stderr %q; want an error saying it is in use", code, errOut)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second gateway took %v to give up, want at once", d)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockedBuffer is a buffer safe to read while a process writes to it.
type lockedBuffer = testenv.LockedBuffer

func TestDemoPrintsRollups(t *testing.T) {
	if testing.Short() {
		t.Skip("demo runs 18 s: skipped with -short")
	}
	port := freePort(t)
	out, errOut, code := edgegw(t, nil, "demo", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--duration", "18s")
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s", code, errOut)
	}
	points := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "sensors,device=") && strings.Contains(line, "temperature_count=") {
			points++
		}
	}
	if points == 0 {
		t.Errorf("demo printed no rollups in 18 s; stdout:\n%s\nstderr:\n%s", out, errOut)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
