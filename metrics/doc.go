// Package metrics serves the gateway's HTTP endpoints for monitoring:
// /metrics (Prometheus text format), /healthz (the process is alive) and
// /readyz (the gateway is ready to take readings).
//
// # Usage
//
//	reg := prometheus.NewRegistry()
//	srv := metrics.New(metrics.Options{Listen: "127.0.0.1:9464", Ready: ready}, reg, logger)
//	err := srv.Run(ctx) // until ctx is done
//
// # Caveats
//
// Ready is called on every /readyz request and must be cheap and safe for
// concurrent use. The listener is opened by Run, so a port in use is reported
// by Run, not by New.
package metrics
