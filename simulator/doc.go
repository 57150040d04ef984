// Package simulator publishes simulated sensor readings to an MQTT broker:
// the engine of `edgegw simulate` and of `edgegw demo`.
//
// Each device (dev1, dev2, ...) on a site (site1, site2, ...) reports two
// fields, temperature (a random walk around 21) and humidity (around 45),
// with two decimals. A message carries Batch readings (default 1), all of
// one device, its fields in turn; the devices take turns, a turn being the
// fewest messages that give each field of the device equally often.
//
// # Formats
//
// Each format below is shown with the gateway subscription (an item of
// mqtt.subscriptions in the gateway's config) that reads it into exactly the
// truth file's series (measurement sensors, tags site and device) and fields
// (temperature, humidity), for the default prefix sensors.
//
// value: the bare number on <prefix>/<site>/<device>/<field>; Batch 1 only.
// No event time: the gateway stamps the arrival time.
//
//	23.45
//
//	subscriptions:
//	  - topic: "sensors/{site}/{device}/{field}"
//	    format: value
//	    measurement: sensors
//
// json, Batch 1: one reading on <prefix>/<site>/<device>/<field>, the time
// in ms. The gateway's default subscription reads it.
//
//	{"value":23.45,"ts":1700000000000}
//
//	subscriptions:
//	  - topic: "sensors/{site}/{device}/{field}"
//	    format: json
//	    measurement: sensors
//
// json, Batch > 1: an array of flat objects on <prefix>/<site>/<device>, one
// object per event time: the readings of the message that follow one another
// with one time share an object (temperature and humidity sampled together);
// no object repeats a field. The json defaults (time_key ts, time_unit ms,
// every numeric member a field) read it.
//
//	[{"ts":1700000000000,"temperature":21.37,"humidity":44.80},{"ts":1700000000002,"temperature":21.41}]
//
//	subscriptions:
//	  - topic: "sensors/{site}/{device}"
//	    format: json
//	    measurement: sensors
//
// json with JSONNested (any Batch): the same objects, nested one level down
// as the records of {"readings":[...]}, on <prefix>/<site>/<device>:
//
//	{"readings":[{"ts":1700000000000,"temperature":21.37,"humidity":44.80}]}
//
// Read with the json defaults, a nested member would be named by its path
// (readings_0_temperature) and ts would not be the time. The truth file keeps
// the names a user configures instead: a time_key with * makes each element
// of readings a record, its own reading set with its own time, its fields
// named relative to it (temperature):
//
//	subscriptions:
//	  - topic: "sensors/{site}/{device}"
//	    format: json
//	    measurement: sensors
//	    json:
//	      time_key: "readings.*.ts"
//
// influx: InfluxDB line protocol with ns timestamps on
// <prefix>/<site>/<device>, one line per event time as for json (each line
// ends with a newline). The tags are in the line, and the topic's levels name
// the same site and device, so the topic may be read as tags or ignored:
//
//	sensors,device=dev3,site=site1 temperature=21.37,humidity=44.80 1700000000000000000
//
//	subscriptions:
//	  - topic: "sensors/+/+"
//	    format: influx
//	    measurement: sensors   # each line names its own; influx.precision: ns (the default)
//
// senml: a SenML JSON pack (RFC 8428) on <prefix>/<site>/<device>: the first
// record carries the base name "<device>:" and the base time bt, the
// earliest event time of the message in whole seconds; every record has its
// name, value and time t, its offset from bt in seconds. The device comes
// from the name (split at the separator ":"), the site from the topic:
//
//	[{"bn":"dev3:","bt":1700000000,"n":"temperature","v":21.37,"t":0.128},{"n":"humidity","v":44.80,"t":0.128}]
//
//	subscriptions:
//	  - topic: "sensors/{site}/+"
//	    format: senml
//	    measurement: sensors
//	    senml:
//	      device_separator: ":"
//
// SenML times are seconds in float64: the gateway resolves bt + t in float64
// and rounds the product with 1e9 to ns. That gives the event time exactly
// only on a grid. The float64 sum is within half a step (2^-23 s, about 119
// ns) of the exact time; the product with 1e9 is then within 119 ns of the
// time in ns, and from mid-2006 (2^60 ns) a float64 near there holds only
// multiples of 256 ns, so the product rounds to the exact time when that is
// a multiple of 256 ns: a multiple of 4 ms (4 000 000 ns = 256 × 15625 ns).
// For senml the normal readings are therefore stamped on multiples of 8 ms
// and late ones 4 ms past a multiple of 8; this holds until January 2038
// (2^31 s), where the step of a float64 of seconds doubles to 238 ns.
//
// # Event times
//
// Event times are exact and unique: per series they strictly increase, a
// normal reading is stamped with the wall clock rounded up to a multiple of
// the grid (2 ms, senml 8 ms), or one grid step past the series' previous
// reading, so the series, field and event time name one reading. On top of
// that a run can mix in
//
//   - out-of-order messages, stamped when made but published after a random
//     delay in (0, Lateness/2], or as soon as the newest event time
//     published is Lateness/2 past their earliest: a correct gateway still
//     aggregates them;
//   - late messages, whose readings are stamped Lateness + 1 h before the
//     newest event time published, half a grid step past the grid so that
//     they never collide with a normal reading: a gateway with late_policy
//     drop does not aggregate them;
//   - duplicates, exact copies (topic and payload) of one of the last 1024
//     messages: a gateway with dedup on counts them once.
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
//		Format:     "influx",
//		Batch:      10,
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
// the formats with event times (json, influx, senml); late readings need
// one.
//
// Count counts messages, of Batch readings each: a held message counts when
// it is made and is published later, so a run with Count publishes exactly
// Count messages. Held messages still waiting when Count or Duration is
// reached are published at once; on cancellation they are dropped (never
// published, so not in the truth file).
//
// At more readings per second per series than one per grid step (500, senml
// 125) event time runs ahead of the wall clock: a long run flat out can then
// reach the gateway's window.max_future. Keep Rate × Batch / (2 × Devices)
// below that for event times that follow the clock. The readings of one
// message span about Batch grid steps of event time per series: keep that
// well below the gateway's allowed lateness.
//
// Pacing is by due time (message i is due at start + i/Rate), so a stall is
// caught up with a burst rather than lost; released held messages come on
// top of the slot they were made in, so the average rate stays Rate.
//
// The same Seed gives the same readings in the same order per series, and
// the same choice of out-of-order, late and duplicated messages; the event
// times follow the wall clock and differ from run to run, and so does the
// interleaving of held messages with the others.
package simulator
