package store

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"testing"

	edgegw "github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/window"
)

// writtenBytes returns the bytes this process has passed to write calls
// (wchar in /proc/self/io), or -1 where that is not available.
func writtenBytes() int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("wchar: ")); ok {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// BenchmarkCommit commits one micro-batch per iteration: the state of every
// series changed in it and one rollup per series whose window closed. It
// reports the payload per checkpoint (bytes/checkpoint, also as MB/s) and
// what bbolt wrote to the file for it (written-bytes/checkpoint).
func BenchmarkCommit(b *testing.B) {
	for _, bc := range []struct{ series, rollups int }{{100, 0}, {100, 100}, {1000, 0}, {1000, 1000}} {
		b.Run(fmt.Sprintf("series=%d/rollups=%d", bc.series, bc.rollups), func(b *testing.B) {
			s, err := Open(b.TempDir(), nil, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			rd := window.Ready{Meta: make([]byte, 16)}
			value := bytes.Repeat([]byte{7}, 96) // a window's aggregate state
			payload := len(rd.Meta)
			for i := range bc.series {
				k := fmt.Appendf(nil, "sensors,device=d%04d,site=s%02d\x00%d", i, i%10, 1_700_000_000)
				rd.State = append(rd.State, window.Change{Key: k, Value: value})
				payload += len(k) + len(value)
			}
			for i := range bc.rollups {
				r := edgegw.Rollup{Series: fmt.Sprintf("sensors,device=d%04d,site=s%02d", i, i%10), Start: 1_700_000_000_000_000_000,
					Fields: []edgegw.Field{
						{Name: "temperature_count", Value: 100, Integer: true},
						{Name: "temperature_max", Value: 25.5}, {Name: "temperature_mean", Value: 21.25},
						{Name: "temperature_min", Value: 18}, {Name: "temperature_sum", Value: 2125},
					}}
				rd.Rollups = append(rd.Rollups, r)
				payload += len(appendRollup(nil, &r))
			}
			b.SetBytes(int64(payload))
			b.ReportAllocs()
			w0 := writtenBytes()
			n := 0
			for b.Loop() {
				if err := s.Commit(rd); err != nil {
					b.Fatal(err)
				}
				// The uplink keeps the outbox short.
				if n%10 == 9 {
					b.StopTimer()
					if err := s.Remove(1 << 62); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				n++
			}
			b.ReportMetric(float64(payload), "bytes/checkpoint")
			if w0 >= 0 && n > 0 {
				b.ReportMetric(float64(writtenBytes()-w0)/float64(n), "written-bytes/checkpoint")
			}
		})
	}
}
