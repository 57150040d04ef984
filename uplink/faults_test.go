package uplink

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// request is what a fake server saw of one write.
type request struct {
	at      time.Time
	method  string
	path    string
	query   string
	header  http.Header
	body    string // decompressed
	gzipped bool
}

// fakeServer answers writes with the statuses its handler picks and records
// every request. It serves only faults a real InfluxDB 1.x cannot produce.
type fakeServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []request
}

func newFakeServer(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *fakeServer {
	t.Helper()
	fs := &fakeServer{}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		gz := r.Header.Get("Content-Encoding") == "gzip"
		if gz {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				t.Errorf("request body is not gzip: %v", err)
				http.Error(w, "bad gzip", 400)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Errorf("read request body: %v", err)
		}
		fs.mu.Lock()
		n := len(fs.reqs)
		fs.reqs = append(fs.reqs, request{time.Now(), r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(b), gz})
		fs.mu.Unlock()
		answer(n, w, r)
	}))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *fakeServer) requests() []request {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]request(nil), fs.reqs...)
}

func noContent(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }

func TestV2PathAndToken(t *testing.T) {
	fs := newFakeServer(t, noContent)
	rs := sample(4)
	ob := newOutbox(rs...)
	u := newUplink(t, Options{URL: fs.URL + "/prefix/", API: "v2", Org: "my org", Bucket: "edge/autogen", Token: "s3cret", Gzip: true}, ob, nil, nil)
	if err := u.Flush(context.Background()); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	reqs := fs.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != "POST" || r.path != "/prefix/api/v2/write" {
		t.Errorf("request %s %s, want POST /prefix/api/v2/write", r.method, r.path)
	}
	if want := "bucket=edge%2Fautogen&org=my+org&precision=ns"; r.query != want {
		t.Errorf("query %q, want %q", r.query, want)
	}
	if got := r.header.Get("Authorization"); got != "Token s3cret" {
		t.Errorf("Authorization = %q, want %q", got, "Token s3cret")
	}
	if !r.gzipped {
		t.Error("body not gzip-encoded with Gzip set")
	}
	if r.body != lines(t, rs) {
		t.Errorf("body =\n%s\nwant\n%s", r.body, lines(t, rs))
	}
}

func TestV1QueryAndBasicAuth(t *testing.T) {
	fs := newFakeServer(t, noContent)
	ob := newOutbox(sample(2)...)
	u := newUplink(t, Options{URL: fs.URL, Database: "edge", RetentionPolicy: "one week", Username: "gw", Password: "pw"}, ob, nil, nil)
	if err := u.Flush(context.Background()); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	r := fs.requests()[0]
	if r.path != "/write" || r.query != "db=edge&precision=ns&rp=one+week" {
		t.Errorf("request %s?%s, want /write?db=edge&precision=ns&rp=one+week", r.path, r.query)
	}
	if r.gzipped || r.header.Get("Content-Encoding") != "" {
		t.Error("body gzip-encoded without Gzip")
	}
	req := &http.Request{Header: r.header}
	if user, pass, ok := req.BasicAuth(); !ok || user != "gw" || pass != "pw" {
		t.Errorf("basic auth = %q, %q, %v; want gw, pw", user, pass, ok)
	}
}

func TestServerErrorIsRetried(t *testing.T) {
	fs := newFakeServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n < 2 {
			http.Error(w, `{"error":"engine: cache full"}`, http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	rs := sample(3)
	ob := newOutbox(rs...)
	var logs syncBuffer
	u := newUplink(t, Options{URL: fs.URL, Database: "edge", MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond},
		ob, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	run(t, u)
	waitEmpty(t, ob, 5*time.Second)
	reqs := fs.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3 (two 500s, then 204)", len(reqs))
	}
	for i, r := range reqs {
		if r.body != lines(t, rs) {
			t.Errorf("request %d body =\n%s\nwant the same batch each time", i, r.body)
		}
	}
	if got := testutil.ToFloat64(u.mErrors.WithLabelValues("server_error")); got != 2 {
		t.Errorf("edgegw_uplink_write_errors_total{reason=server_error} = %v, want 2", got)
	}
	if got := ob.removals(); len(got) != 1 || got[0] != 3 {
		t.Errorf("removed through %v, want [3] once, after the 204", got)
	}
	log := logs.String()
	if strings.Count(log, "upstream write failed") != 1 || !strings.Contains(log, "cache full") {
		t.Errorf("want one failure line naming the server's error:\n%s", log)
	}
	if strings.Count(log, "upstream writes recovered") != 1 || !strings.Contains(log, "failed_attempts=2") {
		t.Errorf("want one recovery line with failed_attempts=2:\n%s", log)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header func() string
		status int
		want   time.Duration // RetryAfter in the WriteError, within a second
	}{
		{"429 seconds", func() string { return "2" }, http.StatusTooManyRequests, 2 * time.Second},
		{"503 HTTP date", func() string { return time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat) }, http.StatusServiceUnavailable, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", tc.header())
				http.Error(w, "slow down", tc.status)
			})
			ob := newOutbox(sample(2)...)
			u := newUplink(t, Options{URL: fs.URL, Database: "edge", MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}, ob, nil, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			err := u.Flush(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Flush() = %v, want the deadline exceeded", err)
			}
			var we *WriteError
			if !errors.As(err, &we) {
				t.Fatalf("Flush() = %v, want a *WriteError inside", err)
			}
			if we.Status != tc.status || !we.Retryable || we.Body != "slow down" {
				t.Errorf("WriteError = %+v, want status %d, retryable, body %q", we, tc.status, "slow down")
			}
			if we.RetryAfter > tc.want || we.RetryAfter < tc.want-time.Second {
				t.Errorf("RetryAfter = %v, want about %v", we.RetryAfter, tc.want)
			}
			// Without Retry-After the 1-10ms backoff would retry dozens of times.
			if n := len(fs.requests()); n != 1 {
				t.Errorf("%d requests within 500ms, want 1: Retry-After not honoured", n)
			}
			if ob.len() != 2 {
				t.Errorf("outbox holds %d rollups, want both kept", ob.len())
			}
		})
	}
	// The wait actually taken: the retry comes after Retry-After, not
	// before and not much later, and nothing leaves the outbox before the
	// 2xx.
	for _, tc := range []struct {
		name     string
		status   int
		header   func() string
		min, max time.Duration
	}{
		{"429 seconds then 204", http.StatusTooManyRequests, func() string { return "1" }, 990 * time.Millisecond, 1500 * time.Millisecond},
		// An HTTP date has whole seconds: 2 s ahead is a wait of 1 to 2 s.
		{"503 HTTP date then 204", http.StatusServiceUnavailable,
			func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }, 990 * time.Millisecond, 2500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ob *memOutbox
			var heldAtRetry atomic.Int64
			fs := newFakeServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
				if n == 0 {
					w.Header().Set("Retry-After", tc.header())
					w.WriteHeader(tc.status)
					return
				}
				heldAtRetry.Store(int64(ob.len()))
				w.WriteHeader(http.StatusNoContent)
			})
			ob = newOutbox(sample(2)...)
			u := newUplink(t, Options{URL: fs.URL, Database: "edge", MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}, ob, nil, nil)
			run(t, u)
			waitEmpty(t, ob, 5*time.Second)
			reqs := fs.requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2", len(reqs))
			}
			if gap := reqs[1].at.Sub(reqs[0].at); gap < tc.min || gap > tc.max {
				t.Errorf("retry %v after a %d with Retry-After, want between %v and %v", gap, tc.status, tc.min, tc.max)
			}
			if n := heldAtRetry.Load(); n != 2 {
				t.Errorf("outbox held %d rollups when the retry arrived, want both: nothing is removed before a 2xx", n)
			}
			if got := ob.removals(); !slices.Equal(got, []uint64{2}) {
				t.Errorf("removed through %v, want [2] once, after the 204", got)
			}
			if got := testutil.ToFloat64(u.mErrors.WithLabelValues("throttled")); got != 1 {
				t.Errorf("edgegw_uplink_write_errors_total{reason=throttled} = %v, want 1", got)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"":                                 0,
		"0":                                0,
		"-5":                               0,
		"7":                                7 * time.Second,
		" 7 ":                              7 * time.Second,
		"99999999999":                      time.Hour,
		"Thu, 02 Jan 2025 03:04:15 GMT":    10 * time.Second,
		"Thu, 02 Jan 2025 03:04:00 GMT":    0, // in the past
		"Thursday, 02-Jan-25 03:05:05 GMT": time.Minute,
		"soon":                             0,
	} {
		if got := parseRetryAfter(h, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestClientErrorIsNotRetryable(t *testing.T) {
	fs := newFakeServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"database not found: \"edge\""}`, http.StatusNotFound)
	})
	ob := newOutbox(sample(2)...)
	var logs syncBuffer
	u := newUplink(t, Options{URL: fs.URL, Database: "edge", MinBackoff: time.Millisecond, MaxBackoff: time.Second},
		ob, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := u.Flush(ctx)
	var we *WriteError
	if !errors.As(err, &we) || we.Status != 404 || we.Retryable || !strings.Contains(we.Body, "database not found") {
		t.Fatalf("Flush() = %v, want a non-retryable 404 WriteError naming the database", err)
	}
	if n := len(fs.requests()); n != 1 {
		t.Errorf("%d requests within 300ms, want 1: a 4xx waits MaxBackoff", n)
	}
	if ob.len() != 2 {
		t.Errorf("outbox holds %d rollups after a 404, want both kept", ob.len())
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "reason=rejected") {
		t.Errorf("a 4xx is not logged as an error:\n%s", logs.String())
	}
}

func TestTimeoutIsRetried(t *testing.T) {
	fs := newFakeServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 0 {
			<-r.Context().Done() // hang until the client gives up
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ob := newOutbox(sample(2)...)
	u := newUplink(t, Options{URL: fs.URL, Database: "edge", Timeout: 100 * time.Millisecond,
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}, ob, nil, nil)
	start := time.Now()
	if err := u.Flush(context.Background()); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	if took := time.Since(start); took < 100*time.Millisecond || took > 3*time.Second {
		t.Errorf("Flush took %v, want the 100ms timeout and a retry", took)
	}
	if got := testutil.ToFloat64(u.mErrors.WithLabelValues("timeout")); got != 1 {
		t.Errorf("edgegw_uplink_write_errors_total{reason=timeout} = %v, want 1", got)
	}
	if n := len(fs.requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestConnectionRefusedError(t *testing.T) {
	fs := newFakeServer(t, noContent)
	url := fs.URL
	fs.Close() // nothing listens there now
	ob := newOutbox(sample(1)...)
	u := newUplink(t, Options{URL: url, Database: "edge", MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}, ob, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := u.Flush(ctx)
	var we *WriteError
	if !errors.As(err, &we) || we.Status != 0 || !we.Retryable || !strings.Contains(we.Body, "connection refused") {
		t.Fatalf("Flush() = %v, want a retryable WriteError without status saying connection refused", err)
	}
	if ob.len() != 1 {
		t.Errorf("outbox holds %d rollups, want 1", ob.len())
	}
}
