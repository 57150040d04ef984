package batcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for the zero values of Options, and the shortest interval.
const (
	defaultInterval    = 100 * time.Millisecond
	defaultMaxReadings = 10000
	defaultFlowWindow  = 20 // Mosquitto's max_inflight_messages
	minInterval        = time.Millisecond
	minFlowIdle        = 100 * time.Microsecond // the shortest pause taken as the broker's
)

// ErrClosed is returned by Add once Run has stopped accepting readings.
var ErrClosed = errors.New("batcher closed")

// Options configures a Batcher. A zero field takes its default.
type Options struct {
	// Interval is how long after it opened a batch closes (default 100ms,
	// at least 1ms). Run also commits at least this often, batch or not.
	Interval time.Duration
	// MaxReadings closes a batch once it holds this many readings (default
	// 10000). Add blocks while the next batch is this full.
	MaxReadings int
	// FlowWindow closes a batch once it carries this many unacknowledged
	// messages (default 20, Mosquitto's max_inflight_messages). Set it to
	// the broker's limit on unacknowledged QoS 1 messages per client.
	FlowWindow int
	// FlowIdle, when positive, keeps a batch that reached FlowWindow open
	// until the broker pauses: no message for 4 times the 90th percentile
	// of the gaps between messages, at least 100us and at most FlowIdle.
	// A broker held by its window pauses at once; one that allows more
	// unacknowledged messages keeps sending, the batcher takes the most it
	// has seen unacknowledged as the broker's window, and batches close on
	// Interval or MaxReadings instead of every FlowWindow messages, which
	// saves a commit (an fsync) per FlowWindow messages. 0 closes the batch
	// at FlowWindow at once.
	FlowIdle time.Duration
}

// Batch is what one commit covers.
type Batch struct {
	// Readings are the readings added since the previous commit; each
	// reading is handed to a commit exactly once.
	Readings []edgegw.Reading
	// Messages counts the messages whose acknowledgements wait on this
	// commit, including those carried over from failed commits.
	Messages int
	// Packets identify the QoS 1 messages among them (those added with a
	// non-zero packet), in order; the committer makes them durable with
	// the readings.
	Packets []edgegw.Packet
	// Arrived is when the newest of Readings was added; zero if none was.
	// It stands for their arrival time, which the commit may be well after.
	Arrived time.Time
}

// CommitFunc makes a batch durable. It returns nil only once the effect of
// every reading handed over so far is durable; the batch's messages are then
// acknowledged. It must not keep b, b.Readings or b.Packets after it returns.
type CommitFunc func(ctx context.Context, b *Batch) error

// Batcher gathers readings into batches and commits them.
//
// Add may be called from any number of goroutines, before and while Run runs.
// Run must be called once; the commit function is called only from Run, one
// call at a time.
type Batcher struct {
	opts   Options
	commit CommitFunc
	log    *slog.Logger
	m      metrics

	started atomic.Bool
	unacked atomic.Int64
	failing atomic.Pointer[error] // set while commits fail; see Err

	// trigger holds a token when the open batch reached MaxReadings or
	// FlowWindow.
	trigger chan struct{}

	mu       sync.Mutex
	readings []edgegw.Reading // the open batch
	acks     []func()         // the open batch's acknowledgements, in order
	packets  []edgegw.Packet  // the open batch's packets, in order
	arrived  time.Time        // when the open batch's newest readings were added
	armed    bool             // trigger was sent for the open batch
	full     bool             // the open batch reached MaxReadings
	last     time.Time        // the last Add, with FlowIdle
	gap      time.Duration    // running 90th percentile of the time between Adds, with FlowIdle
	window   int64            // the broker's window as seen, with FlowIdle: at least FlowWindow
	closed   bool
	space    chan struct{} // closed when the open batch is taken; nil if nobody waits

	// Owned by Run.
	spare    []edgegw.Reading // the other reading buffer
	pending  []func()         // acknowledgements waiting on a successful commit
	pendPkts []edgegw.Packet  // packets waiting on a successful commit
	batch    Batch
	failures int       // consecutive failed commits
	since    time.Time // when the first of them started
	logged   bool      // the series of failures was logged
}

type metrics struct {
	committed     prometheus.Counter
	batchReadings prometheus.Histogram
	commitSeconds prometheus.Histogram
	commitErrors  prometheus.Counter
}

// New returns a Batcher that passes batches to commit. A nil logger discards;
// a nil reg registers no metrics. It reports every invalid option at once.
func New(opts Options, commit CommitFunc, logger *slog.Logger, reg prometheus.Registerer) (*Batcher, error) {
	var errs []error
	switch {
	case opts.Interval == 0:
		opts.Interval = defaultInterval
	case opts.Interval < minInterval:
		errs = append(errs, fmt.Errorf("interval %v: want at least %v (0 means %v)", opts.Interval, minInterval, defaultInterval))
	}
	switch {
	case opts.MaxReadings == 0:
		opts.MaxReadings = defaultMaxReadings
	case opts.MaxReadings < 0:
		errs = append(errs, fmt.Errorf("max readings %d: want a positive number (0 means %d)", opts.MaxReadings, defaultMaxReadings))
	}
	switch {
	case opts.FlowWindow == 0:
		opts.FlowWindow = defaultFlowWindow
	case opts.FlowWindow < 0:
		errs = append(errs, fmt.Errorf("flow window %d: want a positive number (0 means %d)", opts.FlowWindow, defaultFlowWindow))
	}
	if opts.FlowIdle < 0 {
		errs = append(errs, fmt.Errorf("flow idle %v: want 0 (commit at the flow window at once) or a positive duration", opts.FlowIdle))
	}
	if commit == nil {
		errs = append(errs, errors.New("commit function is nil: want a function"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new batcher: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Batcher{
		opts:    opts,
		commit:  commit,
		log:     logger,
		trigger: make(chan struct{}, 1),
		gap:     minFlowIdle / 4, // until messages tell: the shortest pause
		window:  int64(opts.FlowWindow),
		m: metrics{
			committed: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "edgegw_batches_committed_total",
				Help: "Batches committed successfully, heartbeats included.",
			}),
			batchReadings: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name:    "edgegw_batch_readings",
				Help:    "Readings handed to each commit.",
				Buckets: []float64{0, 1, 10, 100, 1000, 10000, 100000},
			}),
			commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name:    "edgegw_commit_seconds",
				Help:    "Time each commit took.",
				Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10), // 100us .. 26s
			}),
			commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "edgegw_commit_errors_total",
				Help: "Commits that failed; their acknowledgements wait for the next commit.",
			}),
		},
	}
	if reg != nil {
		unacked := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edgegw_unacked_messages",
			Help: "Messages taken by the batcher and not yet acknowledged to the broker.",
		}, func() float64 { return float64(b.unacked.Load()) })
		for _, c := range []prometheus.Collector{b.m.committed, b.m.batchReadings, b.m.commitSeconds, b.m.commitErrors, unacked} {
			if err := reg.Register(c); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("register batcher metrics: %w", err)
		}
	}
	return b, nil
}

// Add adds the readings of one message to the open batch; ack, if not nil,
// is called once a commit covering them has succeeded, after the ack of every
// message added before. Add copies rs. rs may be empty: a message without
// readings is still acknowledged in order. A pkt other than the zero Packet
// is handed to the commit in Batch.Packets.
//
// Add blocks while the open batch holds Options.MaxReadings readings, until a
// commit takes it or ctx is done; it then returns ctx's error. It returns
// ErrClosed once Run has stopped accepting; the message then stays
// unacknowledged.
func (b *Batcher) Add(ctx context.Context, rs []edgegw.Reading, ack func(), pkt edgegw.Packet) error {
	b.mu.Lock()
	for len(b.readings) >= b.opts.MaxReadings && !b.closed {
		if b.space == nil {
			b.space = make(chan struct{})
		}
		space := b.space
		b.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return fmt.Errorf("add readings: wait for a commit: %w", ctx.Err())
		}
		b.mu.Lock()
	}
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.readings = append(b.readings, rs...)
	if len(rs) > 0 {
		b.arrived = time.Now()
	}
	if pkt.ID != 0 {
		b.packets = append(b.packets, pkt)
	}
	if ack != nil {
		b.acks = append(b.acks, ack)
		b.unacked.Add(1)
	}
	full, flow := len(b.readings) >= b.opts.MaxReadings, len(b.acks) >= b.opts.FlowWindow
	if b.opts.FlowIdle > 0 {
		// A running 90th percentile: up by 1/16 for a longer gap, down by
		// 1/144 for a shorter one. The bursts of a broker released by
		// acknowledgements keep it short (its pauses are 1 gap in
		// FlowWindow); bursty arrivals of a wider window stretch it.
		now := time.Now()
		if d := now.Sub(b.last); d > b.gap {
			b.gap += b.gap/16 + 1
		} else {
			b.gap -= b.gap / 144
		}
		b.last = now
		// The broker sent this many unacknowledged messages: its window
		// is at least that wide.
		b.window = max(b.window, b.unacked.Load())
		flow = b.atWindow()
	}
	if (!b.armed && (full || flow)) || (full && !b.full) {
		b.armed, b.full = true, full
		select {
		case b.trigger <- struct{}{}:
		default:
		}
	}
	b.mu.Unlock()
	return nil
}

// Run commits batches until ctx is done, then stops accepting readings,
// commits the open batch one last time with a context that is not cancelled,
// and returns. It returns nil, or the error of that last commit. A failed
// commit before then is logged and counted, and its acknowledgements are
// carried into the next commit. Run may be called only once.
func (b *Batcher) Run(ctx context.Context) error {
	if !b.started.CompareAndSwap(false, true) {
		return errors.New("run batcher: Run was already called")
	}
	// Stop accepting as soon as ctx is done, even while a commit runs.
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		b.close()
		close(closed)
	})
	defer func() {
		if !stop() {
			<-closed
		}
	}()

	iv := b.opts.Interval
	timer := time.NewTimer(iv)
	defer timer.Stop()
	// idle fires when the open batch, past FlowWindow, may have stopped
	// receiving (Options.FlowIdle).
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	defer idle.Stop()
	backoff := false // the last commit failed: wait for the timer
	for {
		trigger, idleC := b.trigger, idle.C
		if backoff {
			trigger, idleC = nil, nil
		}
		select {
		case <-ctx.Done():
		case <-timer.C:
			b.noteStall()
		case <-trigger:
			if wait, ok := b.flowReady(); !ok {
				if wait > 0 {
					idle.Reset(wait)
				}
				continue
			}
		case <-idleC:
			if wait, ok := b.flowReady(); !ok {
				if wait > 0 {
					idle.Reset(wait)
				}
				continue
			}
		}
		if ctx.Err() != nil {
			break
		}
		opened, err := b.commitOpen(ctx)
		next := opened.Add(iv)
		backoff = err != nil
		if backoff {
			next = time.Now().Add(iv)
		}
		timer.Reset(time.Until(next))
	}

	b.close()
	if _, err := b.commitOpen(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("commit last batch: %w", err)
	}
	return nil
}

// flowReady reports whether the open batch should be committed now because it
// reached MaxReadings, or FlowWindow and nothing arrived for FlowIdle; if not
// and it is past FlowWindow, wait is how long to look again. A batch below
// both (a stale look after a commit) is not ready, with wait 0.
func (b *Batcher) flowReady() (wait time.Duration, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !b.armed:
		return 0, false
	case b.full || b.opts.FlowIdle == 0:
		return 0, true
	case !b.atWindow():
		// Messages went on past FlowWindow: wait for the next Add at a
		// window.
		b.armed = false
		return 0, false
	}
	if since, pause := time.Since(b.last), b.pause(); since < pause {
		return pause - since, false
	}
	return 0, true
}

// atWindow reports, with FlowIdle, whether the broker may be waiting for
// acknowledgements: the open batch holds some, and the unacknowledged
// messages are exactly FlowWindow (a broker that holds to it, as Mosquitto
// does by default when no backlog is queued) or as many as the widest
// window seen. b.mu is held.
func (b *Batcher) atWindow() bool {
	total := b.unacked.Load()
	return len(b.acks) > 0 && (total == int64(b.opts.FlowWindow) || total >= b.window)
}

// pause returns how long no message must arrive, at FlowWindow or past it,
// for the broker to be taken as waiting for acknowledgements. b.mu is held.
func (b *Batcher) pause() time.Duration {
	return min(max(4*b.gap, minFlowIdle), b.opts.FlowIdle)
}

// noteStall is called when Interval closes a batch. If the broker paused with
// FlowWindow or more messages unacknowledged, that is its window: later
// batches close as soon as the broker pauses there again.
func (b *Batcher) noteStall() {
	if b.opts.FlowIdle == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if total := b.unacked.Load(); total >= int64(b.opts.FlowWindow) && time.Since(b.last) >= b.pause() {
		b.window = total
	}
}

// close makes Add return ErrClosed, also in the calls waiting for space.
func (b *Batcher) close() {
	b.mu.Lock()
	b.closed = true
	if b.space != nil {
		close(b.space)
		b.space = nil
	}
	b.mu.Unlock()
}

// commitOpen takes the open batch, opens the next one and commits the taken
// one. It returns when the next batch opened, and the commit's error, which it
// has logged unless this was the last commit or ctx is done.
func (b *Batcher) commitOpen(ctx context.Context) (opened time.Time, err error) {
	b.mu.Lock()
	rs := b.readings
	b.readings = b.spare[:0]
	b.pending = append(b.pending, b.acks...)
	clear(b.acks)
	b.acks = b.acks[:0]
	b.pendPkts = append(b.pendPkts, b.packets...)
	b.packets = b.packets[:0]
	arrived := b.arrived
	b.arrived = time.Time{}
	b.armed, b.full = false, false
	select {
	case <-b.trigger: // a token for the batch just taken
	default:
	}
	if b.space != nil {
		close(b.space)
		b.space = nil
	}
	b.mu.Unlock()
	opened = time.Now()

	b.batch = Batch{Readings: rs, Messages: len(b.pending), Packets: b.pendPkts, Arrived: arrived}
	err = b.commit(ctx, &b.batch)
	took := time.Since(opened)
	b.batch = Batch{}
	clear(rs) // drop references to the readings' strings
	b.spare = rs

	b.m.commitSeconds.Observe(took.Seconds())
	b.m.batchReadings.Observe(float64(len(rs)))
	if err != nil {
		b.m.commitErrors.Inc()
		if b.failures == 0 {
			b.since = opened
		}
		b.failures++
		ferr := fmt.Errorf("%d commits failed since %s: %w", b.failures, b.since.Format(time.RFC3339), err)
		b.failing.Store(&ferr)
		if ctx.Err() == nil && !b.closedNow() {
			b.logFailure(err, len(rs))
		}
		return opened, err
	}
	b.m.committed.Inc()
	if b.failures > 0 {
		b.failing.Store(nil)
		b.log.Info("commit succeeded again", "failed_commits", b.failures,
			"failing_for", time.Since(b.since).Round(time.Millisecond), "messages", len(b.pending))
		b.failures, b.logged = 0, false
	}
	for _, ack := range b.pending {
		ack()
	}
	b.unacked.Add(-int64(len(b.pending)))
	clear(b.pending)
	b.pending = b.pending[:0]
	b.pendPkts = b.pendPkts[:0]
	return opened, nil
}

// closedNow reports whether Add has stopped accepting, i.e. this is the last
// commit, whose error Run returns.
func (b *Batcher) closedNow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// logFailure logs the first failed commit of a series, once: the later ones
// show in Err (and so in /readyz) and in edgegw_commit_errors_total until a
// commit succeeds, which is logged too.
func (b *Batcher) logFailure(err error, readings int) {
	if b.logged {
		return
	}
	b.log.Error("commit batch; messages stay unacknowledged (the broker keeps them) and the commit is retried every interval until it succeeds",
		"err", err, "readings", readings, "messages", len(b.pending))
	b.logged = true
}

// Err returns nil if the last commit succeeded (or none has run yet), else
// an error saying how many commits in a row failed, since when, and wrapping
// the last one's error. It may be called from any goroutine.
func (b *Batcher) Err() error {
	if p := b.failing.Load(); p != nil {
		return *p
	}
	return nil
}
