// Package uplink delivers the rollups waiting in the outbox to InfluxDB as
// line protocol, over the v1 (/write) or v2 (/api/v2/write, also InfluxDB 3)
// HTTP API, and optionally prints them to a writer such as stdout.
//
// A rollup leaves the outbox only after InfluxDB answered 2xx for the request
// that carried it, or after InfluxDB refused it for its content (see below).
// Any other outcome (no connection, a timeout, 429, 5xx, and the other 4xx)
// is retried with a capped exponential backoff with jitter; a Retry-After
// header on 429 or 503 sets the wait instead. Each distinct failure is
// logged once, not once per retry, and the recovery is logged.
//
// A 400 or 422 says the content is refused (a field type conflict, a point
// outside the retention policy): writing it again would fail again and
// stall every rollup behind it. The uplink then writes halves of the batch
// until each refused line stands alone (no bisection when InfluxDB's
// "partial write ... dropped=N" says every line was dropped), and moves the
// refused lines to the outbox's dead letters in the same transaction that
// removes the batch; the accepted lines are written. Refused rollups are
// counted in edgegw_rollups_dead_letter_total and logged once per distinct
// reason and 10 s; `edgegw state inspect --dead-letters` prints them.
//
// # Usage
//
//	up, err := uplink.New(uplink.Options{
//		URL: "http://127.0.0.1:8086", Database: "edge", Gzip: true,
//	}, st, logger, reg) // st is a *store.Store
//	if err != nil { ... } // names every bad option
//	g.Go(func() error { return up.Run(ctx) })
//	...
//	// on shutdown, after the last Commit:
//	err = up.Flush(shutdownCtx)
//
// # Caveats
//
// A write that succeeded upstream but whose Remove failed is written again;
// InfluxDB treats the repeat as an overwrite of the same points, as it does
// the accepted lines written again while refused ones are isolated (about
// two requests per refused line and halving). A 4xx other than 400, 422 and
// 429 waits MaxBackoff between attempts and is logged as an error, since it
// needs an operator (credentials, database). A server that answers 400 to
// every write (a misconfigured proxy) has every rollup dead-lettered: they
// are kept, not lost, and can be written again from the dead letters. A
// rollup that cannot be expressed in line protocol (a NaN value, an invalid
// series key) is left out of its request, logged and counted with reason
// "encode", and removed with its batch.
//
// Bodies are compressed with gzip at its fastest level. Connections are kept
// alive while Run runs and closed when Run or Flush returns.
package uplink
