package testenv

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Run runs a stage's run(ctx) in a goroutine and returns stop, which cancels
// ctx and waits up to 10 s for run to return; run must return nil once its
// ctx is done. stop is also called when the test ends.
func Run(t testing.TB, run func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v once its ctx was done; want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return within 10s of its ctx being cancelled")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
