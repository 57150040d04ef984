package batcher

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/edgegw/edgegw"
)

// BenchmarkAdd measures the per-message cost of Add with a commit that does
// nothing, so it includes the share of batch swaps and ack calls.
func BenchmarkAdd(b *testing.B) {
	for _, bc := range []struct {
		readings int
		ack      bool
	}{{1, false}, {1, true}, {10, true}} {
		b.Run(fmt.Sprintf("readings=%d/ack=%v", bc.readings, bc.ack), func(b *testing.B) {
			var acked atomic.Int64
			bt, err := New(Options{}, func(context.Context, *Batch) error { return nil }, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			stop := runBench(bt)
			rs := make([]edgegw.Reading, bc.readings)
			for i := range rs {
				rs[i] = reading(i)
			}
			var ack func()
			if bc.ack {
				ack = func() { acked.Add(1) }
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := bt.Add(ctx, rs, ack, edgegw.Packet{}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := stop(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkAddParallel measures Add called from several goroutines at once.
func BenchmarkAddParallel(b *testing.B) {
	bt, err := New(Options{}, func(context.Context, *Batch) error { return nil }, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	stop := runBench(bt)
	ack := func() {}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rs := []edgegw.Reading{reading(1)}
		for pb.Next() {
			if err := bt.Add(context.Background(), rs, ack, edgegw.Packet{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if err := stop(); err != nil {
		b.Fatal(err)
	}
}

func runBench(bt *Batcher) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bt.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}
