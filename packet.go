package edgegw

// Packet identifies one MQTT QoS 1 message as the broker delivered it: its
// packet identifier and a hash of its topic and payload. The gateway commits
// the packets of a batch in the same transaction as the batch's effect, so
// that a broker's redelivery of a message already counted (a resend with the
// DUP flag and the same identifier, topic and payload) is recognised, also
// after a crash, and changes nothing.
//
// The zero Packet (ID 0, which MQTT never gives a QoS 1 message) stands for
// "nothing to remember": a QoS 0 message, or a resend already recognised.
type Packet struct {
	// ID is the MQTT packet identifier, 1 to 65535.
	ID uint16
	// Hash is a 64-bit hash of the topic and payload, stable across
	// processes and versions (the store keeps it); never 0.
	Hash uint64
}
