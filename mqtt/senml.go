package mqtt

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/edgegw/edgegw"
)

// senmlAccepted says what format senml reads, for skip details and
// rejections.
const senmlAccepted = `format senml expects SenML JSON (RFC 8428): an array of records like [{"bn":"dev1:","n":"temp","u":"Cel","v":23.5}]`

// senmlVersion is the SenML version this decoder reads (RFC 8428); a pack
// with a higher bver is rejected, as RFC 8428 section 4.4 asks.
const senmlVersion = 10

// senmlRelative is 2^28 s in ns: a resolved time below it is relative to
// the arrival time (RFC 8428 section 4.5.3).
const senmlRelative = int64(1<<28) * 1e9

// The SenML labels, as indices.
const (
	lblBN = iota
	lblBT
	lblBU
	lblBV
	lblBS
	lblBVer
	lblN
	lblU
	lblV
	lblVS
	lblVB
	lblVD
	lblS
	lblT
	lblUT
	numLabels
)

var senmlLabels = [numLabels]string{"bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"}

// senmlKinds are the JSON types of the labels.
var senmlKinds = [numLabels]byte{'s', 'n', 's', 'n', 'n', 'n', 's', 's', 'n', 's', 'b', 's', 'n', 'n', 'n'}

var kindNames = map[byte]string{'s': "a string", 'n': "a number", 'b': "a boolean", 'z': "null", 'o': "an object or array"}

func senmlLabel(name []byte) int {
	switch string(name) {
	case "bn":
		return lblBN
	case "bt":
		return lblBT
	case "bu":
		return lblBU
	case "bv":
		return lblBV
	case "bs":
		return lblBS
	case "bver":
		return lblBVer
	case "n":
		return lblN
	case "u":
		return lblU
	case "v":
		return lblV
	case "vs":
		return lblVS
	case "vb":
		return lblVB
	case "vd":
		return lblVD
	case "s":
		return lblS
	case "t":
		return lblT
	case "ut":
		return lblUT
	}
	return -1
}

// senmlDecoder decodes format senml: SenML JSON (RFC 8428). Each record
// resolved as RFC 8428 section 4.6 says gives a reading of its value v
// (field: the resolved name) and of its sum s (field <name>_sum); the unit
// becomes tag unit.
type senmlDecoder struct {
	sep         []byte // device separator; nil: none
	booleans    bool
	arrivalTime bool

	names  interner          // field names
	series map[string]string // lookup key (topic series, unit, device) -> series key
	key    []byte            // scratch: a lookup key
	tags   []edgegw.Tag      // scratch: the tags of a series being built
	str    []byte            // scratch: an unescaped label
	name   []byte            // scratch: a resolved name
	sum    []byte            // scratch: a sum's field name
	unit   []byte            // scratch: an unescaped unit
	bn, bu []byte            // the base name and base unit in force
}

// newSenMLDecoder returns the decoder of format senml.
func newSenMLDecoder(sub Subscription, arrivalTime bool) (decoder, error) {
	d := &senmlDecoder{
		booleans:    sub.Booleans,
		arrivalTime: arrivalTime,
		names:       interner{max: maxInterned},
		series:      make(map[string]string),
	}
	if sep := sub.SenML.DeviceSeparator; sep != "" {
		if p := nameProblem([]byte(sep)); p != "" {
			return nil, fmt.Errorf("senml.device_separator %q: %s; use text like \":\"", sep, p)
		}
		d.sep = []byte(sep)
	}
	return d, nil
}

// senmlToken is the value of one label of a record.
type senmlToken struct {
	kind byte // 's' string, 'n' number, 'b' boolean, 'z' null, 'o' object or array
	esc  bool // a string with escapes
	raw  []byte
	lit  bool // a boolean's value
}

// senmlBase is what the base labels of earlier records set.
type senmlBase struct {
	hasBU  bool
	bt     int64 // ns
	bv, bs float64
	// bad holds, for bn, bt, bu, bv and bs, why the value in force
	// cannot be used ("" when it can).
	bad [lblBS + 1]string
}

// senmlState is the decoding of one payload.
type senmlState struct {
	d       *senmlDecoder
	t       *topicInfo
	payload []byte
	s       scanner
	arrival int64
	base    senmlBase
	rec     [numLabels]senmlToken
	seen    uint32 // labels of the current record
	tl      tally
}

func (st *senmlState) bad(format string, args ...any) error {
	return rejectPayload(reasonBadPayload, st.t.name, st.payload, "not valid JSON at byte %d: %s; %s", st.s.i, fmt.Sprintf(format, args...), senmlAccepted)
}

func (d *senmlDecoder) decode(dst []edgegw.Reading, t *topicInfo, payload []byte, arrival int64, sk *skips) ([]edgegw.Reading, error) {
	start := len(dst)
	d.bn, d.bu = d.bn[:0], d.bu[:0]
	st := senmlState{d: d, t: t, payload: payload, s: scanner{b: payload}, arrival: arrival}
	out, err := st.pack(dst)
	if err != nil {
		return out[:start], err
	}
	return out, st.tl.finish(len(out) > start, sk, t.name, payload, "no records; "+senmlAccepted)
}

// pack decodes the array of records.
func (st *senmlState) pack(dst []edgegw.Reading) ([]edgegw.Reading, error) {
	s := &st.s
	s.ws()
	switch s.peek() {
	case '[':
	case 0:
		return dst, rejectPayload(reasonNoValue, st.t.name, st.payload, "empty; %s", senmlAccepted)
	case '{':
		if !s.skipValue(1) {
			return dst, st.bad("malformed object")
		}
		return dst, rejectPayload(reasonBadPayload, st.t.name, st.payload, "a single record object; RFC 8428 requires an array of records even for one record, so only arrays are accepted: %s", senmlAccepted)
	default:
		if !s.skipValue(0) {
			return dst, st.bad("malformed value")
		}
		return dst, rejectPayload(reasonBadPayload, st.t.name, st.payload, "not an array; %s", senmlAccepted)
	}
	s.i++
	s.ws()
	if s.peek() == ']' {
		s.i++
	} else {
		for index := 0; ; index++ {
			s.ws()
			if s.peek() != '{' {
				if !s.skipValue(1) {
					return dst, st.bad("malformed array element")
				}
				return dst, rejectPayload(reasonBadPayload, st.t.name, st.payload, "element %d of the array is not an object; %s", index, senmlAccepted)
			}
			var err error
			if err = st.record(); err != nil {
				return dst, err
			}
			if dst, err = st.resolve(dst, index); err != nil {
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
	}
	s.ws()
	if s.i != len(s.b) {
		return dst, st.bad("data after the JSON value")
	}
	return dst, nil
}

// record reads the record object at s.i into st.rec and st.seen.
func (st *senmlState) record() error {
	d, s := st.d, &st.s
	st.seen = 0
	s.i++ // '{'
	s.ws()
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if s.peek() != '"' {
			return st.bad("expected a member name")
		}
		raw, esc, ok := s.str()
		if !ok {
			return st.bad("malformed string")
		}
		name := raw
		if esc {
			d.str = unescape(d.str[:0], raw)
			name = d.str
		}
		label := senmlLabel(name)
		s.ws()
		if s.peek() != ':' {
			return st.bad("expected ':'")
		}
		s.i++
		s.ws()
		if label < 0 {
			if len(name) > 0 && name[len(name)-1] == '_' {
				label := string(name)
				if !s.skipValue(2) {
					return st.bad("malformed or too deeply nested value")
				}
				return rejectPayload(reasonBadPayload, st.t.name, st.payload, "label %q ends with '_', which RFC 8428 makes mandatory to understand, and this gateway does not know it; it reads bn, bt, bu, bv, bs, bver, n, u, v, vs, vb, vd, s, t and ut", label)
			}
			// RFC 8428: other labels not understood are ignored.
			if !s.skipValue(2) {
				return st.bad("malformed or too deeply nested value")
			}
		} else {
			if st.seen&(1<<label) != 0 {
				return rejectPayload(reasonDuplicateKey, st.t.name, st.payload, "a record repeats label %q; each label may appear once in a record", senmlLabels[label])
			}
			st.seen |= 1 << label
			tok := senmlToken{}
			switch c := s.peek(); {
			case c == '"':
				v, esc, ok := s.str()
				if !ok {
					return st.bad("malformed string")
				}
				tok = senmlToken{kind: 's', esc: esc, raw: v}
			case c == '-' || (c >= '0' && c <= '9'):
				num, ok := s.num()
				if !ok {
					return st.bad("malformed number")
				}
				tok = senmlToken{kind: 'n', raw: num}
			case c == 't' || c == 'f' || c == 'n':
				switch s.literal() {
				case 0:
					return st.bad("malformed literal")
				case 'n':
					tok = senmlToken{kind: 'z'}
				case 't':
					tok = senmlToken{kind: 'b', lit: true}
				default:
					tok = senmlToken{kind: 'b'}
				}
			case c == '{' || c == '[':
				if !s.skipValue(2) {
					return st.bad("malformed or too deeply nested value")
				}
				tok = senmlToken{kind: 'o'}
			default:
				return st.bad("expected a value")
			}
			st.rec[label] = tok
		}
		s.ws()
		if s.peek() == ',' {
			s.i++
			continue
		}
		if s.peek() == '}' {
			s.i++
			return nil
		}
		return st.bad("expected ',' or '}'")
	}
}

func (st *senmlState) has(label int) bool { return st.seen&(1<<label) != 0 }

// text returns the content of string token tok, unescaped into buf. Text
// that is not valid UTF-8 is returned as it is, so that nameProblem sees it.
func text(buf []byte, tok senmlToken) []byte {
	if tok.esc && utf8.Valid(tok.raw) {
		return unescape(buf, tok.raw)
	}
	return append(buf, tok.raw...)
}

// skipRecord counts a record skipped for code.
func (st *senmlState) skipRecord(code, index int, format string, args ...any) {
	if st.tl.add(code) {
		st.tl.what[code] = fmt.Sprintf("record %d: ", index) + fmt.Sprintf(format, args...)
	}
}

// resolve applies the base labels of the record in st.rec and appends its
// readings (RFC 8428 section 4.6).
func (st *senmlState) resolve(dst []edgegw.Reading, index int) ([]edgegw.Reading, error) {
	d, b := st.d, &st.base
	// A label of the wrong type makes the record invalid; a base label of
	// the wrong type also leaves its base unusable until a record sets it
	// again.
	typeProblem := ""
	for l := range numLabels {
		if !st.has(l) || st.rec[l].kind == senmlKinds[l] {
			continue
		}
		p := fmt.Sprintf("%s is %s; RFC 8428 wants %s", senmlLabels[l], kindNames[st.rec[l].kind], kindNames[senmlKinds[l]])
		if typeProblem == "" {
			typeProblem = p
		}
		if l <= lblBS {
			b.bad[l] = fmt.Sprintf("base %s, set by record %d, is unusable: %s", senmlLabels[l], index, p)
		}
	}
	if st.has(lblBVer) && st.rec[lblBVer].kind == 'n' {
		if v, _ := strconv.ParseFloat(string(st.rec[lblBVer].raw), 64); v > senmlVersion {
			return dst, rejectPayload(reasonBadPayload, st.t.name, st.payload, "record %d: bver %s is newer than SenML version %d (RFC 8428), the one this gateway reads", index, st.rec[lblBVer].raw, senmlVersion)
		}
	}
	if tok := st.rec[lblBN]; st.has(lblBN) && tok.kind == 's' {
		d.bn, b.bad[lblBN] = text(d.bn[:0], tok), ""
	}
	if tok := st.rec[lblBU]; st.has(lblBU) && tok.kind == 's' {
		d.bu, b.hasBU, b.bad[lblBU] = text(d.bu[:0], tok), true, ""
	}
	if tok := st.rec[lblBT]; st.has(lblBT) && tok.kind == 'n' {
		if ns, ok := decimalNanos(tok.raw, 1e9); ok {
			b.bt, b.bad[lblBT] = ns, ""
		} else {
			b.bad[lblBT] = fmt.Sprintf("base time bt %s, set by record %d, is out of range: times must fit in 64-bit nanoseconds (years 1678-2262)", tok.raw, index)
		}
	}
	if tok := st.rec[lblBV]; st.has(lblBV) && tok.kind == 'n' {
		b.bv, b.bad[lblBV] = parseJSONFloat(tok.raw), ""
	}
	if tok := st.rec[lblBS]; st.has(lblBS) && tok.kind == 'n' {
		b.bs, b.bad[lblBS] = parseJSONFloat(tok.raw), ""
	}
	if typeProblem != "" {
		st.skipRecord(tallyBadRecord, index, "%s; %s", typeProblem, senmlAccepted)
		return dst, nil
	}
	if st.seen != 0 && st.seen&^(1<<lblBN|1<<lblBT|1<<lblBU|1<<lblBV|1<<lblBS|1<<lblBVer) == 0 {
		// A record of base labels only, like RFC 8428's
		// [{"bn":"urn:dev:ow:10e2073a01080063:"}, {"n":"temp",...}],
		// sets the base of the records after it and is no measurement.
		return dst, nil
	}

	// Name: bn + n.
	if p := b.bad[lblBN]; p != "" {
		st.skipRecord(tallyBadRecord, index, "%s", p)
		return dst, nil
	}
	name := append(d.name[:0], d.bn...)
	if st.has(lblN) {
		name = text(name, st.rec[lblN])
	}
	d.name = name
	if len(name) == 0 {
		st.skipRecord(tallyBadRecord, index, "no name: neither bn nor n is set; %s", senmlAccepted)
		return dst, nil
	}

	// Time: bt + t, relative to the arrival time below 2^28 s.
	when := st.arrival
	if !d.arrivalTime {
		if p := b.bad[lblBT]; p != "" {
			st.skipRecord(tallyBadRecord, index, "name %q: %s", name, p)
			return dst, nil
		}
		var t int64
		if st.has(lblT) {
			var ok bool
			if t, ok = decimalNanos(st.rec[lblT].raw, 1e9); !ok {
				st.skipRecord(tallyBadRecord, index, "name %q: time t %s is out of range: times must fit in 64-bit nanoseconds (years 1678-2262)", name, st.rec[lblT].raw)
				return dst, nil
			}
		}
		resolved, ok := senmlTime(b.bt, t, st.arrival)
		if !ok {
			st.skipRecord(tallyBadRecord, index, "name %q: time bt + t is out of range: times must fit in 64-bit nanoseconds (years 1678-2262)", name)
			return dst, nil
		}
		when = resolved
	}

	// Unit: u, else bu.
	var unit []byte
	switch {
	case st.has(lblU):
		unit = text(d.unit[:0], st.rec[lblU])
		d.unit = unit
	case b.bad[lblBU] != "":
		st.skipRecord(tallyBadRecord, index, "name %q: %s", name, b.bad[lblBU])
		return dst, nil
	case b.hasBU:
		unit = d.bu
	}
	if len(unit) > 0 {
		if p := nameProblem(unit); p != "" {
			st.skipRecord(tallyBadName, index, "name %q: unit %q: %s; tag unit takes non-empty UTF-8 text without control characters", name, unit, p)
			return dst, nil
		}
	}

	// Field and device.
	if p := nameProblem(name); p != "" {
		st.skipRecord(tallyBadName, index, "name %q: %s; a field name is non-empty UTF-8 text without control characters", name, p)
		return dst, nil
	}
	field, device := name, []byte(nil)
	if d.sep != nil {
		if i := bytes.LastIndex(name, d.sep); i >= 0 {
			device, field = name[:i], name[i+len(d.sep):]
			if len(device) == 0 || len(field) == 0 {
				st.skipRecord(tallyBadName, index, "name %q split at the last %q (senml.device_separator) leaves an empty device or field", name, d.sep)
				return dst, nil
			}
		}
	}

	// Values.
	values := 0
	for _, l := range [...]int{lblV, lblVS, lblVB, lblVD} {
		if st.has(l) {
			values++
		}
	}
	hasSum := st.has(lblS)
	switch {
	case values > 1:
		st.skipRecord(tallyBadRecord, index, "name %q: more than one of v, vs, vb and vd; RFC 8428 allows one value a record", name)
		return dst, nil
	case values == 0 && !hasSum:
		st.skipRecord(tallyBadRecord, index, "name %q: no value: none of v, vs, vb, vd and s; %s", name, senmlAccepted)
		return dst, nil
	case st.has(lblV) && b.bad[lblBV] != "":
		st.skipRecord(tallyBadRecord, index, "name %q: %s", name, b.bad[lblBV])
		return dst, nil
	case hasSum && b.bad[lblBS] != "":
		st.skipRecord(tallyBadRecord, index, "name %q: %s", name, b.bad[lblBS])
		return dst, nil
	}
	series := st.seriesKey(unit, device)
	switch {
	case st.has(lblV):
		v := b.bv + parseJSONFloat(st.rec[lblV].raw)
		if math.IsInf(v, 0) || math.IsNaN(v) {
			st.skipRecord(tallyNonFinite, index, "name %q: value bv + v (%s) is beyond float64", name, st.rec[lblV].raw)
			break
		}
		dst = append(dst, edgegw.Reading{Series: series, Field: d.names.get(field), Value: v, Time: when})
	case st.has(lblVB):
		if !d.booleans {
			st.skipRecord(tallyBooleanField, index, "name %q: vb is a boolean value; format senml reads v (numbers), s (sums) and, with booleans: true, vb as 1 and 0", name)
			break
		}
		v := 0.0
		if st.rec[lblVB].lit {
			v = 1
		}
		dst = append(dst, edgegw.Reading{Series: series, Field: d.names.get(field), Value: v, Time: when})
	case st.has(lblVS):
		st.skipRecord(tallyStringField, index, "name %q: vs is a string value; format senml reads v (numbers), s (sums) and, with booleans: true, vb", name)
	case st.has(lblVD):
		st.skipRecord(tallyStringField, index, "name %q: vd is a data value; format senml reads v (numbers), s (sums) and, with booleans: true, vb", name)
	}
	if hasSum {
		v := b.bs + parseJSONFloat(st.rec[lblS].raw)
		if math.IsInf(v, 0) || math.IsNaN(v) {
			st.skipRecord(tallyNonFinite, index, "name %q: sum bs + s is beyond float64", name)
			return dst, nil
		}
		d.sum = append(append(d.sum[:0], field...), "_sum"...)
		dst = append(dst, edgegw.Reading{Series: series, Field: d.names.get(d.sum), Value: v, Time: when})
	}
	return dst, nil
}

// seriesKey returns the series key of the topic's tags with tags unit and
// device set (when not empty), both checked with nameProblem.
func (st *senmlState) seriesKey(unit, device []byte) string {
	d, t := st.d, st.t
	if len(unit) == 0 && device == nil {
		return t.series
	}
	d.key = append(append(append(append(append(d.key[:0], t.series...), 0), unit...), 0), device...)
	if s, ok := d.series[string(d.key)]; ok {
		return s
	}
	d.tags = append(d.tags[:0], t.tags...)
	set := func(key string, value []byte) {
		if len(value) == 0 {
			return
		}
		if i := slices.IndexFunc(d.tags, func(tag edgegw.Tag) bool { return tag.Key == key }); i >= 0 {
			d.tags[i].Value = string(value) // the payload's tag wins
			return
		}
		d.tags = append(d.tags, edgegw.Tag{Key: key, Value: string(value)})
	}
	set("unit", unit)
	set("device", device)
	slices.SortFunc(d.tags, func(a, b edgegw.Tag) int { return strings.Compare(a.Key, b.Key) })
	s := string(edgegw.AppendSeriesKey(nil, t.measurement, d.tags))
	if len(d.series) >= maxInterned {
		clear(d.series)
	}
	d.series[string(d.key)] = s
	return s
}

// parseJSONFloat parses a JSON number (validated by the scanner); numbers
// beyond float64 give ±Inf.
func parseJSONFloat(num []byte) float64 {
	v, _ := strconv.ParseFloat(string(num), 64)
	return v
}

// senmlTime resolves a time of bt + t ns: relative to arrival below 2^28 s.
// It reports false when the time does not fit in int64.
func senmlTime(bt, t, arrival int64) (int64, bool) {
	if sum, ok := addInt64(bt, t); ok {
		if sum >= senmlRelative {
			return sum, true
		}
		return addInt64(arrival, sum)
	}
	if bt > 0 {
		return 0, false // beyond int64, and absolute
	}
	// Below the int64 range, so relative: arrival + bt + t may fit.
	sum := new(big.Int).Add(big.NewInt(bt), big.NewInt(t))
	sum.Add(sum, big.NewInt(arrival))
	return sum.Int64(), sum.IsInt64()
}

func addInt64(a, b int64) (int64, bool) {
	c := a + b
	if (b > 0 && c < a) || (b < 0 && c > a) {
		return 0, false
	}
	return c, true
}

// decimalNanos converts a JSON number (validated by the scanner) of units
// of unitNs nanoseconds each (1, 1e3, 1e6 or 1e9) to nanoseconds exactly,
// exponents included, digits below 1 ns dropped (toward zero). It reports
// false when the result does not fit in int64.
func decimalNanos(num []byte, unitNs int64) (int64, bool) {
	unitDigits := 0
	for u := unitNs; u >= 10; u /= 10 {
		unitDigits++
	}
	i, neg := 0, false
	if i < len(num) && num[i] == '-' {
		neg, i = true, 1
	}
	intStart := i
	for i < len(num) && num[i] >= '0' && num[i] <= '9' {
		i++
	}
	intDigits := num[intStart:i]
	var fracDigits []byte
	if i < len(num) && num[i] == '.' {
		i++
		fracStart := i
		for i < len(num) && num[i] >= '0' && num[i] <= '9' {
			i++
		}
		fracDigits = num[fracStart:i]
	}
	exp := 0
	if i < len(num) && (num[i] == 'e' || num[i] == 'E') {
		i++
		expNeg := false
		if i < len(num) && (num[i] == '+' || num[i] == '-') {
			expNeg = num[i] == '-'
			i++
		}
		for ; i < len(num); i++ {
			if exp < 100_000 {
				exp = exp*10 + int(num[i]-'0')
			}
		}
		if expNeg {
			exp = -exp
		}
	}
	// The digits D = intDigits fracDigits with the decimal point after
	// len(intDigits)+exp digits; the nanoseconds are the digits of D
	// before the point moved unitDigits further.
	digit := func(k int) byte {
		if k < len(intDigits) {
			return intDigits[k] - '0'
		}
		if k -= len(intDigits); k < len(fracDigits) {
			return fracDigits[k] - '0'
		}
		return 0
	}
	total := len(intDigits) + len(fracDigits)
	lz := 0
	for lz < total && digit(lz) == 0 {
		lz++
	}
	if lz == total {
		return 0, true
	}
	end := len(intDigits) + exp + unitDigits // digits of D that make the nanoseconds
	if end-lz > 19 {
		return 0, false
	}
	var ns int64
	for k := lz; k < end; k++ {
		dg := int64(digit(k))
		if ns > (math.MaxInt64-dg)/10 {
			return 0, false
		}
		ns = ns*10 + dg
	}
	if neg {
		ns = -ns
	}
	return ns, true
}

// skipValue reads and validates any JSON value at s.i, which sits depth
// levels deep, allowing nesting up to maxJSONDepth levels. It keeps its own
// stack, so hostile nesting costs no recursion.
func (s *scanner) skipValue(depth int) bool {
	var stack [maxJSONDepth]byte // the closing bracket of each open level
	n := 0
	for {
		// A value is due at s.i.
		s.ws()
		switch c := s.peek(); c {
		case '{', '[':
			if depth+n >= maxJSONDepth {
				return false
			}
			s.i++
			end := byte(']')
			if c == '{' {
				end = '}'
			}
			s.ws()
			if s.peek() == end {
				s.i++
				break
			}
			stack[n] = end
			n++
			if end == '}' && !s.memberName() {
				return false
			}
			continue
		default:
			if !s.scalar() {
				return false
			}
		}
		// A value ended: close levels until one goes on with ','.
		for {
			if n == 0 {
				return true
			}
			s.ws()
			c := s.peek()
			if c == stack[n-1] {
				s.i++
				n--
				continue
			}
			if c != ',' {
				return false
			}
			s.i++
			if stack[n-1] == '}' && !s.memberName() {
				return false
			}
			break
		}
	}
}

// memberName reads `"name":` at s.i, with white space around.
func (s *scanner) memberName() bool {
	s.ws()
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
	return true
}
