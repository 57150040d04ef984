package uplink

import (
	"fmt"
	"math"
	"sync"
	"time"

	edgegw "github.com/edgegw/edgegw"
	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

var encoders = sync.Pool{New: func() any { return new(lineprotocol.Encoder) }}

// AppendLine appends r to dst as one line of InfluxDB line protocol, with a
// trailing newline: the measurement and tags of r.Series, the fields in
// order (an Integer field as an integer, "5i", the others as floats), and
// r.Start as the timestamp in nanoseconds. On error dst is returned
// unchanged; the error names the rollup and what is wrong with it (a
// malformed series key, no fields, a NaN or infinite value, an integer field
// that is not a whole int64).
func AppendLine(dst []byte, r edgegw.Rollup) ([]byte, error) {
	measurement, tags, err := edgegw.SplitSeriesKey(r.Series)
	if err != nil {
		return dst, fmt.Errorf("encode rollup: %w", err)
	}
	if len(r.Fields) == 0 {
		return dst, fmt.Errorf("encode rollup %s at %d: no fields", r.Series, r.Start)
	}
	enc := encoders.Get().(*lineprotocol.Encoder)
	defer func() {
		enc.SetBuffer(nil)
		encoders.Put(enc)
	}()
	enc.SetBuffer(dst)
	enc.StartLine(measurement)
	for _, t := range tags {
		enc.AddTag(t.Key, t.Value)
	}
	for _, f := range r.Fields {
		var v lineprotocol.Value
		if f.Integer {
			if f.Value != math.Trunc(f.Value) || f.Value < -(1<<63) || f.Value >= 1<<63 {
				return dst, fmt.Errorf("encode rollup %s at %d: integer field %s = %v is not a whole int64", r.Series, r.Start, f.Name, f.Value)
			}
			v = lineprotocol.IntValue(int64(f.Value))
		} else {
			var ok bool
			if v, ok = lineprotocol.FloatValue(f.Value); !ok {
				return dst, fmt.Errorf("encode rollup %s at %d: field %s = %v; want a finite number", r.Series, r.Start, f.Name, f.Value)
			}
		}
		enc.AddField(f.Name, v)
	}
	enc.EndLine(time.Unix(0, r.Start))
	if err := enc.Err(); err != nil {
		return dst, fmt.Errorf("encode rollup %s at %d: %w", r.Series, r.Start, err)
	}
	return enc.Bytes(), nil
}
