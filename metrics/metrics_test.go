package metrics

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "edgegw_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	var ready atomic.Bool
	s := New(Options{Listen: "127.0.0.1:0", Ready: func() (bool, string) {
		return ready.Load(), "mqtt: not connected"
	}}, reg, nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	addr, err := s.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr.String()

	if code, body := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d %q, want 200", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "mqtt: not connected") {
		t.Errorf("/readyz before ready = %d %q, want 503 naming why", code, body)
	}
	ready.Store(true)
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz when ready = %d %q, want 200", code, body)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "edgegw_test_total 3") {
		t.Errorf("/metrics = %d, body lacks edgegw_test_total 3:\n%s", code, body)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
}

func TestListenInUse(t *testing.T) {
	s1 := New(Options{Listen: "127.0.0.1:0"}, prometheus.NewRegistry(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s1.Run(ctx) }()
	addr, _ := s1.Addr(ctx)
	err := New(Options{Listen: addr.String()}, prometheus.NewRegistry(), nil).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Errorf("Run on a port in use = %v, want an error naming metrics.listen", err)
	}
	cancel()
	<-errc
}
