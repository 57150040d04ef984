package edgegw

import (
	"reflect"
	"testing"
)

func TestSeriesKeyRoundTrip(t *testing.T) {
	cases := []struct {
		measurement string
		tags        []Tag
		want        string
	}{
		{"sensors", nil, "sensors"},
		{"sensors", []Tag{{"site", "s1"}, {"device", "d1"}}, "sensors,device=d1,site=s1"},
		{"my room,2", []Tag{{"a=b", "c d"}, {"k", "v,w\\"}}, `my\ room\,2,a\=b=c\ d,k=v\,w\\`},
		{"m", []Tag{{"empty", ""}, {"k", "v"}}, "m,k=v"},
	}
	for _, c := range cases {
		got := SeriesKey(c.measurement, c.tags)
		if got != c.want {
			t.Errorf("SeriesKey(%q, %v) = %q, want %q", c.measurement, c.tags, got, c.want)
		}
		m, tags, err := SplitSeriesKey(got)
		if err != nil {
			t.Fatalf("SplitSeriesKey(%q): %v", got, err)
		}
		var wantTags []Tag
		for _, tg := range c.tags {
			if tg.Key != "" && tg.Value != "" {
				wantTags = append(wantTags, tg)
			}
		}
		if m != c.measurement || !reflect.DeepEqual(tags, wantTags) {
			t.Errorf("SplitSeriesKey(%q) = %q, %v, want %q, %v", got, m, tags, c.measurement, wantTags)
		}
	}
}

func TestSplitSeriesKeyRejects(t *testing.T) {
	for _, key := range []string{"", ",a=b", "m,a", "m,=b", "m,a=", `m\`} {
		if _, _, err := SplitSeriesKey(key); err == nil {
			t.Errorf("SplitSeriesKey(%q) = nil error, want an error", key)
		}
	}
}
