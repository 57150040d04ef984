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

// filterMatches is MQTT's rule for a topic filter, written plainly from the
// specification (MQTT 3.1.1 section 4.7) as the reference for FuzzTemplate.
func filterMatches(filter, topic string) bool {
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (fl[0] == "+" || fl[0] == "#") {
		return false
	}
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

// FuzzTemplate checks the topic matcher against MQTT's filter rule: a
// template matches exactly the topics its filter does, its placeholders
// hold the levels at their places, and a template that covers another
// matches every topic the other does.
func FuzzTemplate(f *testing.F) {
	for _, s := range [][3]string{
		{"sensors/{site}/{device}/{field}", "sensors/s1/d1/temperature", "sensors/+/#"},
		{"sensors/#", "sensors", "sensors/{site}"},
		{"{measurement}/+/x/#", "$SYS/a/x/y", "#"},
		{"a//b", "a//b", "a/+/b"},
		{"#", "", "+"},
		{"tele/{device}/SENSOR", "tele/tasmota_1/SENSOR", "tele/+/+"},
		{"zigbee2mqtt/{device}", "zigbee2mqtt/bridge/state", "zigbee2mqtt/#"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, tmplText, topic, otherText string) {
		tmpl, err := parseTemplate(tmplText)
		if err != nil {
			return
		}
		filter := tmpl.filter("")
		m, ok := tmpl.match(topic)
		if want := filterMatches(filter, topic); ok != want {
			t.Fatalf("template %q (filter %q) match(%q) = %v; MQTT says %v", tmplText, filter, topic, ok, want)
		}
		if ok {
			levels := strings.Split(topic, "/")
			tags := 0
			for i, l := range tmpl.levels {
				switch l.kind {
				case levelTag:
					if m.tags[tags] != (edgegw.Tag{Key: l.text, Value: levels[i]}) {
						t.Fatalf("template %q match(%q) tag %d = %v; want %s=%q", tmplText, topic, tags, m.tags[tags], l.text, levels[i])
					}
					tags++
				case levelField:
					if m.field != levels[i] {
						t.Fatalf("template %q match(%q) field = %q; want %q", tmplText, topic, m.field, levels[i])
					}
				case levelMeasurement:
					if m.measurement != levels[i] {
						t.Fatalf("template %q match(%q) measurement = %q; want %q", tmplText, topic, m.measurement, levels[i])
					}
				}
			}
			if tags != len(m.tags) {
				t.Fatalf("template %q match(%q) gave %d tags; want %d", tmplText, topic, len(m.tags), tags)
			}
		}
		other, err := parseTemplate(otherText)
		if err != nil {
			return
		}
		if tmpl.covers(other) && filterMatches(other.filter(""), topic) && !ok {
			t.Fatalf("template %q covers %q, yet only the second matches %q", tmplText, otherText, topic)
		}
	})
}
