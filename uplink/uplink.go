package uplink

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	edgegw "github.com/edgegw/edgegw"
	"github.com/prometheus/client_golang/prometheus"
)

// Outbox is the queue of rollups the Uplink drains; *store.Store is one.
type Outbox interface {
	// Peek returns up to max of the oldest rollups and the sequence number
	// of the last one; (nil, 0, nil) when empty.
	Peek(max int) ([]edgegw.Rollup, uint64, error)
	// Remove deletes the rollups up to sequence number through.
	Remove(through uint64) error
	// Notify receives a value after rollups were added.
	Notify() <-chan struct{}
	// DeadLetter deletes the rollups up to sequence number through, as
	// Remove does, and keeps lines, which the upstream refused for their
	// content, each with the reason at the same index, in the same
	// transaction.
	DeadLetter(through uint64, lines [][]byte, reasons []string) error
}

// Options configures an Uplink. The zero values of the durations and of
// BatchSize mean their defaults.
type Options struct {
	// URL is the InfluxDB address, http(s)://host:port, optionally with a
	// path prefix. "" means no InfluxDB: Stdout must then be set.
	URL string
	// API is "v1" (POST /write?db=&rp=&precision=ns, basic auth when
	// Username is set; InfluxDB 1.x) or "v2" (POST
	// /api/v2/write?org=&bucket=&precision=ns with "Authorization: Token
	// <Token>"; InfluxDB 2 and 3). "" means v1.
	API string
	// Database and RetentionPolicy name where v1 writes; Username and
	// Password authenticate it.
	Database, RetentionPolicy, Username, Password string
	// Org and Bucket name where v2 writes; Token authenticates it.
	Org, Bucket, Token string
	// Gzip compresses request bodies (Content-Encoding: gzip).
	Gzip bool
	// Timeout bounds one write request (default 10s).
	Timeout time.Duration
	// BatchSize is the number of rollups (lines) per request (default 5000).
	BatchSize int
	// FlushInterval is the longest time between two looks at the outbox
	// while nothing signals it (default 1s).
	FlushInterval time.Duration
	// Stdout, when set, receives every rollup as line protocol once it has
	// been written upstream; with URL "" rollups are printed and removed.
	Stdout io.Writer
	// MinBackoff and MaxBackoff bound the wait between failed attempts
	// (defaults 100ms and 30s): it doubles from MinBackoff up to MaxBackoff,
	// with jitter.
	MinBackoff, MaxBackoff time.Duration
}

// Defaults of Options.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultBatchSize     = 5000
	DefaultFlushInterval = time.Second
	DefaultMinBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
)

// maxRetryAfter bounds how long a Retry-After header can hold writes back.
const maxRetryAfter = time.Hour

// logInterval is the shortest time between two logs of unencodable rollups.
const logInterval = 10 * time.Second

// WriteError is a write the upstream did not accept.
type WriteError struct {
	// Status is the HTTP status; 0 when no response arrived (connection
	// refused, timeout, stdout failed).
	Status int
	// Retryable says whether the same write may succeed later as is: true
	// without a response, on 429 and on 5xx; false on other statuses (bad
	// credentials, unknown database, rejected data), which need an operator.
	Retryable bool
	// RetryAfter is the wait the upstream asked for with Retry-After on 429
	// or 503; 0 when it did not.
	RetryAfter time.Duration
	// Body is the start of the response body, or the transport error.
	Body string

	err error // the transport error, if any
}

func (e *WriteError) Error() string {
	if e.Status == 0 {
		return "write rollups: " + e.Body
	}
	s := fmt.Sprintf("write rollups: %d %s", e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// Unwrap returns the transport error behind a write that got no response.
func (e *WriteError) Unwrap() error { return e.err }

// Uplink drains an Outbox to InfluxDB and/or a writer. Run and Flush may be
// called from different goroutines; their writes are serialized.
type Uplink struct {
	opts     Options
	ob       Outbox
	log      *slog.Logger
	writeURL string // "" without InfluxDB
	target   string // scheme://host for logs, without credentials
	tr       *http.Transport
	client   *http.Client

	mu        sync.Mutex // guards what follows: one batch at a time
	body      []byte
	zbuf      bytes.Buffer
	zw        *gzip.Writer
	attempt   int       // failed attempts in a row
	failState string    // the failure logged last; "" while writes succeed
	failSince time.Time // first failure of the current run of failures
	lastErr   error
	encDrop   int // unencodable rollups not yet logged
	encLog    time.Time
	outLogged bool  // a Stdout failure was logged
	ends      []int // end offset in body of each line of the batch
	refusals  map[string]*refusalLog

	mDead prometheus.Counter

	mWritten prometheus.Counter
	mErrors  *prometheus.CounterVec
	mSeconds prometheus.Histogram
}

// New returns an Uplink writing ob's rollups as opts says. It checks opts and
// reports every problem at once, naming the option. A nil logger discards and
// a nil reg registers no metrics.
func New(opts Options, ob Outbox, logger *slog.Logger, reg prometheus.Registerer) (*Uplink, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if ob == nil {
		bad("outbox is nil")
	}
	if opts.API == "" {
		opts.API = "v1"
	}
	u := &Uplink{ob: ob, log: logger, target: "stdout"}
	if opts.URL == "" && opts.Stdout == nil {
		bad("URL is empty and Stdout is nil: nowhere to write; want an InfluxDB URL, Stdout or both")
	}
	switch opts.API {
	case "v1", "v2":
	default:
		bad("API %q; want v1 or v2", opts.API)
	}
	if opts.URL != "" {
		pu, err := url.Parse(opts.URL)
		switch {
		case err != nil:
			bad("URL %q: %v; want http(s)://host:port", opts.URL, err)
		case pu.Scheme != "http" && pu.Scheme != "https":
			bad("URL %q: scheme %q; want http or https", opts.URL, pu.Scheme)
		case pu.Host == "":
			bad("URL %q has no host; want http(s)://host:port", opts.URL)
		case pu.RawQuery != "" || pu.Fragment != "":
			bad("URL %q has a query or fragment; want http(s)://host:port", opts.URL)
		default:
			u.target = pu.Scheme + "://" + pu.Host
			q := url.Values{}
			path := strings.TrimSuffix(pu.Path, "/")
			switch opts.API {
			case "v1":
				if opts.Database == "" {
					bad("Database is empty; API v1 writes to a database")
				}
				path += "/write"
				q.Set("db", opts.Database)
				if opts.RetentionPolicy != "" {
					q.Set("rp", opts.RetentionPolicy)
				}
			case "v2":
				if opts.Bucket == "" {
					bad("Bucket is empty; API v2 writes to a bucket")
				}
				path += "/api/v2/write"
				if opts.Org != "" {
					q.Set("org", opts.Org)
				}
				q.Set("bucket", opts.Bucket)
			}
			q.Set("precision", "ns")
			if pu.User != nil && opts.Username == "" {
				// http://user:pass@host: the v1 credentials.
				opts.Username = pu.User.Username()
				opts.Password, _ = pu.User.Password()
			}
			pu.User = nil
			pu.Path, pu.RawPath = path, ""
			pu.RawQuery = q.Encode()
			u.writeURL = pu.String()
		}
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Timeout", &opts.Timeout, DefaultTimeout},
		{"FlushInterval", &opts.FlushInterval, DefaultFlushInterval},
		{"MinBackoff", &opts.MinBackoff, DefaultMinBackoff},
		{"MaxBackoff", &opts.MaxBackoff, DefaultMaxBackoff},
	} {
		if *d.v < 0 {
			bad("%s %v is negative; want 0 (default %v) or more", d.name, *d.v, d.def)
		}
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if opts.MinBackoff > opts.MaxBackoff {
		bad("MinBackoff %v is above MaxBackoff %v", opts.MinBackoff, opts.MaxBackoff)
	}
	if opts.BatchSize < 0 {
		bad("BatchSize %d is negative; want 0 (default %d) or more", opts.BatchSize, DefaultBatchSize)
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("configure uplink: %w", errors.Join(errs...))
	}
	u.opts = opts
	u.tr = http.DefaultTransport.(*http.Transport).Clone()
	u.client = &http.Client{Transport: u.tr, Timeout: opts.Timeout}
	u.zw, _ = gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	u.mWritten = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edgegw_rollups_written_total",
		Help: "Rollups written upstream (a 2xx from InfluxDB, or printed without InfluxDB).",
	})
	u.mErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgegw_uplink_write_errors_total",
		Help: "Failed write attempts by reason: network, timeout, throttled (429/503), server_error (5xx), rejected (other 4xx; a 400 or 422 for the content instead moves the refused rollups to the dead letters), stdout, outbox (reading or removing failed); encode counts rollups that cannot be written.",
	}, []string{"reason"})
	u.mDead = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edgegw_rollups_dead_letter_total",
		Help: "Rollups the upstream refused for their content (400 or 422, such as a field type conflict), moved from the outbox to the dead letters.",
	})
	u.mSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "edgegw_uplink_write_seconds",
		Help:    "Duration of write requests to InfluxDB.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{u.mWritten, u.mErrors, u.mSeconds, u.mDead} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("configure uplink: register metrics: %w", err)
			}
		}
	}
	return u, nil
}

// Run drains the outbox until ctx is done: it writes as soon as the outbox
// signals new rollups (and at least every FlushInterval), keeps writing while
// full batches wait, and retries failed writes with capped exponential
// backoff, honouring Retry-After. Rollups leave the outbox only once written.
// Run returns nil when ctx is done; it logs write failures rather than
// returning them.
func (u *Uplink) Run(ctx context.Context) error {
	defer u.tr.CloseIdleConnections()
	tick := time.NewTicker(u.opts.FlushInterval)
	defer tick.Stop()
	var timer *time.Timer
	for {
		_, wait := u.drain(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
				defer timer.Stop()
			} else {
				timer.Reset(wait)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-timer.C:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-u.ob.Notify():
		case <-tick.C:
		}
	}
}

// Flush writes every rollup in the outbox, retrying as Run does, and returns
// nil once the outbox is empty. When ctx is done first it returns an error
// wrapping ctx.Err() and the last write error (a *WriteError for a refused
// or failed request).
func (u *Uplink) Flush(ctx context.Context) error {
	defer u.tr.CloseIdleConnections()
	for {
		empty, wait := u.drain(ctx)
		if empty {
			return nil
		}
		if ctx.Err() == nil && wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		if err := ctx.Err(); err != nil {
			u.mu.Lock()
			last := u.lastErr
			u.mu.Unlock()
			if last != nil {
				return fmt.Errorf("flush outbox: %w; last write error: %w", err, last)
			}
			return fmt.Errorf("flush outbox: %w", err)
		}
	}
}

// drain writes batches until the outbox is empty (empty true), a batch is
// short (more may come: the caller waits for a signal) or a write fails (wait
// is how long to back off).
func (u *Uplink) drain(ctx context.Context) (empty bool, wait time.Duration) {
	for ctx.Err() == nil {
		u.mu.Lock()
		n, wait := u.batch(ctx)
		u.mu.Unlock()
		switch {
		case wait > 0:
			return false, wait
		case n == 0:
			return true, 0
		case n < u.opts.BatchSize:
			return false, 0
		}
	}
	return false, 0
}

// batch peeks one batch, writes it and removes it. It returns the number of
// rollups peeked, and the backoff after a failure. u.mu is held.
func (u *Uplink) batch(ctx context.Context) (int, time.Duration) {
	rs, through, err := u.ob.Peek(u.opts.BatchSize)
	if err != nil {
		return 1, u.failed(fmt.Errorf("read outbox: %w", err), "outbox")
	}
	if len(rs) == 0 {
		return 0, 0
	}
	u.body, u.ends = u.body[:0], u.ends[:0]
	lines, bad := 0, 0
	for _, r := range rs {
		b, err := AppendLine(u.body, r)
		if err != nil {
			bad++
			u.encodeFailed(err)
			continue
		}
		u.body = b
		u.ends = append(u.ends, len(b))
		lines++
	}
	if bad > 0 {
		u.mErrors.WithLabelValues("encode").Add(float64(bad))
	}
	if lines > 0 {
		if err := u.write(ctx, u.body); err != nil {
			if ctx.Err() != nil {
				return len(rs), 0
			}
			if we, ok := refused(err); ok {
				return len(rs), u.deadLetter(ctx, through, we)
			}
			return len(rs), u.failed(err, reason(err))
		}
	}
	if err := u.ob.Remove(through); err != nil {
		// Written but still in the outbox: it will be written again, which
		// InfluxDB treats as an overwrite of the same points.
		return len(rs), u.failed(fmt.Errorf("remove written rollups: %w", err), "outbox")
	}
	u.mWritten.Add(float64(lines))
	u.succeeded()
	return len(rs), 0
}

// write sends body (whole lines) upstream, then prints it to Stdout.
func (u *Uplink) write(ctx context.Context, body []byte) error {
	if u.writeURL != "" {
		if err := u.post(ctx, body); err != nil {
			return err
		}
	}
	return u.print(body)
}

// print copies body, written upstream, to Stdout.
func (u *Uplink) print(body []byte) error {
	if u.opts.Stdout == nil {
		return nil
	}
	_, err := u.opts.Stdout.Write(body)
	switch {
	case err == nil:
		u.outLogged = false
	case u.writeURL == "":
		// Stdout is the only destination: keep the rollups and retry.
		return &WriteError{Body: "print rollups: " + err.Error(), Retryable: true, err: err}
	case !u.outLogged:
		// Written upstream already; the copy on Stdout is lost.
		u.outLogged = true
		u.mErrors.WithLabelValues("stdout").Inc()
		u.log.Warn("print rollups to stdout", "error", err)
	default:
		u.mErrors.WithLabelValues("stdout").Inc()
	}
	return nil
}

// maxErrorBody bounds the part of an error response kept in WriteError.Body.
const maxErrorBody = 1024

func (u *Uplink) post(ctx context.Context, body []byte) error {
	payload := body
	if u.opts.Gzip {
		u.zbuf.Reset()
		u.zw.Reset(&u.zbuf)
		u.zw.Write(body) // writes to a bytes.Buffer do not fail
		if err := u.zw.Close(); err != nil {
			return fmt.Errorf("compress rollups: %w", err)
		}
		payload = u.zbuf.Bytes()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.writeURL, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("build write request: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if u.opts.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	switch {
	case u.opts.API == "v2" && u.opts.Token != "":
		req.Header.Set("Authorization", "Token "+u.opts.Token)
	case u.opts.API == "v1" && u.opts.Username != "":
		req.SetBasicAuth(u.opts.Username, u.opts.Password)
	}
	start := time.Now()
	resp, err := u.client.Do(req)
	u.mSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		// url.Error repeats the URL; say which server instead.
		msg := err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			msg = fmt.Sprintf("%s %s: %v", ue.Op, u.target, ue.Err)
		}
		return &WriteError{Retryable: true, Body: msg, err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	we := &WriteError{
		Status:    resp.StatusCode,
		Retryable: resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500,
		Body:      strings.TrimSpace(string(b)),
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		we.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return we
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// It returns 0 for an absent or unreadable header and bounds the wait to
// maxRetryAfter.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// reason is the metric label of a failed write.
func reason(err error) string {
	var we *WriteError
	if !errors.As(err, &we) {
		return "network"
	}
	switch {
	case we.Status == 0 && strings.HasPrefix(we.Body, "print rollups"):
		return "stdout"
	case we.Status == 0:
		var ne net.Error
		if errors.As(we, &ne) && ne.Timeout() {
			return "timeout"
		}
		return "network"
	case we.Status == http.StatusTooManyRequests || we.Status == http.StatusServiceUnavailable:
		return "throttled"
	case we.Status >= 500:
		return "server_error"
	default:
		return "rejected"
	}
}

// failed counts a failed attempt, logs it if it differs from the failure
// logged last, and returns how long to wait before the next attempt. u.mu is
// held.
func (u *Uplink) failed(err error, why string) time.Duration {
	u.mErrors.WithLabelValues(why).Inc()
	u.lastErr = err
	now := time.Now()
	if u.attempt == 0 {
		u.failSince = now
	}
	u.attempt++
	wait := u.backoff()
	var we *WriteError
	retryable := true
	if errors.As(err, &we) {
		if we.RetryAfter > 0 {
			wait = we.RetryAfter
		}
		if !we.Retryable {
			retryable = false
			wait = u.opts.MaxBackoff
		}
	}
	state := why
	if we != nil && we.Status != 0 {
		state = strconv.Itoa(we.Status)
	}
	if state != u.failState {
		u.failState = state
		level := slog.LevelWarn
		if !retryable {
			level = slog.LevelError
		}
		u.log.Log(context.Background(), level, "upstream write failed; retrying until it succeeds",
			"target", u.target, "reason", why, "error", err, "retry_in", wait.Round(time.Millisecond))
	}
	return wait
}

// backoff returns the wait after the u.attempt-th failure in a row: it
// doubles from MinBackoff up to MaxBackoff, then takes a random value in its
// upper half.
func (u *Uplink) backoff() time.Duration {
	d := u.opts.MinBackoff
	for i := 1; i < u.attempt && d < u.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, u.opts.MaxBackoff)
	half := d / 2
	return half + rand.N(d-half+1)
}

// succeeded ends a run of failures, logging the recovery. u.mu is held.
func (u *Uplink) succeeded() {
	if u.attempt == 0 {
		return
	}
	u.log.Info("upstream writes recovered", "target", u.target,
		"failed_attempts", u.attempt, "failing_for", time.Since(u.failSince).Round(time.Millisecond))
	u.attempt, u.failState, u.lastErr = 0, "", nil
}

// encodeFailed logs a rollup that cannot be written, at most once per
// logInterval with the number left out since. u.mu is held.
func (u *Uplink) encodeFailed(err error) {
	u.encDrop++
	now := time.Now()
	if now.Sub(u.encLog) < logInterval {
		return
	}
	u.log.Error("rollup cannot be written as line protocol; left out", "error", err, "left_out", u.encDrop)
	u.encDrop, u.encLog = 0, now
}
