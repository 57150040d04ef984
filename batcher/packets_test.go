package batcher

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw"
)

// TestPacketsGoWithTheirCommit checks that each commit carries the packets of
// the messages whose acknowledgements wait on it: a failed commit's packets
// come again with the next one, a committed packet never does, and a zero
// Packet (a QoS 0 message, or a resend already recognised) is not handed over.
func TestPacketsGoWithTheirCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCommitter(func(ctx context.Context, n int) error {
			if n == 0 {
				return errors.New("disk full")
			}
			return nil
		})
		var a acks
		b := newBatcher(t, Options{Interval: 100 * time.Millisecond, FlowWindow: 3}, c.commit, nil, nil)
		stop := run(t, b)
		add := func(i int, pkt edgegw.Packet) {
			t.Helper()
			if err := b.Add(context.Background(), readings(i), a.ack(i), pkt); err != nil {
				t.Fatalf("Add(%d) = %v", i, err)
			}
		}
		p := func(id uint16) edgegw.Packet { return edgegw.Packet{ID: id, Hash: uint64(id) * 1000} }

		add(0, p(1))
		add(1, edgegw.Packet{})
		add(2, p(2)) // flow window: the first commit, which fails
		synctest.Wait()
		add(3, p(3))
		time.Sleep(100 * time.Millisecond) // the retry, which succeeds
		synctest.Wait()
		add(4, p(4))
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatalf("Run() = %v", err)
		}

		got := c.got()
		want := [][]edgegw.Packet{{p(1), p(2)}, {p(1), p(2), p(3)}, {p(4)}}
		if len(got) < len(want) {
			t.Fatalf("%d commits; want at least %d", len(got), len(want))
		}
		for i, w := range want {
			if !slices.Equal(got[i].packets, w) {
				t.Errorf("commit %d: packets %v; want %v", i, got[i].packets, w)
			}
		}
		for i := len(want); i < len(got); i++ {
			if len(got[i].packets) != 0 {
				t.Errorf("commit %d (after every message was committed): packets %v; want none", i, got[i].packets)
			}
		}
		if got, want := a.called(), []int{0, 1, 2, 3, 4}; !slices.Equal(got, want) {
			t.Errorf("acks called: %v; want %v", got, want)
		}
	})
}
