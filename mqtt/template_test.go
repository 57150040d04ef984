package mqtt

import (
	"reflect"
	"strings"
	"testing"

	"github.com/edgegw/edgegw"
)

func TestTemplateFilter(t *testing.T) {
	for _, tc := range []struct {
		topic, group, want string
	}{
		{"sensors/{site}/{device}/{field}", "", "sensors/+/+/+"},
		{"sensors/{site}/{device}/{field}", "gw", "$share/gw/sensors/+/+/+"},
		{"{measurement}/+/x/#", "", "+/+/x/#"},
		{"a//b", "", "a//b"},
		{"#", "", "#"},
	} {
		tmpl, err := parseTemplate(tc.topic)
		if err != nil {
			t.Fatalf("parseTemplate(%q): %v", tc.topic, err)
		}
		if got := tmpl.filter(tc.group); got != tc.want {
			t.Errorf("parseTemplate(%q).filter(%q) = %q; want %q", tc.topic, tc.group, got, tc.want)
		}
	}
}

func TestTemplateErrors(t *testing.T) {
	for _, tc := range []struct{ topic, want string }{
		{"", "topic is empty"},
		{"a/#/b", "'#' must be the last level"},
		{"a/dev{id}", "a placeholder must be a whole level"},
		{"a/{}", "non-empty name"},
		{"a/{x}/{x}", "{x} appears twice"},
		{"a/b+", "'+' and '#' must be a whole level"},
		{"$share/g/a", "use share_group"},
	} {
		_, err := parseTemplate(tc.topic)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseTemplate(%q) error = %v; want it to contain %q", tc.topic, err, tc.want)
		}
	}
}

func TestTemplateMatch(t *testing.T) {
	for _, tc := range []struct {
		tmpl, topic string
		ok          bool
		want        topicMatch
	}{
		{"sensors/{site}/{device}/{field}", "sensors/s1/d1/temperature", true,
			topicMatch{field: "temperature", tags: []edgegw.Tag{{Key: "site", Value: "s1"}, {Key: "device", Value: "d1"}}}},
		{"sensors/{site}/{device}/{field}", "sensors/s1/d1", false, topicMatch{}},
		{"sensors/{site}/{device}/{field}", "sensors/s1/d1/t/x", false, topicMatch{}},
		{"sensors/{site}/{device}/{field}", "other/s1/d1/t", false, topicMatch{}},
		{"sensors/{site}/{device}/{field}", "sensors/s1/d1/", true,
			topicMatch{field: "", tags: []edgegw.Tag{{Key: "site", Value: "s1"}, {Key: "device", Value: "d1"}}}},
		{"{measurement}/+/{field}", "weather/x/wind", true, topicMatch{measurement: "weather", field: "wind"}},
		{"a/#", "a", true, topicMatch{}},
		{"a/#", "a/b/c", true, topicMatch{}},
		{"a/#", "b", false, topicMatch{}},
		{"a/+", "a", false, topicMatch{}},
		{"a/+", "a/", true, topicMatch{}},
		{"#", "$SYS/broker/load", false, topicMatch{}},
		{"+/broker/load", "$SYS/broker/load", false, topicMatch{}},
		{"$SYS/#", "$SYS/broker/load", true, topicMatch{}},
	} {
		tmpl, err := parseTemplate(tc.tmpl)
		if err != nil {
			t.Fatalf("parseTemplate(%q): %v", tc.tmpl, err)
		}
		got, ok := tmpl.match(tc.topic)
		if ok != tc.ok || (ok && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("%q.match(%q) = %+v, %v; want %+v, %v", tc.tmpl, tc.topic, got, ok, tc.want, tc.ok)
		}
	}
}
