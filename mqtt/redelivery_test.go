package mqtt

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testenv"
)

// pktSink records every message with its packet, as the batcher would hand
// it to a commit; it acknowledges at once when autoAck is set.
type pktSink struct {
	autoAck bool

	mu   sync.Mutex
	msgs [][]edgegw.Reading
	pkts []edgegw.Packet
	acks []func()
}

func (s *pktSink) Add(ctx context.Context, rs []edgegw.Reading, ack func(), pkt edgegw.Packet) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, slices.Clone(rs))
	s.pkts = append(s.pkts, pkt)
	s.acks = append(s.acks, ack)
	s.mu.Unlock()
	if s.autoAck {
		ack()
	}
	return nil
}

func (s *pktSink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// got returns, per message, its values ("-" for a message without readings)
// and its packets.
func (s *pktSink) got() ([]string, []edgegw.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var vs []string
	for _, m := range s.msgs {
		if len(m) == 0 {
			vs = append(vs, "-")
			continue
		}
		vs = append(vs, fmt.Sprint(m[0].Value))
	}
	return vs, slices.Clone(s.pkts)
}

func (s *pktSink) ackAll() {
	s.mu.Lock()
	acks := slices.Clone(s.acks)
	s.mu.Unlock()
	for _, ack := range acks {
		ack()
	}
}

func resendOptions(url, clientID string) Options {
	o := baseOptions(url)
	o.ClientID = clientID
	o.CleanSession = false
	return o
}

// TestCommittedResendAfterRestartIsSkipped is the crash between a commit and
// its acknowledgements: the first session takes three value messages (stamped
// with their arrival time, so the window engine cannot recognise a repeat)
// and commits the first two, but acknowledges nothing. The next session, told
// what was committed, gets all three again from the broker: the two committed
// ones reach the sink without readings, the third is counted, and all three
// are acknowledged.
func TestCommittedResendAfterRestartIsSkipped(t *testing.T) {
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	opts := resendOptions(broker.URL(), "edgegw-resend")

	first := &pktSink{}
	c, stop := startClient(t, opts, first, nil)
	waitFor(t, 10*time.Second, "Ready", c.Ready)
	pub := publisher(t, broker.URL())
	for _, v := range []string{"1", "2", "3"} {
		pub("sensors/s1/d1/temperature", v)
	}
	waitFor(t, 10*time.Second, "3 messages at the first sink", func() bool { return first.len() == 3 })
	stop() // killed after committing messages 1 and 2: no acknowledgement sent
	_, pkts := first.got()
	for i, p := range pkts {
		if p.ID == 0 || p.Hash == 0 {
			t.Fatalf("message %d handed over with packet %+v; want a packet identifier and hash", i, p)
		}
	}

	opts.Committed = pkts[:2]
	second := &pktSink{autoAck: true}
	reg := prometheus.NewRegistry()
	c, stop = startClient(t, opts, second, reg)
	waitFor(t, 10*time.Second, "3 messages redelivered", func() bool { return second.len() >= 3 })
	waitFor(t, 10*time.Second, "Ready", c.Ready)
	time.Sleep(300 * time.Millisecond) // time for any message that should not come
	values, pkts2 := second.got()
	if want := []string{"-", "-", "3"}; !slices.Equal(values, want) {
		t.Errorf("second session got values %v; want %v (the committed resends without readings)", values, want)
	}
	if want := []edgegw.Packet{{}, {}, pkts[2]}; !slices.Equal(pkts2, want) {
		t.Errorf("second session handed over packets %v; want %v (nothing for the resends, the same packet for the third)", pkts2, want)
	}
	if got := metric(t, reg, "edgegw_mqtt_resends_skipped_total"); got != 2 {
		t.Errorf("edgegw_mqtt_resends_skipped_total = %v; want 2", got)
	}
	stop()

	third := &pktSink{autoAck: true}
	c, stop = startClient(t, opts, third, nil)
	waitFor(t, 10*time.Second, "Ready", c.Ready)
	time.Sleep(300 * time.Millisecond)
	if values, _ := third.got(); len(values) != 0 {
		t.Errorf("third session got %v; want nothing (the second acknowledged every resend)", values)
	}
	stop()
}

// TestReusedPacketIdentifierIsCounted checks that a new message is counted
// even when its identifier, topic and payload are those of a committed one:
// only a resend (DUP) can repeat a message.
func TestReusedPacketIdentifierIsCounted(t *testing.T) {
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	opts := resendOptions(broker.URL(), "edgegw-reuse")
	const topic, payload = "sensors/s1/d1/temperature", "21.5"
	h := packetHash(topic, []byte(payload))
	for id := 1; id < 1<<16; id++ { // whatever identifier the broker picks
		opts.Committed = append(opts.Committed, edgegw.Packet{ID: uint16(id), Hash: h})
	}
	// A session the broker keeps: with a new one the client forgets every
	// committed packet, as nothing can be redelivered.
	c, stop := startClient(t, resendOptions(broker.URL(), "edgegw-reuse"), &pktSink{autoAck: true}, nil)
	waitFor(t, 10*time.Second, "Ready", c.Ready)
	stop()

	sink := &pktSink{autoAck: true}
	c, _ = startClient(t, opts, sink, nil)
	waitFor(t, 10*time.Second, "Ready", c.Ready)
	pub := publisher(t, broker.URL())
	pub(topic, payload)
	pub(topic, payload)
	waitFor(t, 10*time.Second, "2 messages", func() bool { return sink.len() == 2 })
	values, pkts := sink.got()
	if want := []string{"21.5", "21.5"}; !slices.Equal(values, want) {
		t.Errorf("sink got values %v; want %v (new messages, not resends)", values, want)
	}
	for i, p := range pkts {
		if p.Hash != h {
			t.Errorf("message %d handed over with packet %+v; want hash %x", i, p, h)
		}
	}
}

// TestResendAfterReconnectIsSkipped is the connection lost between a commit
// and its acknowledgements, within one run: the broker restarts, sends the
// unacknowledged messages again with the DUP flag, and they reach the sink
// without readings; their acknowledgements clear them at the broker.
func TestResendAfterReconnectIsSkipped(t *testing.T) {
	broker := testenv.Mosquitto(t, testenv.MosquittoOptions{})
	opts := resendOptions(broker.URL(), "edgegw-reconnect")
	sink := &pktSink{}
	c, stop := startClient(t, opts, sink, nil)
	waitFor(t, 10*time.Second, "Ready", c.Ready)
	pub := publisher(t, broker.URL())
	for _, v := range []string{"1", "2"} {
		pub("sensors/s1/d1/temperature", v)
	}
	waitFor(t, 10*time.Second, "2 messages", func() bool { return sink.len() == 2 })

	broker.Stop()
	waitFor(t, 10*time.Second, "Ready false with the broker down", func() bool { return !c.Ready() })
	broker.Start()
	waitFor(t, 20*time.Second, "2 messages redelivered", func() bool { return sink.len() >= 4 })
	waitFor(t, 10*time.Second, "Ready", c.Ready)
	sink.ackAll() // the first two acks are lost with their connection
	time.Sleep(300 * time.Millisecond)
	if values, _ := sink.got(); !slices.Equal(values, []string{"1", "2", "-", "-"}) {
		t.Errorf("sink got values %v; want [1 2 - -] (the resends without readings)", values)
	}
	stop()

	next := &pktSink{autoAck: true}
	c, stop = startClient(t, opts, next, nil)
	waitFor(t, 10*time.Second, "Ready", c.Ready)
	time.Sleep(300 * time.Millisecond)
	if values, _ := next.got(); len(values) != 0 {
		t.Errorf("next session got %v; want nothing (the resends were acknowledged)", values)
	}
	stop()
}
