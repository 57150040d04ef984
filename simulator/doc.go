// Package simulator publishes simulated sensor readings to an MQTT broker:
// the engine of `edgegw simulate` and of `edgegw demo`.
//
// Each device (dev1, dev2, ...) on a site (site1, site2, ...) reports two
// fields, temperature (a random walk around 21) and humidity (around 45),
// with two decimals, one reading per message, on the topic
// <prefix>/<site>/<device>/<field>. A payload is either the bare value
// ("23.45", format value) or {"value":23.45,"ts":1700000000000} with the
// event time in ms (format json), which the gateway's default subscription
// reads.
//
// Event times are exact and unique: per series they strictly increase, a
// normal reading is stamped with the wall clock rounded up to an even
// millisecond (or 2 ms past the series' previous reading), so the series,
// field and event time name one reading. On top of that a run can mix in
//
//   - out-of-order readings, stamped when made but published after a random
//     delay in (0, Lateness/2], or as soon as the newest event time
//     published is Lateness/2 past their own: a correct gateway still
//     aggregates them;
//   - late readings, stamped Lateness + 1 h before the newest event time
//     published, on odd milliseconds so that they never collide with a
//     normal reading: a gateway with late_policy drop does not aggregate
//     them;
//   - duplicates, exact copies of one of the last 1024 messages: a gateway
//     with dedup on counts them once.
//
// The truth file lists every distinct reading once, when first published,
// as InfluxDB line protocol with its event time in ns:
//
//	sensors,device=dev3,site=site1 temperature=21.37 1700000000000000000
//	# late
//	sensors,device=dev1,site=site1 humidity=44.80 1699996394999000000
//
// A late reading's line follows the comment line "# late", which line
// protocol decoders and InfluxDB skip. From this file anyone can compute the
// rollups a correct gateway must produce: drop each line after "# late"
// (late_policy drop) and aggregate the rest per series and window.
//
// # Usage
//
//	truth, err := os.Create("truth.lp")
//	if err != nil { ... }
//	defer truth.Close()
//	stats, err := simulator.Run(ctx, simulator.Options{
//		Broker:     "tcp://127.0.0.1:1883",
//		QoS:        1,
//		Rate:       1000,
//		Duration:   time.Minute,
//		OutOfOrder: 0.05, Late: 0.01, Duplicates: 0.01,
//		Truth:      truth,
//		Progress:   os.Stderr,
//	}, logger)
//	if errors.Is(err, simulator.ErrOptions) { /* bad usage */ }
//
// Run returns after Count messages or Duration, or when ctx is cancelled,
// which is a clean stop with a nil error.
//
// # Caveats
//
// With format value the payload carries no time: the gateway stamps the
// arrival time, the truth file holds the send time, and a duplicate is a new
// reading to the gateway. Exact counts per window are only guaranteed for
// format json; late readings need it.
//
// Count counts messages: a held reading counts when it is made and is
// published later, so a run with Count publishes exactly Count messages.
// Held readings still waiting when Count or Duration is reached are
// published at once; on cancellation they are dropped (never published, so
// not in the truth file).
//
// At more than 500 readings per second per series the 2 ms step runs event
// time ahead of the wall clock: a long run flat out can then reach the
// gateway's window.max_future. Keep Rate / (2 × Devices) below 500 for event
// times that follow the clock.
//
// Pacing is by due time (message i is due at start + i/Rate), so a stall is
// caught up with a burst rather than lost; released held readings come on
// top of the slot they were made in, so the average rate stays Rate.
//
// The same Seed gives the same readings in the same order per series, and
// the same choice of out-of-order, late and duplicated messages; the event
// times follow the wall clock and differ from run to run, and so does the
// interleaving of held readings with the others.
package simulator
