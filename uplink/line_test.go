package uplink

import (
	"math"
	"strings"
	"testing"

	edgegw "github.com/edgegw/edgegw"
)

func TestAppendLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    edgegw.Rollup
		want string
	}{
		{"tags and types", edgegw.Rollup{Series: "sensors,device=d1,site=s1", Start: 1_700_000_000_000_000_000, Fields: []edgegw.Field{
			{Name: "temperature_count", Value: 3, Integer: true},
			{Name: "temperature_max", Value: 22},
			{Name: "temperature_mean", Value: 21.1234567890123},
		}}, "sensors,device=d1,site=s1 temperature_count=3i,temperature_max=22,temperature_mean=21.1234567890123 1700000000000000000\n"},
		{"no tags, epoch", edgegw.Rollup{Series: "m", Start: 0, Fields: []edgegw.Field{{Name: "x_min", Value: -0.5}}},
			"m x_min=-0.5 0\n"},
		{"before the epoch", edgegw.Rollup{Series: "m", Start: -1_000_000_000, Fields: []edgegw.Field{{Name: "x_count", Value: -2, Integer: true}}},
			"m x_count=-2i -1000000000\n"},
		{"escapes", edgegw.Rollup{Series: edgegw.SeriesKey("my sensors", []edgegw.Tag{{Key: "site", Value: "a,b=c d"}, {Key: "dev ice", Value: `x\y`}}),
			Start: 5, Fields: []edgegw.Field{{Name: "temp mean", Value: 1e300}}},
			`my\ sensors,dev\ ice=x\y,site=a\,b\=c\ d temp\ mean=1e+300 5` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AppendLine([]byte("prev\n"), tc.r)
			if err != nil {
				t.Fatalf("AppendLine(%+v) = %v", tc.r, err)
			}
			if string(got) != "prev\n"+tc.want {
				t.Errorf("AppendLine(%+v) =\n%q\nwant\n%q", tc.r, got, "prev\n"+tc.want)
			}
		})
	}
}

func TestAppendLineErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    edgegw.Rollup
		want string
	}{
		{"NaN", edgegw.Rollup{Series: "m", Fields: []edgegw.Field{{Name: "x_mean", Value: math.NaN()}}}, "field x_mean = NaN; want a finite number"},
		{"Inf", edgegw.Rollup{Series: "m", Fields: []edgegw.Field{{Name: "x_max", Value: math.Inf(1)}}}, "field x_max = +Inf"},
		{"fractional count", edgegw.Rollup{Series: "m", Fields: []edgegw.Field{{Name: "x_count", Value: 1.5, Integer: true}}}, "integer field x_count = 1.5 is not a whole int64"},
		{"huge count", edgegw.Rollup{Series: "m", Fields: []edgegw.Field{{Name: "x_count", Value: 1e19, Integer: true}}}, "not a whole int64"},
		{"no fields", edgegw.Rollup{Series: "m", Start: 7}, "encode rollup m at 7: no fields"},
		{"bad series key", edgegw.Rollup{Series: "m,tag", Fields: []edgegw.Field{{Name: "x", Value: 1}}}, "malformed series key"},
		{"empty field name", edgegw.Rollup{Series: "m", Fields: []edgegw.Field{{Name: "", Value: 1}}}, "invalid field key"},
		{"control character", edgegw.Rollup{Series: "m,site=a\nb", Fields: []edgegw.Field{{Name: "x", Value: 1}}}, "invalid tag value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("prev\n")
			got, err := AppendLine(dst, tc.r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("AppendLine(%+v) error = %v, want one containing %q", tc.r, err, tc.want)
			}
			if string(got) != "prev\n" {
				t.Errorf("AppendLine(%+v) on error returned %q, want dst unchanged", tc.r, got)
			}
		})
	}
}

func BenchmarkAppendLine(b *testing.B) {
	r := edgegw.Rollup{Series: "sensors,device=d0001,site=s01", Start: 1_700_000_000_000_000_000, Fields: []edgegw.Field{
		{Name: "temperature_count", Value: 100, Integer: true}, {Name: "temperature_max", Value: 25.5},
		{Name: "temperature_mean", Value: 21.25}, {Name: "temperature_min", Value: 18}, {Name: "temperature_sum", Value: 2125},
	}}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = AppendLine(buf[:0], r)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}
