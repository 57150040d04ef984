package mqtt

import (
	"fmt"
	"strings"

	"github.com/edgegw/edgegw"
)

// levelKind says what one level of a topic template matches.
type levelKind uint8

const (
	levelLiteral     levelKind = iota // the level's text, as is
	levelTag                          // {name}: any one level, becomes tag "name"
	levelField                        // {field}: any one level, names the field
	levelMeasurement                  // {measurement}: any one level, names the measurement
	levelPlus                         // '+': any one level, ignored
	levelHash                         // '#': the rest of the topic, ignored
)

type level struct {
	kind levelKind
	text string // the literal, or the tag key
}

// template is a parsed subscription topic such as
// "sensors/{site}/{device}/{field}".
type template struct {
	text                     string
	levels                   []level
	hasField, hasMeasurement bool
}

// parseTemplate parses a subscription topic template.
func parseTemplate(s string) (*template, error) {
	if s == "" {
		return nil, fmt.Errorf("topic is empty; expected a template like sensors/{site}/{device}/{field}")
	}
	if strings.HasPrefix(s, "$share/") {
		return nil, fmt.Errorf("topic %q: use share_group instead of a $share/ prefix", s)
	}
	t := &template{text: s}
	seen := map[string]bool{}
	parts := strings.Split(s, "/")
	for i, p := range parts {
		switch {
		case p == "+":
			t.levels = append(t.levels, level{kind: levelPlus})
		case p == "#":
			if i != len(parts)-1 {
				return nil, fmt.Errorf("topic %q: '#' must be the last level", s)
			}
			t.levels = append(t.levels, level{kind: levelHash})
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") && len(p) >= 2:
			name := p[1 : len(p)-1]
			if name == "" || strings.ContainsAny(name, "{}+#") {
				return nil, fmt.Errorf("topic %q: level %q: a placeholder is {name} with a non-empty name", s, p)
			}
			if seen[name] {
				return nil, fmt.Errorf("topic %q: {%s} appears twice; each placeholder may appear once", s, name)
			}
			seen[name] = true
			switch name {
			case "field":
				t.hasField = true
				t.levels = append(t.levels, level{kind: levelField})
			case "measurement":
				t.hasMeasurement = true
				t.levels = append(t.levels, level{kind: levelMeasurement})
			default:
				t.levels = append(t.levels, level{kind: levelTag, text: name})
			}
		case strings.ContainsAny(p, "{}"):
			return nil, fmt.Errorf("topic %q: level %q: a placeholder must be a whole level, like {device}", s, p)
		case strings.ContainsAny(p, "+#"):
			return nil, fmt.Errorf("topic %q: level %q: '+' and '#' must be a whole level", s, p)
		default:
			t.levels = append(t.levels, level{kind: levelLiteral, text: p})
		}
	}
	return t, nil
}

// filter returns the MQTT subscription filter of t: each placeholder becomes
// '+'; a non-empty shareGroup prefixes "$share/<group>/".
func (t *template) filter(shareGroup string) string {
	var b strings.Builder
	if shareGroup != "" {
		b.WriteString("$share/")
		b.WriteString(shareGroup)
		b.WriteByte('/')
	}
	for i, l := range t.levels {
		if i > 0 {
			b.WriteByte('/')
		}
		switch l.kind {
		case levelLiteral:
			b.WriteString(l.text)
		case levelHash:
			b.WriteByte('#')
		default:
			b.WriteByte('+')
		}
	}
	return b.String()
}

// topicMatch is what matching a received topic against a template yields.
type topicMatch struct {
	measurement string // "" when the template has no {measurement}
	field       string // "" when the template has no {field}
	tags        []edgegw.Tag
}

// match reports whether topic matches t and, if so, what its placeholders
// hold. It follows MQTT's rules: '+' matches one level (possibly empty), '#'
// matches the rest including nothing, and a topic starting with '$' is not
// matched by a wildcard in the first level.
func (t *template) match(topic string) (topicMatch, bool) {
	var m topicMatch
	rest := topic
	more := true // rest holds at least one more level, possibly empty
	for i, l := range t.levels {
		if l.kind == levelHash {
			return m, i > 0 || !strings.HasPrefix(topic, "$")
		}
		if !more {
			return m, false
		}
		var lv string
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			lv, rest = rest[:j], rest[j+1:]
		} else {
			lv, rest, more = rest, "", false
		}
		if i == 0 && l.kind != levelLiteral && strings.HasPrefix(lv, "$") {
			return m, false
		}
		switch l.kind {
		case levelLiteral:
			if lv != l.text {
				return m, false
			}
		case levelTag:
			m.tags = append(m.tags, edgegw.Tag{Key: l.text, Value: lv})
		case levelField:
			m.field = lv
		case levelMeasurement:
			m.measurement = lv
		}
	}
	return m, !more
}

// covers reports whether every topic that u matches is also matched by t,
// so that u, listed after t, can never be the first match.
func (t *template) covers(u *template) bool {
	for i, l := range t.levels {
		if l.kind == levelHash {
			// '#' matches the rest; as the first level, not a '$' topic,
			// which u matches only through a '$' literal.
			u0 := u.levels[0]
			return i > 0 || u0.kind != levelLiteral || !strings.HasPrefix(u0.text, "$")
		}
		if i >= len(u.levels) {
			return false
		}
		ul := u.levels[i]
		switch {
		case ul.kind == levelHash:
			return false
		case l.kind == levelLiteral:
			if ul.kind != levelLiteral || ul.text != l.text {
				return false
			}
		case i == 0 && ul.kind == levelLiteral && strings.HasPrefix(ul.text, "$"):
			// A wildcard first level does not match a '$' topic.
			return false
		}
	}
	return len(t.levels) == len(u.levels)
}
