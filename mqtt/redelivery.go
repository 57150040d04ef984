package mqtt

import "github.com/edgegw/edgegw"

// redeliveries remembers, for each packet identifier, the hash of the last
// QoS 1 message with that identifier handed to the sink: pending in a batch
// or committed. The broker reuses an identifier only once it got the
// acknowledgement of the message that held it, so a message with the DUP flag
// whose identifier and hash match the entry is a resend of a message already
// handed over; any other message replaces the entry.
//
// It costs 512 KiB and O(1) per message. It is not safe for concurrent use.
type redeliveries struct {
	hash [1 << 16]uint64 // 0: no entry
}

// seed fills the table with packets committed before, as kept by the store.
func (r *redeliveries) seed(pkts []edgegw.Packet) {
	for _, p := range pkts {
		if p.ID != 0 {
			r.hash[p.ID] = p.Hash
		}
	}
}

// reset forgets every entry: a new session at the broker redelivers nothing.
func (r *redeliveries) reset() { clear(r.hash[:]) }

// resend reports whether a message with identifier id, the DUP flag dup and
// hash h is a resend of a message already handed to the sink.
func (r *redeliveries) resend(id uint16, dup bool, h uint64) bool {
	return dup && id != 0 && r.hash[id] == h
}

// remember records that the message p was handed to the sink.
func (r *redeliveries) remember(p edgegw.Packet) {
	if p.ID != 0 {
		r.hash[p.ID] = p.Hash
	}
}

// packetHash returns the 64-bit FNV-1a hash of topic, a 0xff byte (which a
// UTF-8 topic never holds) and payload; 1 where that is 0, so that 0 means
// "no entry". The store keeps it: it must not change across versions.
func packetHash(topic string, payload []byte) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(topic); i++ {
		h ^= uint64(topic[i])
		h *= prime
	}
	h ^= 0xff
	h *= prime
	for _, c := range payload {
		h ^= uint64(c)
		h *= prime
	}
	if h == 0 {
		h = 1
	}
	return h
}
