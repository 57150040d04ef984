package batcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// reading returns a distinct reading numbered i.
func reading(i int) edgegw.Reading {
	return edgegw.Reading{Series: "sensors,device=d1,site=s1", Field: "temperature", Value: float64(i), Time: int64(i)}
}

func readings(is ...int) []edgegw.Reading {
	rs := make([]edgegw.Reading, 0, len(is))
	for _, i := range is {
		rs = append(rs, reading(i))
	}
	return rs
}

// call is one call of the commit function as the committer saw it.
type call struct {
	at       time.Duration // since the committer was made
	readings []edgegw.Reading
	messages int
	packets  []edgegw.Packet
	ctxErr   error
}

// committer records the commit calls and runs fn, if set, for each.
type committer struct {
	start time.Time
	fn    func(ctx context.Context, n int) error // n counts calls from 0

	mu      sync.Mutex
	calls   []call
	running int
	maxRun  int
}

func newCommitter(fn func(ctx context.Context, n int) error) *committer {
	return &committer{start: time.Now(), fn: fn}
}

func (c *committer) commit(ctx context.Context, b *Batch) error {
	c.mu.Lock()
	n := len(c.calls)
	c.calls = append(c.calls, call{
		at:       time.Since(c.start),
		readings: slices.Clone(b.Readings),
		messages: b.Messages,
		packets:  slices.Clone(b.Packets),
		ctxErr:   ctx.Err(),
	})
	c.running++
	c.maxRun = max(c.maxRun, c.running)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running--
		c.mu.Unlock()
	}()
	if c.fn != nil {
		return c.fn(ctx, n)
	}
	return nil
}

func (c *committer) got() []call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// acks records the acknowledgements in the order they are called.
type acks struct {
	mu  sync.Mutex
	got []int
}

func (a *acks) ack(i int) func() {
	return func() {
		a.mu.Lock()
		a.got = append(a.got, i)
		a.mu.Unlock()
	}
}

func (a *acks) called() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.got)
}

func newBatcher(t *testing.T, opts Options, commit CommitFunc, logger *slog.Logger, reg prometheus.Registerer) *Batcher {
	t.Helper()
	b, err := New(opts, commit, logger, reg)
	if err != nil {
		t.Fatalf("New(%+v) = %v", opts, err)
	}
	return b
}

// run starts b.Run; stop cancels it and returns its error.
func run(t *testing.T, b *Batcher) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

func mustAdd(t *testing.T, b *Batcher, rs []edgegw.Reading, ack func()) {
	t.Helper()
	if err := b.Add(context.Background(), rs, ack, edgegw.Packet{}); err != nil {
		t.Fatalf("Add(%d readings) = %v", len(rs), err)
	}
}

func checkCall(t *testing.T, c call, at time.Duration, rs []edgegw.Reading, messages int) {
	t.Helper()
	if c.at != at || !slices.Equal(c.readings, rs) || c.messages != messages {
		t.Errorf("commit at %v with %d messages, readings %v; want at %v with %d messages, readings %v",
			c.at, c.messages, values(c.readings), at, messages, values(rs))
	}
}

func values(rs []edgegw.Reading) []float64 {
	vs := make([]float64, len(rs))
	for i, r := range rs {
		vs[i] = r.Value
	}
	return vs
}

func TestIntervalTrigger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCommitter(nil)
		b := newBatcher(t, Options{Interval: 100 * time.Millisecond}, c.commit, nil, nil)
		stop := run(t, b)

		buf := readings(1, 2)
		mustAdd(t, b, buf, nil)
		buf[0], buf[1] = reading(8), reading(9) // the caller reuses its slice
		time.Sleep(100*time.Millisecond - time.Nanosecond)
		synctest.Wait()
		if got := c.got(); len(got) != 0 {
			t.Fatalf("%d commits before the interval elapsed; want 0", len(got))
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		got := c.got()
		if len(got) != 1 {
			t.Fatalf("%d commits once the interval elapsed; want 1", len(got))
		}
		checkCall(t, got[0], 100*time.Millisecond, readings(1, 2), 0)
		if err := stop(); err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
	})
}

func TestMaxReadingsTrigger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCommitter(nil)
		b := newBatcher(t, Options{Interval: time.Second, MaxReadings: 3}, c.commit, nil, nil)
		stop := run(t, b)

		mustAdd(t, b, readings(1), nil)
		mustAdd(t, b, readings(2), nil)
		synctest.Wait()
		if got := c.got(); len(got) != 0 {
			t.Fatalf("%d commits with 2 of 3 readings; want 0", len(got))
		}
		mustAdd(t, b, readings(3), nil)
		synctest.Wait()
		got := c.got()
		if len(got) != 1 {
			t.Fatalf("%d commits with 3 of 3 readings; want 1", len(got))
		}
		checkCall(t, got[0], 0, readings(1, 2, 3), 0)

		// The next batch opened with that commit and closes an interval later.
		mustAdd(t, b, readings(4, 5), nil)
		time.Sleep(time.Second)
		synctest.Wait()
		got = c.got()
		if len(got) != 2 {
			t.Fatalf("%d commits after one interval; want 2", len(got))
		}
		checkCall(t, got[1], time.Second, readings(4, 5), 0)
		if err := stop(); err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
	})
}

func TestFlowWindowTrigger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCommitter(nil)
		var a acks
		b := newBatcher(t, Options{Interval: time.Second, FlowWindow: 3}, c.commit, nil, nil)
		stop := run(t, b)

		mustAdd(t, b, readings(1), a.ack(1))
		mustAdd(t, b, readings(2), a.ack(2))
		for i := 10; i < 15; i++ {
			mustAdd(t, b, readings(i), nil) // QoS 0: nothing to acknowledge
		}
		synctest.Wait()
		if got := c.got(); len(got) != 0 {
			t.Fatalf("%d commits with 2 of 3 unacknowledged messages; want 0", len(got))
		}
		mustAdd(t, b, nil, a.ack(3)) // a message without readings
		synctest.Wait()
		got := c.got()
		if len(got) != 1 {
			t.Fatalf("%d commits with 3 of 3 unacknowledged messages; want 1", len(got))
		}
		checkCall(t, got[0], 0, readings(1, 2, 10, 11, 12, 13, 14), 3)
		if got, want := a.called(), []int{1, 2, 3}; !slices.Equal(got, want) {
			t.Errorf("acks called %v; want %v", got, want)
		}
		if err := stop(); err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
	})
}

func TestHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCommitter(nil)
		b := newBatcher(t, Options{Interval: 100 * time.Millisecond}, c.commit, nil, nil)
		stop := run(t, b)

		time.Sleep(350 * time.Millisecond)
		synctest.Wait()
		got := c.got()
		if len(got) != 3 {
			t.Fatalf("%d commits in 350ms without readings; want 3 heartbeats", len(got))
		}
		for i, cl := range got {
			checkCall(t, cl, time.Duration(i+1)*100*time.Millisecond, nil, 0)
		}
		if err := stop(); err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
	})
}

func TestAcksAfterCommitInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		c := newCommitter(func(ctx context.Context, n int) error {
			if n == 0 {
				<-release
			}
			return nil
		})
		var a acks
		b := newBatcher(t, Options{Interval: time.Second, FlowWindow: 3}, c.commit, nil, nil)
		stop := run(t, b)

		for i := range 3 {
			mustAdd(t, b, readings(i), a.ack(i))
		}
		synctest.Wait()
		if n := len(c.got()); n != 1 {
			t.Fatalf("%d commits; want 1 running", n)
		}
		mustAdd(t, b, readings(3), a.ack(3)) // into the next batch
		synctest.Wait()
		if got := a.called(); len(got) != 0 {
			t.Fatalf("acks %v called while the commit runs; want none", got)
		}
		close(release)
		synctest.Wait()
		if got, want := a.called(), []int{0, 1, 2}; !slices.Equal(got, want) {
			t.Fatalf("acks called after the commit returned: %v; want %v", got, want)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got, want := a.called(), []int{0, 1, 2, 3}; !slices.Equal(got, want) {
			t.Errorf("acks called after the second commit: %v; want %v", got, want)
		}
		if err := stop(); err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
	})
}

func TestFailedCommitCarriesAcks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errDisk := errors.New("disk full")
		c := newCommitter(func(ctx context.Context, n int) error {
			if n == 0 {
				return errDisk
			}
			return nil
		})
		var a acks
		var logs bytes.Buffer
		reg := prometheus.NewRegistry()
		b := newBatcher(t, Options{Interval: 100 * time.Millisecond, FlowWindow: 2}, c.commit,
			slog.New(slog.NewTextHandler(&logs, nil)), reg)
		stop := run(t, b)

		mustAdd(t, b, readings(0), a.ack(0))
		mustAdd(t, b, readings(1), a.ack(1)) // flow window: commit now, fails
		synctest.Wait()
		mustAdd(t, b, readings(2), a.ack(2))
		mustAdd(t, b, nil, a.ack(3)) // flow window again, but the retry waits an interval
		synctest.Wait()
		if got := a.called(); len(got) != 0 {
			t.Fatalf("acks %v called after a failed commit; want none", got)
		}
		if n := len(c.got()); n != 1 {
			t.Fatalf("%d commits right after a failure; want 1 (retry after the interval)", n)
		}
		if got := metricValue(t, reg, "edgegw_unacked_messages"); got != 4 {
			t.Errorf("edgegw_unacked_messages = %v after a failed commit; want 4", got)
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		got := c.got()
		if len(got) != 2 {
			t.Fatalf("%d commits an interval after the failure; want 2", len(got))
		}
		checkCall(t, got[0], 0, readings(0, 1), 2)
		checkCall(t, got[1], 100*time.Millisecond, readings(2), 4) // readings 0 and 1 not handed again
		if got, want := a.called(), []int{0, 1, 2, 3}; !slices.Equal(got, want) {
			t.Errorf("acks called after the retry: %v; want %v", got, want)
		}
		for name, want := range map[string]float64{
			"edgegw_commit_errors_total":     1,
			"edgegw_batches_committed_total": 1,
			"edgegw_unacked_messages":        0,
			"edgegw_batch_readings":          2, // observations
			"edgegw_commit_seconds":          2,
		} {
			if got := metricValue(t, reg, name); got != want {
				t.Errorf("%s = %v; want %v", name, got, want)
			}
		}
		if err := stop(); err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
		out := logs.String()
		if strings.Count(out, "level=ERROR") != 1 || !strings.Contains(out, "disk full") {
			t.Errorf("log = %q; want one error line naming the error", out)
		}
		if !strings.Contains(out, "commit succeeded again") {
			t.Errorf("log = %q; want a line saying commits succeed again", out)
		}
	})
}

func TestFailedCommitsLoggedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		failing := atomic.Bool{}
		failing.Store(true)
		c := newCommitter(func(ctx context.Context, n int) error {
			if failing.Load() {
				return fmt.Errorf("commit %d: disk full", n)
			}
			return nil
		})
		var logs bytes.Buffer
		b := newBatcher(t, Options{Interval: 100 * time.Millisecond}, c.commit, slog.New(slog.NewTextHandler(&logs, nil)), nil)
		if err := b.Err(); err != nil {
			t.Errorf("Err() before any commit = %v; want nil", err)
		}
		stop := run(t, b)

		// Failures at 0.1s, 0.2s, ... 12.0s: logged once, at 0.1s.
		time.Sleep(12*time.Second + 50*time.Millisecond)
		synctest.Wait()
		if err := b.Err(); err == nil || !strings.Contains(err.Error(), "120 commits failed since") || !strings.Contains(err.Error(), "commit 119: disk full") {
			t.Errorf("Err() after 120 failures = %v; want it to count them and wrap the last error", err)
		}
		failing.Store(false)
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if err := b.Err(); err != nil {
			t.Errorf("Err() after a commit succeeded = %v; want nil", err)
		}
		if err := stop(); err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
		out := logs.String()
		if n := strings.Count(out, "level=ERROR"); n != 1 {
			t.Errorf("%d error lines for 120 failures in 12s; want 1:\n%s", n, out)
		}
		if !strings.Contains(out, "commit 0: disk full") {
			t.Errorf("the error line does not give the first failure's error (commit 0: disk full):\n%s", out)
		}
		if n := strings.Count(out, "commit succeeded again"); n != 1 || !strings.Contains(out, "failed_commits=120") || !strings.Contains(out, "failing_for=12s") {
			t.Errorf("log does not say once that commits succeed again after 120 failures in 12s (failed_commits=120 failing_for=12s):\n%s", out)
		}
	})
}

func TestSlowCommitFusesBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCommitter(func(ctx context.Context, n int) error {
			if n == 0 {
				time.Sleep(time.Second)
			}
			return nil
		})
		b := newBatcher(t, Options{Interval: 100 * time.Millisecond}, c.commit, nil, nil)
		stop := run(t, b)

		mustAdd(t, b, readings(0), nil)
		time.Sleep(200 * time.Millisecond) // the first commit runs from 0.1s to 1.1s
		mustAdd(t, b, readings(1), nil)
		time.Sleep(300 * time.Millisecond)
		mustAdd(t, b, readings(2), nil)
		time.Sleep(400 * time.Millisecond)
		mustAdd(t, b, readings(3), nil)
		time.Sleep(200 * time.Millisecond) // 1.1s
		synctest.Wait()
		got := c.got()
		if len(got) != 2 {
			t.Fatalf("%d commits by the end of a 1s commit; want 2", len(got))
		}
		checkCall(t, got[0], 100*time.Millisecond, readings(0), 0)
		checkCall(t, got[1], 1100*time.Millisecond, readings(1, 2, 3), 0)
		if err := stop(); err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
		if c.maxRun != 1 {
			t.Errorf("%d commits ran at once; want 1", c.maxRun)
		}
	})
}

func TestTriggerDuringCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCommitter(func(ctx context.Context, n int) error {
			if n == 0 {
				time.Sleep(300 * time.Millisecond)
			}
			return nil
		})
		var a acks
		b := newBatcher(t, Options{Interval: time.Second, FlowWindow: 2}, c.commit, nil, nil)
		stop := run(t, b)

		mustAdd(t, b, readings(0), a.ack(0))
		mustAdd(t, b, readings(1), a.ack(1)) // commit from 0 to 0.3s
		time.Sleep(100 * time.Millisecond)
		mustAdd(t, b, readings(2), a.ack(2))
		mustAdd(t, b, readings(3), a.ack(3)) // flow window while the commit runs
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		got := c.got()
		if len(got) != 2 {
			t.Fatalf("%d commits when the first returned; want 2", len(got))
		}
		checkCall(t, got[0], 0, readings(0, 1), 2)
		checkCall(t, got[1], 300*time.Millisecond, readings(2, 3), 2)
		if got, want := a.called(), []int{0, 1, 2, 3}; !slices.Equal(got, want) {
			t.Errorf("acks called %v; want %v", got, want)
		}
		if err := stop(); err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
	})
}

func TestBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		c := newCommitter(func(ctx context.Context, n int) error {
			if n == 0 {
				<-release
			}
			return nil
		})
		b := newBatcher(t, Options{Interval: time.Second, MaxReadings: 2}, c.commit, nil, nil)
		stop := run(t, b)

		mustAdd(t, b, readings(0), nil)
		mustAdd(t, b, readings(1), nil) // full: the first commit starts and blocks
		mustAdd(t, b, readings(2), nil)
		mustAdd(t, b, readings(3), nil) // the next batch is full too
		blocked := make(chan error, 1)
		go func() { blocked <- b.Add(context.Background(), readings(4), nil, edgegw.Packet{}) }()
		ctx, cancel := context.WithCancel(context.Background())
		cancelled := make(chan error, 1)
		go func() { cancelled <- b.Add(ctx, readings(5), nil, edgegw.Packet{}) }()
		synctest.Wait()
		select {
		case err := <-blocked:
			t.Fatalf("Add to a full batch while a commit runs returned %v; want it to block", err)
		default:
		}
		cancel()
		if err := <-cancelled; !errors.Is(err, context.Canceled) {
			t.Errorf("blocked Add after its ctx was cancelled = %v; want context.Canceled", err)
		}

		close(release)
		synctest.Wait()
		select {
		case err := <-blocked:
			if err != nil {
				t.Errorf("blocked Add after the commit returned = %v; want nil", err)
			}
		default:
			t.Fatal("Add still blocked after the commit returned")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		got := c.got()
		if len(got) != 3 {
			t.Fatalf("%d commits; want 3", len(got))
		}
		checkCall(t, got[0], 0, readings(0, 1), 0)
		checkCall(t, got[1], 0, readings(2, 3), 0)
		checkCall(t, got[2], time.Second, readings(4), 0) // reading 5 was never added
		if err := stop(); err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
	})
}

func TestShutdownCommitsOpenBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCommitter(nil)
		var a acks
		b := newBatcher(t, Options{Interval: time.Second}, c.commit, nil, nil)
		mustAdd(t, b, readings(0), a.ack(0)) // before Run starts
		stop := run(t, b)
		mustAdd(t, b, readings(1), a.ack(1))
		time.Sleep(300 * time.Millisecond)
		if err := stop(); err != nil {
			t.Fatalf("Run() = %v; want nil", err)
		}
		got := c.got()
		if len(got) != 1 {
			t.Fatalf("%d commits; want 1 at shutdown", len(got))
		}
		checkCall(t, got[0], 300*time.Millisecond, readings(0, 1), 2)
		if got[0].ctxErr != nil {
			t.Errorf("last commit's ctx.Err() = %v; want nil", got[0].ctxErr)
		}
		if got, want := a.called(), []int{0, 1}; !slices.Equal(got, want) {
			t.Errorf("acks called %v; want %v", got, want)
		}
		if err := b.Add(context.Background(), readings(2), a.ack(2), edgegw.Packet{}); !errors.Is(err, ErrClosed) {
			t.Errorf("Add after Run returned = %v; want ErrClosed", err)
		}
		if err := b.Run(context.Background()); err == nil {
			t.Error("second Run() = nil; want an error")
		}
	})
}

func TestShutdownWaitsForRunningCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCommitter(func(ctx context.Context, n int) error {
			if n == 0 {
				time.Sleep(time.Second) // ignores ctx
			}
			return nil
		})
		var a acks
		b := newBatcher(t, Options{Interval: 10 * time.Second, FlowWindow: 1}, c.commit, nil, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx) }()

		mustAdd(t, b, readings(0), a.ack(0)) // commit from 0 to 1s
		time.Sleep(500 * time.Millisecond)
		mustAdd(t, b, readings(1), a.ack(1)) // triggers, waits for the running commit
		time.Sleep(100 * time.Millisecond)
		cancel()
		synctest.Wait()
		if err := b.Add(context.Background(), readings(2), a.ack(2), edgegw.Packet{}); !errors.Is(err, ErrClosed) {
			t.Errorf("Add after cancel, during the commit = %v; want ErrClosed", err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Run() = %v; want nil", err)
		}
		got := c.got()
		if len(got) != 2 {
			t.Fatalf("%d commits; want 2", len(got))
		}
		checkCall(t, got[0], 0, readings(0), 1)
		checkCall(t, got[1], time.Second, readings(1), 1)
		if got[1].ctxErr != nil {
			t.Errorf("last commit's ctx.Err() = %v; want nil", got[1].ctxErr)
		}
		if got, want := a.called(), []int{0, 1}; !slices.Equal(got, want) {
			t.Errorf("acks called %v; want %v", got, want)
		}
	})
}

func TestShutdownReleasesBlockedAdd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCommitter(nil)
		b := newBatcher(t, Options{Interval: time.Second, MaxReadings: 1}, c.commit, nil, nil)
		mustAdd(t, b, readings(0), nil) // full, and Run has not started
		blocked := make(chan error, 1)
		go func() { blocked <- b.Add(context.Background(), readings(1), nil, edgegw.Packet{}) }()
		synctest.Wait()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := b.Run(ctx); err != nil {
			t.Fatalf("Run() = %v; want nil", err)
		}
		if err := <-blocked; !errors.Is(err, ErrClosed) {
			t.Errorf("Add blocked at shutdown = %v; want ErrClosed", err)
		}
		got := c.got()
		if len(got) != 1 {
			t.Fatalf("%d commits; want 1", len(got))
		}
		checkCall(t, got[0], 0, readings(0), 0)
	})
}

func TestLastCommitError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errDisk := errors.New("disk full")
		c := newCommitter(func(ctx context.Context, n int) error { return errDisk })
		var a acks
		var logs bytes.Buffer
		b := newBatcher(t, Options{Interval: time.Second}, c.commit, slog.New(slog.NewTextHandler(&logs, nil)), nil)
		stop := run(t, b)
		mustAdd(t, b, readings(0), a.ack(0))
		if err := stop(); !errors.Is(err, errDisk) {
			t.Errorf("Run() = %v; want the last commit's error", err)
		}
		if got := a.called(); len(got) != 0 {
			t.Errorf("acks %v called after the last commit failed; want none", got)
		}
		if logs.Len() != 0 {
			t.Errorf("log = %q; want nothing (Run returns the error)", logs.String())
		}
	})
}

func TestNewRejectsBadOptions(t *testing.T) {
	commit := func(context.Context, *Batch) error { return nil }
	for _, tc := range []struct {
		opts   Options
		commit CommitFunc
		want   []string
	}{
		{Options{Interval: -time.Second}, commit, []string{"interval -1s", "at least 1ms"}},
		{Options{Interval: time.Microsecond}, commit, []string{"interval 1µs", "at least 1ms"}},
		{Options{MaxReadings: -1}, commit, []string{"max readings -1", "positive"}},
		{Options{FlowWindow: -5}, commit, []string{"flow window -5", "positive"}},
		{Options{}, nil, []string{"commit function is nil"}},
		{Options{Interval: -1, MaxReadings: -1, FlowWindow: -1}, nil, []string{"interval", "max readings", "flow window", "commit function"}},
	} {
		b, err := New(tc.opts, tc.commit, nil, nil)
		if err == nil {
			t.Errorf("New(%+v) = %v, nil; want an error", tc.opts, b)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("New(%+v) = %q; want it to contain %q", tc.opts, err, w)
			}
		}
	}
}

func TestNewDefaults(t *testing.T) {
	b := newBatcher(t, Options{}, func(context.Context, *Batch) error { return nil }, nil, nil)
	want := Options{Interval: 100 * time.Millisecond, MaxReadings: 10000, FlowWindow: 20}
	if b.opts != want {
		t.Errorf("options of New(Options{}) = %+v; want %+v", b.opts, want)
	}
}

func TestNewRegistersOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	commit := func(context.Context, *Batch) error { return nil }
	newBatcher(t, Options{}, commit, nil, reg)
	if _, err := New(Options{}, commit, nil, reg); err == nil {
		t.Error("second New on the same registry = nil error; want a registration error")
	}
}

// TestConcurrentAdds adds from several goroutines while commits fail now and
// then: every reading reaches a commit once, every ack is called once, and each
// goroutine's acks come in the order it added them.
func TestConcurrentAdds(t *testing.T) {
	const (
		goroutines = 4
		perG       = 500
	)
	var stopping atomic.Bool
	seen := make(map[float64]int)
	var mu sync.Mutex
	commit := func(ctx context.Context, bt *Batch) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range bt.Readings {
			seen[r.Value]++
		}
		if !stopping.Load() && len(bt.Readings)%3 == 1 {
			return errors.New("flaky disk")
		}
		return nil
	}
	reg := prometheus.NewRegistry()
	b := newBatcher(t, Options{Interval: time.Millisecond, MaxReadings: 50, FlowWindow: 20}, commit, nil, reg)
	stop := run(t, b)

	acked := make([][]int, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				id := g*perG + i
				rs := readings(id*3, id*3+1, id*3+2)[:i%4] // 0 to 3 readings
				var ack func()
				if i%5 != 0 { // some QoS 0 messages
					ack = func() { acked[g] = append(acked[g], i) } // acks run on Run's goroutine only
				}
				if err := b.Add(context.Background(), rs, ack, edgegw.Packet{}); err != nil {
					t.Errorf("Add = %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	stopping.Store(true)
	if err := stop(); err != nil {
		t.Fatalf("Run() = %v; want nil", err)
	}

	want := 0
	for g := range goroutines {
		for i := range perG {
			id := g*perG + i
			for k := range i % 4 {
				want++
				if n := seen[float64(id*3+k)]; n != 1 {
					t.Fatalf("reading %d handed to commit %d times; want 1", id*3+k, n)
				}
			}
		}
		var wantAcks []int
		for i := range perG {
			if i%5 != 0 {
				wantAcks = append(wantAcks, i)
			}
		}
		if !slices.Equal(acked[g], wantAcks) {
			t.Errorf("goroutine %d: %d acks, in order %v; want %d in the order added", g, len(acked[g]), slices.IsSorted(acked[g]), len(wantAcks))
		}
	}
	if len(seen) != want {
		t.Errorf("%d distinct readings committed; want %d", len(seen), want)
	}
	if got := metricValue(t, reg, "edgegw_unacked_messages"); got != 0 {
		t.Errorf("edgegw_unacked_messages = %v after shutdown; want 0", got)
	}
}

// metricValue returns the value of a counter or gauge, or the sample count
// of a histogram, gathered from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
