package mqtt

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/edgegw/edgegw"
)

// maxJSONDepth bounds the nesting of the values a JSON payload may hold.
const maxJSONDepth = 64

// maxInterned bounds the field names, tag values and series keys a JSON
// decoder remembers.
const maxInterned = 100_000

// jsonDecoder decodes format json: one object or an array of objects.
type jsonDecoder struct {
	timeKey     string
	timeUnit    string
	unitNs      int64
	valueKey    string
	tagKeys     []string
	arrivalTime bool

	names  interner          // field names and tag values
	series map[string]string // series keys with payload tags
	tags   []edgegw.Tag      // scratch: the tags of the current object
	key    []byte            // scratch: a series key or an unescaped string
	str    []byte            // scratch: an unescaped member name
}

var timeUnits = map[string]int64{"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1}

func newJSONDecoder(sub Subscription, arrivalTime bool) (*jsonDecoder, error) {
	o := sub.JSON
	d := &jsonDecoder{
		timeKey:     o.TimeKey,
		timeUnit:    o.TimeUnit,
		valueKey:    o.ValueKey,
		tagKeys:     o.TagKeys,
		arrivalTime: arrivalTime,
		names:       interner{max: maxInterned},
		series:      make(map[string]string),
	}
	if d.timeUnit == "" {
		d.timeUnit = "ms"
	}
	var ok bool
	if d.unitNs, ok = timeUnits[d.timeUnit]; !ok {
		return nil, fmt.Errorf("json time_unit %q is unknown; accepted: s, ms, us, ns", o.TimeUnit)
	}
	if d.valueKey == "" {
		d.valueKey = "value"
	}
	for _, k := range o.TagKeys {
		if k == "" {
			return nil, fmt.Errorf("json tag_keys holds an empty name; list member names like [\"unit\"]")
		}
		if k == d.timeKey || k == o.ValueKey {
			return nil, fmt.Errorf("json tag_keys holds %q, which is also the time_key or value_key", k)
		}
	}
	return d, nil
}

// jsonState is the decoding of one payload.
type jsonState struct {
	d       *jsonDecoder
	t       *topicInfo
	payload []byte
	s       scanner
	arrival int64
}

func (st *jsonState) bad(format string, args ...any) error {
	return rejectPayload(reasonBadPayload, st.t.name, st.payload, "not valid JSON at byte %d: %s; format json expects an object like {\"temperature\": 23.5} or an array of them",
		st.s.i, fmt.Sprintf(format, args...))
}

func (d *jsonDecoder) decode(dst []edgegw.Reading, t *topicInfo, payload []byte, arrival int64, sk *skips) ([]edgegw.Reading, error) {
	start := len(dst)
	st := jsonState{d: d, t: t, payload: payload, s: scanner{b: payload}, arrival: arrival}
	s := &st.s
	out, err := func() ([]edgegw.Reading, error) {
		var err error
		s.ws()
		switch s.peek() {
		case '{':
			if dst, err = st.object(dst); err != nil {
				return dst, err
			}
		case '[':
			s.i++
			s.ws()
			if s.peek() == ']' {
				s.i++
				break
			}
			for {
				s.ws()
				if s.peek() != '{' {
					if !s.skipValue(0) {
						return dst, st.bad("malformed array element")
					}
					return dst, rejectPayload(reasonBadPayload, t.name, payload, "an array element is not an object; format json expects an object like {\"temperature\": 23.5} or an array of them")
				}
				if dst, err = st.object(dst); err != nil {
					return dst, err
				}
				s.ws()
				if s.peek() == ',' {
					s.i++
					continue
				}
				if s.peek() == ']' {
					s.i++
					break
				}
				return dst, st.bad("expected ',' or ']'")
			}
		case 0:
			return dst, rejectPayload(reasonNoValue, t.name, payload, "empty; format json expects an object like {\"temperature\": 23.5} or an array of them")
		default:
			if !s.skipValue(0) {
				return dst, st.bad("malformed value")
			}
			return dst, rejectPayload(reasonBadPayload, t.name, payload, "not an object; format json expects an object like {\"temperature\": 23.5} or an array of them")
		}
		s.ws()
		if s.i != len(s.b) {
			return dst, st.bad("data after the JSON value")
		}
		if len(dst) == start {
			if t.field != "" {
				return dst, rejectPayload(reasonNoValue, t.name, payload, "no readings; the topic names the field, so each object needs a number member %q", d.valueKey)
			}
			return dst, rejectPayload(reasonNoValue, t.name, payload, "no numeric member; format json expects numbers like {\"temperature\": 23.5}")
		}
		return dst, nil
	}()
	if err != nil {
		return out[:start], err
	}
	return out, nil
}

// object decodes the object at s.i.
func (st *jsonState) object(dst []edgegw.Reading) ([]edgegw.Reading, error) {
	d, t, s := st.d, st.t, &st.s
	start := len(dst)
	when := st.arrival
	ownTags := false // d.tags holds this object's tags
	found := false   // the value member was found (topic names the field)
	s.i++            // '{'
	s.ws()
	if s.peek() == '}' {
		s.i++
	} else {
		for {
			s.ws()
			if s.peek() != '"' {
				return dst, st.bad("expected a member name")
			}
			raw, esc, ok := s.str()
			if !ok {
				return dst, st.bad("malformed string")
			}
			name := raw
			if esc || !utf8.Valid(raw) {
				d.str = unescape(d.str[:0], raw)
				name = d.str
			}
			s.ws()
			if s.peek() != ':' {
				return dst, st.bad("expected ':'")
			}
			s.i++
			s.ws()
			isTime := d.timeKey != "" && string(name) == d.timeKey
			isValue := t.field != "" && string(name) == d.valueKey
			tag := -1
			for i, k := range d.tagKeys {
				if string(name) == k {
					tag = i
					break
				}
			}
			switch c := s.peek(); {
			case c == '"':
				v, esc, ok := s.str()
				if !ok {
					return dst, st.bad("malformed string")
				}
				if esc || !utf8.Valid(v) {
					d.key = unescape(d.key[:0], v)
					v = d.key
				}
				switch {
				case isTime && !d.arrivalTime:
					tm, err := time.Parse(time.RFC3339Nano, string(v))
					if err != nil || tm.Year() < 1678 || tm.Year() > 2261 {
						return dst, st.badTime(fmt.Sprintf("%q", v))
					}
					when = tm.UnixNano()
				case isTime:
				case tag >= 0:
					ownTags = st.setTag(ownTags, d.tagKeys[tag], v)
				case isValue:
					return dst, rejectPayload(reasonBadNumber, t.name, st.payload, "member %q is a string; expected a JSON number like {%q: 23.5}", d.valueKey, d.valueKey)
				}
			case c == '-' || (c >= '0' && c <= '9'):
				num, ok := s.num()
				if !ok {
					return dst, st.bad("malformed number")
				}
				switch {
				case isTime && !d.arrivalTime:
					ns, ok := unixNanos(num, d.unitNs)
					if !ok {
						return dst, st.badTime(string(num))
					}
					when = ns
				case isTime:
				case tag >= 0:
					ownTags = st.setTag(ownTags, d.tagKeys[tag], num)
				case t.field != "" && !isValue:
				case t.field == "" && len(name) == 0:
					// A member with an empty name cannot name a field.
				default:
					v, reason := parseNumber(num)
					if reason != "" {
						return dst, rejectPayload(reason, t.name, st.payload, "member %q is %s, not a finite number", name, num)
					}
					field := t.field
					if field == "" {
						field = d.names.get(name)
					}
					dst = append(dst, edgegw.Reading{Field: field, Value: v})
					found = true
				}
			case c == 't' || c == 'f' || c == 'n':
				lit, ok := s.literal()
				if !ok {
					return dst, st.bad("malformed literal")
				}
				switch {
				case isTime && !d.arrivalTime && lit != "null":
					return dst, st.badTime(lit)
				case tag >= 0 && lit != "null":
					ownTags = st.setTag(ownTags, d.tagKeys[tag], []byte(lit))
				case isValue && lit != "null":
					return dst, rejectPayload(reasonBadNumber, t.name, st.payload, "member %q is %s; expected a JSON number like {%q: 23.5}", d.valueKey, lit, d.valueKey)
				}
			case c == '{' || c == '[':
				if !s.skipValue(1) {
					return dst, st.bad("malformed or too deeply nested value")
				}
				switch {
				case isTime && !d.arrivalTime:
					return dst, st.badTime("an object or array")
				case isValue:
					return dst, rejectPayload(reasonBadNumber, t.name, st.payload, "member %q is an object or array; expected a JSON number like {%q: 23.5}", d.valueKey, d.valueKey)
				}
			default:
				return dst, st.bad("expected a value")
			}
			s.ws()
			if s.peek() == ',' {
				s.i++
				continue
			}
			if s.peek() == '}' {
				s.i++
				break
			}
			return dst, st.bad("expected ',' or '}'")
		}
	}
	if t.field != "" && !found {
		return dst, rejectPayload(reasonNoValue, t.name, st.payload, "an object has no number member %q; the topic names the field, so format json expects {%q: 23.5}", d.valueKey, d.valueKey)
	}
	series := t.series
	if ownTags {
		series = d.seriesKey(t.measurement)
	}
	for i := start; i < len(dst); i++ {
		dst[i].Series = series
		dst[i].Time = when
	}
	return dst, nil
}

func (st *jsonState) badTime(got string) error {
	d := st.d
	return rejectPayload(reasonBadTime, st.t.name, st.payload, "time member %q is %s; expected a number in %s (time_unit) or an RFC 3339 string like \"2024-05-01T12:00:00Z\", within years 1678-2261",
		d.timeKey, got, d.timeUnit)
}

// setTag sets tag key to value in d.tags, which it first fills with the
// topic's tags unless own says it already holds this object's tags.
func (st *jsonState) setTag(own bool, key string, value []byte) bool {
	d := st.d
	if !own {
		d.tags = append(d.tags[:0], st.t.tags...)
	}
	v := d.names.get(value)
	for i := range d.tags {
		if d.tags[i].Key == key {
			d.tags[i].Value = v
			return true
		}
	}
	d.tags = append(d.tags, edgegw.Tag{Key: key, Value: v})
	return true
}

// seriesKey returns the series key of measurement and d.tags.
func (d *jsonDecoder) seriesKey(measurement string) string {
	d.key = edgegw.AppendSeriesKey(d.key[:0], measurement, d.tags)
	if s, ok := d.series[string(d.key)]; ok {
		return s
	}
	if len(d.series) >= maxInterned {
		clear(d.series)
	}
	s := string(d.key)
	d.series[s] = s
	return s
}

// unixNanos converts a JSON number of time units of unitNs nanoseconds each
// to nanoseconds. Plain decimals convert exactly (digits below 1 ns are
// dropped); numbers with an exponent go through float64.
func unixNanos(num []byte, unitNs int64) (int64, bool) {
	if bytes.ContainsAny(num, "eE") {
		f, err := strconv.ParseFloat(string(num), 64)
		ns := f * float64(unitNs)
		if err != nil || math.IsNaN(ns) || ns >= math.MaxInt64 || ns <= math.MinInt64 {
			return 0, false
		}
		return int64(math.Round(ns)), true
	}
	i, neg := 0, false
	if num[0] == '-' {
		i, neg = 1, true
	}
	var whole int64
	for ; i < len(num) && num[i] != '.'; i++ {
		dg := int64(num[i] - '0')
		if whole > (math.MaxInt64-dg)/10 {
			return 0, false
		}
		whole = whole*10 + dg
	}
	if whole > math.MaxInt64/unitNs {
		return 0, false
	}
	ns := whole * unitNs
	if i < len(num) {
		i++ // '.'
		var frac int64
		for scale := unitNs; i < len(num) && scale > 1; i++ {
			scale /= 10
			frac += int64(num[i]-'0') * scale
		}
		if ns > math.MaxInt64-frac {
			return 0, false
		}
		ns += frac
	}
	if neg {
		ns = -ns
	}
	return ns, true
}

// scanner reads JSON tokens from b; it validates what it reads.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte, or 0 at the end.
func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str reads a string at s.i (at its opening quote) and returns its raw
// content and whether it holds escapes.
func (s *scanner) str() (raw []byte, esc, ok bool) {
	s.i++
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, esc, true
		case c == '\\':
			esc = true
			if s.i+1 >= len(s.b) {
				return nil, false, false
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return nil, false, false
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !isHex(h) {
						return nil, false, false
					}
				}
				s.i += 6
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		default:
			s.i++
		}
	}
	return nil, false, false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// num reads a number at s.i, following JSON's grammar.
func (s *scanner) num() ([]byte, bool) {
	start := s.i
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return nil, false
	}
	if s.peek() == '.' {
		s.i++
		if s.digits() == 0 {
			return nil, false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if s.digits() == 0 {
			return nil, false
		}
	}
	return s.b[start:s.i], true
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

// literal reads true, false or null.
func (s *scanner) literal() (string, bool) {
	for _, lit := range [...]string{"true", "false", "null"} {
		if bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
			s.i += len(lit)
			return lit, true
		}
	}
	return "", false
}

// skipValue reads and validates any value at s.i, nested at most
// maxJSONDepth deep.
func (s *scanner) skipValue(depth int) bool {
	if depth > maxJSONDepth {
		return false
	}
	switch c := s.peek(); {
	case c == '"':
		_, _, ok := s.str()
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		_, ok := s.num()
		return ok
	case c == 't' || c == 'f' || c == 'n':
		_, ok := s.literal()
		return ok
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		s.i++
		s.ws()
		if s.peek() == end {
			s.i++
			return true
		}
		for {
			s.ws()
			if c == '{' {
				if s.peek() != '"' {
					return false
				}
				if _, _, ok := s.str(); !ok {
					return false
				}
				s.ws()
				if s.peek() != ':' {
					return false
				}
				s.i++
				s.ws()
			}
			if !s.skipValue(depth + 1) {
				return false
			}
			s.ws()
			switch s.peek() {
			case ',':
				s.i++
			case end:
				s.i++
				return true
			default:
				return false
			}
		}
	}
	return false
}

// unescape appends the decoded content of a JSON string (validated by str)
// to dst; as encoding/json does, each byte of invalid UTF-8 becomes U+FFFD.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, raw[i:i+size]...)
			}
			i += size - 1
			continue
		}
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := rune(hex4(raw[i+1 : i+5]))
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					r2 = rune(hex4(raw[i+3 : i+7]))
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, raw[i])
		}
	}
	return dst
}

func hex4(b []byte) uint16 {
	var v uint16
	for _, c := range b {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= uint16(c - '0')
		case c >= 'a' && c <= 'f':
			v |= uint16(c - 'a' + 10)
		default:
			v |= uint16(c - 'A' + 10)
		}
	}
	return v
}
