package window

import "github.com/edgegw/edgegw"

// Ready holds everything that changed since the last Done: the caller
// persists State and Meta and appends Rollups to its outbox in one
// transaction, then calls Done. A Ready that is never passed to Done is
// contained in the next one.
type Ready struct {
	// Rollups are the windows closed (and, with LateUpdate, the closed
	// windows corrected) since the last Done, sorted by Start then Series.
	// At most one rollup per series and window is pending at a time.
	Rollups []edgegw.Rollup
	// State are the changed state entries sorted by Key; a nil Value means
	// delete Key. Keys are never empty.
	State []Change
	// Meta is the engine metadata (event clock, windows closed); always set.
	Meta []byte
	// Accepted, Late, Duplicate, Future and Invalid count the readings
	// added since the last Done by outcome: aggregated; too late for every
	// window that could take it; a repeat of a reading already held; stamped
	// more than MaxFuture ahead of the wall clock; NaN or infinite value or
	// an event time beyond ±MaxEventTime.
	Accepted, Late, Duplicate, Future, Invalid int

	eng  *Engine
	upto uint64
	at   counts
}

// Change is one state entry to put, or to delete when Value is nil.
type Change struct {
	Key, Value []byte
}
