// Package window is the event-time window engine of edgegw: it assigns
// readings to windows aligned to the Unix epoch, aggregates them, and turns
// each closed window into one rollup per series. It is pure and
// deterministic: no goroutines, clocks, I/O or logging. The caller feeds it
// readings with the wall time they arrived, takes the closed rollups and the
// state delta, makes them durable, then confirms; the same inputs always
// give the same outputs, also across a Restore.
//
// Window k covers [k*Slide, k*Slide+Size). Readings are aggregated in panes
// of length Slide and panes are merged when a window closes, so a reading
// costs the same whatever Size/Slide.
//
// The event clock is the latest event time seen, advanced by the wall time
// elapsed since that reading arrived; it never goes backwards. The
// watermark is the clock minus AllowedLateness, and a window [start, end)
// closes once the watermark reaches end (clock >= end + AllowedLateness):
// while readings flow, and also when sensors fall silent, on Advance.
// Closing is evaluated before every reading, so a reading is late exactly
// when the last window that could hold it has closed. Under LateDrop a
// late reading is counted and dropped. Under LateUpdate a closed window
// keeps taking readings until the watermark reaches end + AllowedLateness
// (clock >= end + 2*AllowedLateness): each such reading is aggregated and
// the corrected rollup of every closed window it changes is emitted again,
// with the same series and start, which InfluxDB treats as an overwrite.
//
// A rollup has, for every field of the series with readings in the window,
// the fields "<field>_<aggregate>" sorted by name; "_count" is an integer.
// stddev is the sample standard deviation (0 for one reading); percentiles
// come from a DDSketch with relative accuracy SketchAccuracy.
//
// # Usage
//
//	eng, err := window.New(window.Options{Size: 10 * time.Second, AllowedLateness: 5 * time.Second, Dedup: true})
//	if err != nil { ... }
//	if err := eng.Restore(st.Meta(), st.State()); err != nil { ... }
//	for batch := range batches {
//		now := time.Now()
//		eng.Add(batch.Readings, now)
//		eng.Advance(now)
//		rd := eng.Ready()
//		if err := st.Commit(rd); err == nil { // State, Meta and Rollups in one transaction
//			eng.Done(rd)
//			batch.Ack()
//		}
//	}
//
// When a commit fails, Done is not called: the next Ready holds everything
// since the last Done, the old changes and the new, with no rollup lost or
// repeated.
//
// # Caveats
//
//   - An Engine is not safe for concurrent use.
//   - Ready state values are rewritten whole whenever a pane changes; with
//     Dedup a pane's value holds every event time it has seen (about one to
//     three bytes each), so checkpoints grow with readings per series,
//     field and slide.
//   - A reading costs the same whatever Size/Slide, but closing a window
//     merges its Size/Slide panes for every series in it, so hopping
//     windows with many panes per window cost that much per rollup.
//   - Restore needs the same Size, Slide and the same choice of percentile
//     aggregates as the state was written with (ErrIncompatible); other
//     options may change across a restart.
//   - A reading stamped far in the future moves the clock and closes every
//     open window; set MaxFuture to guard against bad device clocks.
//   - An aggregate that overflows to ±Inf (a sum of huge values) is left out
//     of its rollup, as line protocol cannot carry it.
//   - Add keeps the Series and Field strings of the readings it holds; they
//     must not be modified afterwards.
package window
