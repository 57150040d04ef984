// Package uplink delivers the rollups waiting in the outbox to InfluxDB as
// line protocol, over the v1 (/write) or v2 (/api/v2/write, also InfluxDB 3)
// HTTP API, and optionally prints them to a writer such as stdout.
//
// A rollup leaves the outbox only after InfluxDB answered 2xx for the request
// that carried it. Any other outcome (no connection, a timeout, 429, 5xx, and
// also 4xx) is retried with a capped exponential backoff with jitter; a
// Retry-After header on 429 or 503 sets the wait instead. Each distinct
// failure is logged once, not once per retry, and the recovery is logged.
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
// InfluxDB treats the repeat as an overwrite of the same points. A request is
// all or nothing for the outbox: with InfluxDB 1.x a "partial write" (400) is
// retried whole until an operator fixes its cause, or until the outbox cap
// drops the rollups. A 4xx other than 429 waits MaxBackoff between attempts
// and is logged as an error, since it needs an operator (credentials,
// database, field types). A rollup that cannot be expressed in line protocol
// (a NaN value, an invalid series key) is left out of its request, logged
// and counted with reason "encode", and removed with its batch.
//
// Bodies are compressed with gzip at its fastest level. Connections are kept
// alive while Run runs and closed when Run or Flush returns.
package uplink
