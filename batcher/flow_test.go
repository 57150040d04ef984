package batcher

import (
	"context"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"
)

// broker sends n messages to b the way an MQTT broker does: at most window
// unacknowledged at once (0: no limit), one every gap, or with random gaps
// of mean -gap (exponentially distributed, as from independent sensors) when
// gap is negative. It returns when every message was acknowledged.
func broker(t *testing.T, b *Batcher, n, window int, gap time.Duration) {
	t.Helper()
	if window == 0 {
		window = n
	}
	inflight := make(chan struct{}, window)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		inflight <- struct{}{}
		mustAdd(t, b, readings(i), func() { <-inflight })
		switch {
		case gap > 0:
			time.Sleep(gap)
		case gap < 0:
			time.Sleep(time.Duration(rnd.ExpFloat64() * float64(-gap)))
		}
	}
	for range window {
		inflight <- struct{}{}
	}
}

// TestFlowStrictWindow: a broker that sends no more than FlowWindow
// unacknowledged messages must not wait for Interval: with FlowIdle the batch
// closes once the broker falls silent.
func TestFlowStrictWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The broker's messages come in bursts released by each commit's
		// acknowledgements: the pause taken as the broker's is the least.
		const n, window, commit, idle, flowIdle = 2000, 20, time.Millisecond, minFlowIdle, 10 * time.Millisecond
		c := newCommitter(func(context.Context, int) error { time.Sleep(commit); return nil })
		b := newBatcher(t, Options{Interval: 100 * time.Millisecond, FlowWindow: window, FlowIdle: flowIdle}, c.commit, nil, nil)
		stop := run(t, b)
		start := time.Now()
		broker(t, b, n, window, 0)
		took := time.Since(start)
		// Each round: the broker's window, the idle wait, the commit.
		rounds := n / window
		if max := time.Duration(rounds) * (commit + idle); took > max {
			t.Errorf("%d messages through a window of %d took %v; want at most %v (%d rounds of commit %v + idle %v)",
				n, window, took, max, rounds, commit, idle)
		}
		if err := stop(); err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
	})
}

// TestFlowWideWindow: a broker that keeps sending past FlowWindow gets its
// batches closed on Interval, not a commit every FlowWindow messages.
func TestFlowWideWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, gap, interval = 2000, 100 * time.Microsecond, 100 * time.Millisecond
		c := newCommitter(nil)
		b := newBatcher(t, Options{Interval: interval, FlowWindow: 20, FlowIdle: 10 * time.Millisecond}, c.commit, nil, nil)
		stop := run(t, b)
		broker(t, b, n, 1000, gap)
		// 2000 messages 100us apart: 200ms, two intervals; the last batch
		// closes when the broker falls silent.
		if got, max := len(c.got()), 4; got > max {
			t.Errorf("%d commits for %d messages arriving every %v through a window of 1000; want at most %d (Interval %v)",
				got, n, gap, max, interval)
		}
		if err := stop(); err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
	})
}

// TestFlowWideWindowJitter: the same at 2000 messages per second arriving at
// random, whose gaps often exceed the mean several times.
func TestFlowWideWindowJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, mean, interval = 1000, 500 * time.Microsecond, 100 * time.Millisecond
		c := newCommitter(nil)
		b := newBatcher(t, Options{Interval: interval, FlowWindow: 20, FlowIdle: 10 * time.Millisecond}, c.commit, nil, nil)
		stop := run(t, b)
		broker(t, b, n, 1000, -mean)
		// About 500ms: five intervals, and a few batches closed by a pause
		// of 4 times the 90th percentile gap (e^-9 of the gaps are that long).
		if got, max := len(c.got()), 10; got > max {
			t.Errorf("%d commits for %d messages arriving at random every %v on average; want at most %d (Interval %v)",
				got, n, mean, max, interval)
		}
		if err := stop(); err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
	})
}

// TestFlowWindowShrinks: after a wide window, a broker that holds to a
// narrow one costs one Interval, not one per batch.
func TestFlowWindowShrinks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval, commit = 100 * time.Millisecond, time.Millisecond
		c := newCommitter(func(context.Context, int) error { time.Sleep(commit); return nil })
		b := newBatcher(t, Options{Interval: interval, FlowWindow: 20, FlowIdle: 10 * time.Millisecond}, c.commit, nil, nil)
		stop := run(t, b)
		broker(t, b, 2000, 1000, 100*time.Microsecond)
		start := time.Now()
		broker(t, b, 2000, 20, 0)
		if took, max := time.Since(start), 2*interval+100*(commit+time.Millisecond); took > max {
			t.Errorf("2000 messages through a window of 20, after a window of 1000, took %v; want at most %v (an interval or two to learn, then 100 rounds)", took, max)
		}
		if err := stop(); err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
	})
}

func TestFlowIdleNegative(t *testing.T) {
	if _, err := New(Options{FlowIdle: -time.Millisecond}, func(context.Context, *Batch) error { return nil }, nil, nil); err == nil {
		t.Error("New with FlowIdle -1ms = nil error; want one naming flow idle")
	}
}
