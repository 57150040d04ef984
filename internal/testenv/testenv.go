// Package testenv starts real servers for tests: Mosquitto and InfluxDB 1.x,
// each on a free loopback port with its files in a temporary folder, stopped
// when the test ends.
//
// # Usage
//
//	b := testenv.Mosquitto(t, testenv.MosquittoOptions{})
//	db := testenv.Influx(t)
//	db.CreateDatabase(t, "edge")
//	// ... point the code under test at b.URL() and db.URL() ...
//	rows := db.Query(t, "edge", "SELECT * FROM sensors")
//
// # Caveats
//
// A missing server binary skips the test on a developer's machine and fails
// it when the environment variable CI is set: CI must never pass by skipping.
// `make test` installs the servers.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Require returns the path of the executable name, looked up in PATH and in
// /usr/sbin. When it is missing the test is skipped, or failed under CI.
func Require(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found; run `make test` (it installs mosquitto and influxdb) or `sudo apt-get install mosquitto influxdb`", name)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

var (
	portsMu sync.Mutex
	ports   = map[int]bool{} // handed out by FreePort in this process
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that FreePort has not returned before in this process.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen on a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !ports[port] {
			ports[port] = true
			return port
		}
	}
}

// LockedBuffer collects a process's output; it may be read while the
// process writes.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *LockedBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

// process is a server process that can be stopped and started again with the
// same command line, files and port.
type process struct {
	t    testing.TB
	name string
	args []string
	addr string // host:port that answers once the server is up
	log  *LockedBuffer

	mu  sync.Mutex
	cmd *exec.Cmd
	ch  chan struct{} // closed when cmd exits
}

func (p *process) start() {
	p.t.Helper()
	if err := p.tryStart(); err != nil {
		p.t.Fatal(err)
	}
}

// errPortTaken reports a server that could not bind its port: another
// process took it between FreePort and the server's start.
var errPortTaken = errors.New("port taken")

// tryStart starts the process and waits until it listens on p.addr and is
// still running a moment later (so that another process on the same port is
// not taken for it).
func (p *process) tryStart() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("start %s: already running", p.name)
	}
	p.log.Reset()
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Stdout = p.log
	cmd.Stderr = p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %v", p.name, err)
	}
	ch := make(chan struct{})
	go func() { cmd.Wait(); close(ch) }()
	exited := func() error {
		if strings.Contains(p.log.String(), "in use") {
			return fmt.Errorf("%s: %w:\n%s", p.name, errPortTaken, p.log.String())
		}
		return fmt.Errorf("%s exited at start:\n%s", p.name, p.log.String())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			select {
			case <-ch:
				return exited()
			case <-time.After(100 * time.Millisecond):
			}
			p.cmd, p.ch = cmd, ch
			return nil
		}
		select {
		case <-ch:
			return exited()
		default:
		}
		if time.Now().After(deadline) {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-ch
			return fmt.Errorf("%s did not listen on %s within 30s:\n%s", p.name, p.addr, p.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startOnFreePorts calls newProcess with fresh ports until its process
// starts, up to five times: a port FreePort returned may be taken by another
// test process before the server binds it.
func startOnFreePorts(t testing.TB, newProcess func() *process) *process {
	t.Helper()
	var err error
	for range 5 {
		p := newProcess()
		if err = p.tryStart(); err == nil {
			return p
		}
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatal(err)
	return nil
}

// stop sends SIGTERM and waits up to 10 s before SIGKILL.
func (p *process) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.ch:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.ch
	}
	p.cmd = nil
}

// MosquittoOptions configures a test broker. The zero value is a stock
// Mosquitto with persistence on.
type MosquittoOptions struct {
	// MaxInflight sets max_inflight_messages; 0 keeps Mosquitto's default (20).
	MaxInflight int
	// MaxQueued sets max_queued_messages; 0 keeps Mosquitto's default (1000).
	MaxQueued int
	// NoPersistence turns persistence off.
	NoPersistence bool
}

// Broker is a running Mosquitto.
type Broker struct {
	p    *process
	Port int
}

// Mosquitto starts a Mosquitto on a free loopback port; it is stopped when
// the test ends.
func Mosquitto(t testing.TB, opts MosquittoOptions) *Broker {
	t.Helper()
	bin := Require(t, "mosquitto")
	dir := t.TempDir()
	b := &Broker{}
	b.p = startOnFreePorts(t, func() *process {
		port := FreePort(t)
		conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence %v\npersistence_location %s/\nautosave_interval 1\nlog_dest stderr\nlog_type error\nlog_type warning\n",
			port, !opts.NoPersistence, dir)
		if os.Geteuid() == 0 {
			// Started as root, Mosquitto switches to the user mosquitto, which
			// cannot write its persistence file into the test's folder: it
			// would lose every session at a restart.
			conf += "user root\n"
		}
		if opts.MaxInflight > 0 {
			conf += fmt.Sprintf("max_inflight_messages %d\n", opts.MaxInflight)
		}
		if opts.MaxQueued > 0 {
			conf += fmt.Sprintf("max_queued_messages %d\n", opts.MaxQueued)
		}
		confPath := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatalf("write %s: %v", confPath, err)
		}
		b.Port = port
		return &process{t: t, name: "mosquitto", args: []string{bin, "-c", confPath},
			addr: "127.0.0.1:" + strconv.Itoa(port), log: &LockedBuffer{}}
	})
	t.Cleanup(b.p.stop)
	return b
}

// URL returns the broker's address as tcp://127.0.0.1:PORT.
func (b *Broker) URL() string { return "tcp://127.0.0.1:" + strconv.Itoa(b.Port) }

// Stop stops the broker (SIGTERM; it saves its persistence file).
func (b *Broker) Stop() { b.p.stop() }

// Start starts a stopped broker again on the same port and files.
func (b *Broker) Start() { b.p.t.Helper(); b.p.start() }

// Log returns what the broker has printed.
func (b *Broker) Log() string { return b.p.log.String() }

// InfluxDB is a running influxd (1.x).
type InfluxDB struct {
	p    *process
	Port int
}

// Influx starts influxd on a free loopback port; it is stopped when the test
// ends.
func Influx(t testing.TB) *InfluxDB {
	t.Helper()
	bin := Require(t, "influxd")
	dir := t.TempDir()
	db := &InfluxDB{}
	db.p = startOnFreePorts(t, func() *process {
		port, rpc := FreePort(t), FreePort(t)
		conf := fmt.Sprintf(`reporting-disabled = true
	bind-address = "127.0.0.1:%d"
	[meta]
	  dir = "%[2]s/meta"
	[data]
	  dir = "%[2]s/data"
	  wal-dir = "%[2]s/wal"
	  query-log-enabled = false
	[http]
	  bind-address = "127.0.0.1:%[3]d"
	  log-enabled = false
	[monitor]
	  store-enabled = false
	[continuous_queries]
	  enabled = false
	[subscriber]
	  enabled = false
	[logging]
	  level = "warn"
	`, rpc, dir, port)
		confPath := filepath.Join(dir, "influxdb.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatalf("write %s: %v", confPath, err)
		}
		db.Port = port
		return &process{t: t, name: "influxd", args: []string{bin, "-config", confPath},
			addr: "127.0.0.1:" + strconv.Itoa(port), log: &LockedBuffer{}}
	})
	t.Cleanup(db.p.stop)
	db.waitPing(t)
	return db
}

func (db *InfluxDB) waitPing(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if _, err := db.do(ctx, "GET", "/ping", nil); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("influxd did not answer /ping within 30s:\n%s", db.p.log.String())
}

// URL returns the HTTP address as http://127.0.0.1:PORT.
func (db *InfluxDB) URL() string { return "http://127.0.0.1:" + strconv.Itoa(db.Port) }

// Stop stops influxd.
func (db *InfluxDB) Stop() { db.p.stop() }

// Start starts a stopped influxd again on the same port and files.
func (db *InfluxDB) Start() {
	db.p.t.Helper()
	db.p.start()
	db.waitPing(db.p.t)
}

// Log returns what influxd has printed.
func (db *InfluxDB) Log() string { return db.p.log.String() }
