// Package batcher gathers readings from the MQTT client into micro-batches
// and hands each batch to a committer, which makes it durable; only then are
// the batch's MQTT messages acknowledged to the broker.
//
// A batch closes when the first of three things happens: Options.Interval has
// passed since it opened, it holds Options.MaxReadings readings, or it carries
// Options.FlowWindow unacknowledged messages (the broker sends only so many
// unacknowledged QoS 1 messages, so waiting any longer would stall the flow).
// With Options.FlowIdle the last one waits until the broker also pauses, so
// that a broker allowing more unacknowledged messages than FlowWindow does not
// cause a commit every FlowWindow messages. While one commit runs the next batch keeps filling; under load batches fuse
// rather than queue, and only one commit runs at a time.
//
// # Usage
//
// The MQTT client calls Add from its message handler; Run commits:
//
//	b, err := batcher.New(batcher.Options{}, func(ctx context.Context, bt *batcher.Batch) error {
//		eng.Add(bt.Readings)
//		eng.Advance(time.Now())
//		rd := eng.Ready()
//		if err := st.Commit(ctx, rd); err != nil {
//			return err // the engine keeps the readings; the acks wait
//		}
//		eng.Done(rd)
//		return nil
//	}, logger, reg)
//	...
//	g.Go(func() error { return b.Run(ctx) }) // errgroup; ctx ends on SIGTERM
//	// in the message handler:
//	err := b.Add(ctx, readings, msg.Ack, pkt) // pkt: the message's edgegw.Packet
//
// # Caveats
//
// A batch's readings are handed to the committer exactly once. When a commit
// fails its readings are not handed over again: the committer must keep them
// (the window engine does, in memory) and make them durable with a later
// commit. The failed batch's acknowledgements are carried into the next commit
// and released only after a commit succeeds, which is retried no sooner than
// Options.Interval after the failed one returned. Failed commits are counted
// in edgegw_commit_errors_total; the first of a series is logged, once, and
// so is the commit that succeeds after them. Err reports the failures while
// they last (the gateway's /readyz says not ready).
//
// Run calls the committer at least once per Options.Interval even when no
// reading arrived (a heartbeat), so the committer can advance its watermark
// with wall time. A commit that takes longer than Options.Interval is followed
// at once by the next, which then holds everything added meanwhile.
//
// The committer must not keep a Batch, its Readings or its Packets after it
// returns: their memory is reused for a later batch. Packets, like the
// acknowledgements, are carried over a failed commit into the next one.
//
// Add blocks while a commit runs and the next batch already holds
// Options.MaxReadings readings, so memory stays near 2*MaxReadings readings and
// the broker's flow control holds the rest. A single message with more than
// MaxReadings readings is still taken whole.
//
// When Run's context is cancelled, Add returns ErrClosed; Run waits for a
// running commit, commits what is open one last time with a context that is
// not cancelled, and returns. Messages refused with ErrClosed, and those whose
// last commit failed, stay unacknowledged: the broker delivers them again to
// the next session.
package batcher
