package bench

import (
	"strings"
	"testing"

	"github.com/edgegw/edgegw/internal/testenv"
)

// The truth-file arithmetic lives in internal/testenv, shared with the end
// to end tests of cmd/edgegw.
type rollupKey = testenv.RollupKey

func expectedRollups(tb testing.TB, truth string) map[rollupKey]map[string]float64 {
	tb.Helper()
	return testenv.ExpectedRollups(tb, truth, size)
}

func influxRollups(tb testing.TB, influx *testenv.InfluxDB, db string) map[rollupKey]map[string]float64 {
	tb.Helper()
	return influx.Rollups(tb, db)
}

func compareRollups(tb testing.TB, got, want map[rollupKey]map[string]float64) {
	tb.Helper()
	testenv.CompareRollups(tb, got, want)
}

// total returns the readings the rollups count.
func total(rs map[rollupKey]map[string]float64) int64 {
	var n int64
	for _, fields := range rs {
		for name, v := range fields {
			if strings.HasSuffix(name, "_count") {
				n += int64(v)
			}
		}
	}
	return n
}
