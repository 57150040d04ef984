package uplink

import (
	"testing"

	edgegw "github.com/edgegw/edgegw"
	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// TestAppendLineTakesDecoderNames encodes rollups whose names are the
// awkward ones real payloads bring (which the decoders let through: UTF-8
// without control characters) and reads each line back with InfluxDB's
// line-protocol parser, so that no name the decoders accept makes InfluxDB
// refuse a line.
func TestAppendLineTakesDecoderNames(t *testing.T) {
	names := []string{`a b`, `a=b`, `a,b`, `"q"`, `?xml`, `@id`, `température`, `🌡`, `0x6A8D`, `a\ b`, `a\b`, `=`, ` `, `a#`}
	for _, name := range names {
		for _, r := range []edgegw.Rollup{
			{Series: edgegw.SeriesKey(name, nil), Start: 1, Fields: []edgegw.Field{{Name: "f_count", Value: 1, Integer: true}}},
			{Series: edgegw.SeriesKey("m", []edgegw.Tag{{Key: name, Value: name}}), Start: 1, Fields: []edgegw.Field{{Name: name + "_mean", Value: 1.5}}},
		} {
			line, err := AppendLine(nil, r)
			if err != nil {
				t.Errorf("AppendLine(%q) error: %v", r.Series, err)
				continue
			}
			dec := lineprotocol.NewDecoderWithBytes(line)
			if !dec.Next() {
				t.Errorf("line %q for name %q: the parser sees no point", line, name)
				continue
			}
			m, err := dec.Measurement()
			wantM, wantTags, _ := edgegw.SplitSeriesKey(r.Series)
			if err != nil || string(m) != wantM {
				t.Errorf("line %q: measurement %q, %v; want %q", line, m, err, wantM)
			}
			for _, tag := range wantTags {
				k, v, err := dec.NextTag()
				if err != nil || string(k) != tag.Key || string(v) != tag.Value {
					t.Errorf("line %q: tag %q=%q, %v; want %q=%q", line, k, v, err, tag.Key, tag.Value)
				}
			}
			if k, _, err := dec.NextTag(); err != nil || k != nil {
				t.Errorf("line %q: extra tag %q, %v", line, k, err)
			}
			k, _, err := dec.NextField()
			if err != nil || string(k) != r.Fields[0].Name {
				t.Errorf("line %q: field %q, %v; want %q", line, k, err, r.Fields[0].Name)
			}
		}
	}
}
