// Package store keeps the gateway's durable state in one bbolt file,
// <data_dir>/edgegw.db: the window engine's state and metadata, and the
// outbox of rollups waiting for the upstream.
//
// Each micro-batch is committed in one write transaction, fsynced before
// Commit returns: the state delta, the engine metadata and the rollups of the
// windows that closed land together or not at all. A process killed at any
// moment reopens at the last committed batch. The same transaction records
// the MQTT packets of the batch's QoS 1 messages (identifier and hash, one
// entry per identifier, at most 65535); Packets reads them back at start so
// that a broker's resend of a committed message is recognised. The outbox
// is a queue keyed by a sequence number; the uplink reads its head with Peek
// and deletes it with Remove once the upstream has accepted it.
//
// # Usage
//
//	st, err := store.Open(dir, &store.Options{MaxOutboxBytes: 256 << 20}, logger, reg)
//	if err != nil { ... } // errors.Is(err, store.ErrInUse): another gateway holds dir
//	defer st.Close()
//	err = st.Restore(eng.Restore) // once, before the first Commit
//	for batch := range batches {
//		eng.Add(batch.Readings); eng.Advance(now)
//		rd := eng.Ready()
//		if err := st.Commit(rd, batch.Packets...); err != nil { ... } // nothing of rd is durable
//		eng.Done(rd); batch.Ack()
//	}
//
// and on the uplink side:
//
//	rs, through, err := st.Peek(5000)
//	// ... write rs upstream ...
//	err = st.Remove(through)
//
// # Caveats
//
// A Store may be used from several goroutines: write transactions (Commit,
// Remove) are serialized, Peek, Outbox and Notify may run alongside them.
// Restore's callback sees copies of the stored bytes and may keep them.
//
// The file is locked while it is open: a second Open of the same data_dir, in
// this process or another, fails with ErrInUse after Options.LockTimeout.
//
// MaxOutboxBytes counts the encoded size of the rollups (their values in the
// file, not the keys or the file's own overhead); the file on disk is larger
// and, as bbolt never shrinks a file, stays at its high-water mark after the
// outbox drains. An outbox entry that cannot be decoded (a file damaged
// outside bbolt) is dropped by Peek, logged and counted as dropped, so that it
// cannot block the outbox.
package store
