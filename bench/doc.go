// Package bench holds the end-to-end benchmark of edgegw: real Mosquitto and
// InfluxDB, the gateway as a process and the simulator as the load, measured
// as a user would (readings per second with exact rollups, CPU seconds per
// million readings, peak RSS, and the delay from a window's close to its
// point being readable in InfluxDB), beside the ceiling of the same broker.
//
// # Usage
//
//	make bench-e2e                        # one pass, a few minutes
//	RUNS=3 make bench-e2e                 # medians of three passes
//
// # Caveats
//
// The figures are only comparable within one run on one machine: the
// load generator, Mosquitto, InfluxDB and the gateway share its cores.
// The benchmark needs mosquitto and influxd (`make deps`).
package bench
