package mqtt

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/edgegw/edgegw"
)

// maxJSONDepth bounds the nesting of objects and arrays in a JSON payload,
// the outermost one included.
const maxJSONDepth = 64

// maxInterned bounds the members, tag values and series keys a JSON
// decoder remembers.
const maxInterned = 100_000

// maxJSONMemory bounds the bytes of paths, names, tag values and series
// keys a JSON decoder remembers: past it, it starts afresh at the next
// message.
const maxJSONMemory = 16 << 20

// maxJSONName bounds the length of a field name (the levels of a path
// joined) and of a tag value, so that a payload of long names nested deep
// cannot make names of quadratic size.
const maxJSONName = 1024

// jsonDecoder decodes format json: one object or an array of objects. It
// reads the payload in one pass without recursion, keeping what the options
// make of each member path in a trie (node), so that decoding a known shape
// allocates nothing.
type jsonDecoder struct {
	timeUnit    string
	unitNs      int64 // 0: auto
	timeFormat  string
	formatZone  bool           // timeFormat holds a zone
	loc         *time.Location // time_zone; nil: none
	valueKey    string
	booleans    bool
	arrivalTime bool

	// Paths by context (ctxRoot, ctxRecord).
	timePath  [2][]string
	valuePath [2][]string
	tagPaths  [2][]tagPath
	record    pattern // the path of the records; nil: none
	nameTag   string  // the tag key of a record's name, or ""
	fields    []pattern
	exclude   []pattern
	// numStrings are the numeric_strings patterns.
	numStrings []pattern

	root    *node  // paths from the root of the payload or of an element
	recRoot *node  // paths from the root of a record
	nodes   int    // in the trie
	memory  int    // bytes held by the trie, names and series
	serial  uint64 // the last object serial given

	names  interner          // tag values
	series map[string]string // series keys by topic series and payload tags

	// Scratch, reused by every message.
	stack    [maxJSONDepth]frame
	sets     []readingSet
	rootTags []edgegw.Tag // of the root being read
	recTags  []edgegw.Tag // of its records, each a range of it
	tags     []edgegw.Tag // a series' tags, sorted
	key      []byte       // a key of series
	str      []byte       // an unescaped member name
	val      []byte       // an unescaped string value
	noZone   []byte       // the first zone-less time of the message
}

var timeUnits = map[string]int64{"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1}

func newJSONDecoder(sub Subscription, arrivalTime bool) (*jsonDecoder, error) {
	o := sub.JSON
	d := &jsonDecoder{
		timeUnit:    o.TimeUnit,
		timeFormat:  o.TimeFormat,
		valueKey:    o.ValueKey,
		booleans:    sub.Booleans,
		arrivalTime: arrivalTime,
		names:       interner{max: maxInterned},
		series:      make(map[string]string),
	}
	if d.timeUnit == "" {
		d.timeUnit = "ms"
	}
	if d.timeUnit != "auto" {
		var ok bool
		if d.unitNs, ok = timeUnits[d.timeUnit]; !ok {
			return nil, fmt.Errorf("json time_unit %q is unknown; accepted: s, ms, us, ns, auto", o.TimeUnit)
		}
	}
	if d.valueKey == "" {
		d.valueKey = "value"
	}
	if o.TimeZone != "" {
		loc, err := time.LoadLocation(o.TimeZone)
		if err != nil {
			return nil, fmt.Errorf("json time_zone %q is not a zone: %v; use an IANA name like Europe/Berlin", o.TimeZone, err)
		}
		d.loc = loc
	}
	if o.TimeFormat != "" {
		if err := checkLayout(o.TimeFormat); err != nil {
			return nil, err
		}
		d.formatZone = layoutHasZone(o.TimeFormat)
	}
	tmpl, err := parseTemplate(sub.Topic)
	if err := d.compilePaths(o, err == nil && tmpl.hasField); err != nil {
		return nil, err
	}
	d.resetTrie()
	return d, nil
}

// checkLayout says what is wrong with a time_format.
func checkLayout(layout string) error {
	const hint = "write how Go's reference time Mon Jan 2 15:04:05 MST 2006 looks in the payload's format, like 2006-01-02 15:04:05 or 02.01.2006 15:04"
	ref := time.Date(2024, 5, 17, 13, 4, 5, 0, time.UTC)
	s := ref.Format(layout)
	if s == layout {
		return fmt.Errorf("json time_format %q holds no layout element; %s", layout, hint)
	}
	back, err := time.Parse(layout, s)
	if err != nil {
		return fmt.Errorf("json time_format %q cannot read the times it describes (%v); %s", layout, err, hint)
	}
	if back.Year() != ref.Year() || back.YearDay() != ref.YearDay() {
		return fmt.Errorf("json time_format %q lacks the year, month or day; %s", layout, hint)
	}
	return nil
}

// layoutHasZone reports whether a layout writes the zone.
func layoutHasZone(layout string) bool {
	a := time.Date(2024, 5, 17, 13, 4, 5, 0, time.FixedZone("AAA", 3600)).Format(layout)
	b := time.Date(2024, 5, 17, 13, 4, 5, 0, time.FixedZone("BBB", 7200)).Format(layout)
	return a != b
}

// readingSet is the root of a payload (or of an element of a top-level
// array) or a record in it: readings that share their tags and time.
type readingSet struct {
	name     string // a record's member name, for messages
	series   string
	time     int64
	tagStart int // its tags: recTags[tagStart:tagEnd] (records)
	tagEnd   int
	hasTime  bool // its own time member was read
	assumed  bool // ... and had no zone: time is the arrival time
	hasValue bool // its value member was found
}

// Kinds of frame.
const (
	kObject = iota
	kArray
	kTop // a top-level array, whose elements are roots
)

// frame is an object or array being read.
type frame struct {
	node   *node  // the parent of its members
	prev   *node  // the member read last
	serial uint64 // objects: tells its members from those of other objects
	n      int    // arrays: the index of the next element
	set    int    // the reading set its numbers go to
	kind   uint8
	open   bool // nothing read yet
	root   bool // its end ends a root
	record bool // its end ends a record
}

// jsonState is the decoding of one payload.
type jsonState struct {
	d         *jsonDecoder
	t         *topicInfo
	payload   []byte
	s         scanner
	arrival   int64
	sk        *skips
	valueMode bool  // the topic names the field
	rootStart int   // the first reading of the root being read
	err       error // the first rejection found; reading goes on to tell bad JSON
	noZone    *node // the time member of d.noZone
}

const jsonAccepted = "format json expects an object like {\"temperature\": 23.5} or an array of them"

func (st *jsonState) bad(format string, args ...any) error {
	return rejectPayload(reasonBadPayload, st.t.name, st.payload, "not valid JSON at byte %d: %s; %s",
		st.s.i, fmt.Sprintf(format, args...), jsonAccepted)
}

// fail records a rejection, unless one was recorded: the message is
// rejected once the payload is known to be valid JSON.
func (st *jsonState) fail(reason, format string, args ...any) {
	if st.err == nil {
		st.err = rejectPayload(reason, st.t.name, st.payload, format, args...)
	}
}

func (d *jsonDecoder) decode(dst []edgegw.Reading, t *topicInfo, payload []byte, arrival int64, sk *skips) ([]edgegw.Reading, error) {
	start := len(dst)
	if d.nodes > maxInterned || d.memory > maxJSONMemory {
		d.forget()
	}
	st := jsonState{d: d, t: t, payload: payload, s: scanner{b: payload}, arrival: arrival, sk: sk, valueMode: t.field != ""}
	d.noZone = d.noZone[:0]
	out, err := st.run(dst)
	if err == nil {
		err = st.err
	}
	if err != nil {
		sk.reset()
		return out[:start], err
	}
	if len(out) > start {
		return out, nil
	}
	for _, k := range sk.list {
		if k.reason != assumeNoZone {
			detail := k.detail
			sk.reset()
			return out, rejectPayload(reasonNoValue, t.name, payload, "nothing read: %s", detail)
		}
	}
	if st.valueMode {
		return out, rejectPayload(reasonNoValue, t.name, payload, "no readings; the topic names the field, so each object needs a number member %q", d.valueKey)
	}
	return out, rejectPayload(reasonNoValue, t.name, payload, "no numeric member; format json expects numbers like {\"temperature\": 23.5}")
}

// run reads the payload, appending its readings to dst.
func (st *jsonState) run(dst []edgegw.Reading) ([]edgegw.Reading, error) {
	d, s := st.d, &st.s
	stack := &d.stack
	depth := 0
	s.ws()
	switch s.peek() {
	case '{':
		s.i++
		st.openRoot(len(dst))
		stack[0] = frame{node: d.root, serial: d.nextSerial(), kind: kObject, open: true, root: true}
	case '[':
		s.i++
		stack[0] = frame{kind: kTop, open: true}
	case 0:
		if s.i == len(s.b) {
			return dst, rejectPayload(reasonNoValue, st.t.name, st.payload, "empty; %s", jsonAccepted)
		}
		return dst, st.bad("expected a value")
	default:
		if !s.scalar() {
			return dst, st.bad("malformed value")
		}
		return dst, rejectPayload(reasonBadPayload, st.t.name, st.payload, "not an object; %s", jsonAccepted)
	}
	depth = 1
	for depth > 0 {
		f := &stack[depth-1]
		s.ws()
		c := s.peek()
		end := byte(']')
		if f.kind == kObject {
			end = '}'
		}
		switch {
		case c == end:
			s.i++
			depth--
			dst = st.end(dst, f)
			continue
		case f.open:
			f.open = false
		case c == ',':
			s.i++
			s.ws()
			c = s.peek()
		default:
			return dst, st.bad("expected ',' or '%c'", end)
		}
		if f.kind == kTop {
			if c != '{' {
				return dst, rejectPayload(reasonBadPayload, st.t.name, st.payload, "an array element is not an object; %s", jsonAccepted)
			}
			s.i++
			st.openRoot(len(dst))
			stack[depth] = frame{node: d.root, serial: d.nextSerial(), kind: kObject, open: true, root: true}
			depth++
			continue
		}
		var n *node
		if f.kind == kObject {
			if c != '"' {
				return dst, st.bad("expected a member name")
			}
			name, esc, ok := s.str()
			if !ok {
				return dst, st.bad("malformed string")
			}
			if esc {
				d.str = unescape(d.str[:0], name)
				name = d.str
			}
			n = st.member(f, name)
			s.ws()
			if s.peek() != ':' {
				return dst, st.bad("expected ':'")
			}
			s.i++
			s.ws()
			c = s.peek()
		} else {
			if f.n < len(f.node.elems) {
				n = f.node.elems[f.n]
			} else {
				n = d.elem(f.node, f.n)
			}
			f.n++
		}
		switch {
		case c == '-' || (c >= '0' && c <= '9'):
			num, ok := s.num()
			if !ok {
				return dst, st.bad("malformed number")
			}
			dst = st.number(dst, f, n, num)
		case c == '"':
			raw, esc, ok := s.str()
			if !ok {
				return dst, st.bad("malformed string")
			}
			dst = st.text(dst, f, n, raw, esc)
		case c == '{' || c == '[':
			if depth == maxJSONDepth {
				return dst, rejectPayload(reasonBadPayload, st.t.name, st.payload, "nested deeper than %d objects and arrays at byte %d; %s, nested at most %d deep",
					maxJSONDepth, s.i, jsonAccepted, maxJSONDepth)
			}
			s.i++
			next := frame{node: n, set: f.set, kind: kArray, open: true}
			if c == '{' {
				next.kind, next.serial = kObject, d.nextSerial()
			}
			st.container(&next, n)
			stack[depth] = next
			depth++
		case c == 't' || c == 'f' || c == 'n':
			lit := s.literal()
			if lit == 0 {
				return dst, st.bad("malformed literal")
			}
			dst = st.literal(dst, f, n, lit)
		default:
			return dst, st.bad("expected a value")
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return dst, st.bad("data after the JSON value")
	}
	return dst, nil
}

func (d *jsonDecoder) nextSerial() uint64 {
	d.serial++
	return d.serial
}

// member returns the node of the member name of the object f, and rejects
// a name the object repeats.
func (st *jsonState) member(f *frame, name []byte) *node {
	n := f.node.first
	if f.prev != nil {
		n = f.prev.next
	}
	if n == nil || n.name != string(name) {
		n = st.d.child(f.node, name)
		if f.prev == nil {
			f.node.first = n
		} else {
			f.prev.next = n
		}
	}
	f.prev = n
	if n.seen == f.serial && st.err == nil {
		st.fail(reasonDuplicateKey, "member %s appears twice in the object at %s; JSON object members must have distinct names", quoteName(n.name), st.where(f.node))
	}
	n.seen = f.serial
	return n
}

// where describes the place of an object for messages.
func (st *jsonState) where(n *node) string {
	if n.parent == nil && n.ctx == ctxRoot {
		return "the top"
	}
	return st.d.path(n)
}

func (st *jsonState) badName(n *node) {
	if !st.sk.again(skipBadName) {
		st.sk.add(skipBadName, "member %s at %s is skipped: its name is %s; field names are non-empty UTF-8 text without control characters, at most %d bytes", quoteName(n.name), st.where(n.parent), n.bad, maxJSONName)
	}
}

// number reads a number member.
func (st *jsonState) number(dst []edgegw.Reading, f *frame, n *node, num []byte) []edgegw.Reading {
	switch {
	case n.flags&(nTime|nValue|nTag|nRead) == nRead && !st.valueMode:
	case n.bad != "":
		st.badName(n)
		return dst
	case n.flags&nTime != 0:
		st.numberTime(f, n, num)
		return dst
	case n.flags&nValue != 0:
		st.d.sets[f.set].hasValue = true
	case n.flags&nTag != 0:
		st.tag(f, n, num)
		return dst
	default:
		return dst
	}
	v, err := strconv.ParseFloat(string(num), 64)
	if err != nil { // the scanner took the number, so it is out of range
		if !st.sk.again(skipNonFinite) {
			st.sk.add(skipNonFinite, "member %q is %s, beyond float64", st.d.path(n), num)
		}
		return dst
	}
	return st.read(dst, f, n, v)
}

// read appends a reading of n; its Time holds the index of its reading
// set until the root ends.
func (st *jsonState) read(dst []edgegw.Reading, f *frame, n *node, v float64) []edgegw.Reading {
	field := n.field
	if st.valueMode {
		field = st.t.field
	}
	return append(dst, edgegw.Reading{Field: field, Value: v, Time: int64(f.set)})
}

// text reads a string member.
func (st *jsonState) text(dst []edgegw.Reading, f *frame, n *node, raw []byte, esc bool) []edgegw.Reading {
	d := st.d
	if n.bad != "" || n.flags&(nTime|nValue|nTag|nNumStr) == 0 {
		return dst
	}
	v := raw
	if esc {
		d.val = unescape(d.val[:0], raw)
		v = d.val
	}
	switch {
	case n.flags&nTime != 0:
		st.stringTime(f, n, v)
		return dst
	case n.flags&nTag != 0:
		st.tag(f, n, v)
		return dst
	case n.flags&nValue != 0:
		d.sets[f.set].hasValue = true
		if n.flags&nNumStr == 0 {
			st.fail(reasonBadNumber, "member %q is a string; expected a JSON number like {%q: 23.5}, or list it in numeric_strings", d.path(n), n.name)
			return dst
		}
	case st.valueMode || n.flags&nRead == 0:
		return dst
	}
	x, reason := parseNumber(bytes.TrimSpace(v))
	switch reason {
	case "":
		return st.read(dst, f, n, x)
	case reasonNonFinite:
		if !st.sk.again(skipNonFinite) {
			st.sk.add(skipNonFinite, "member %q is %q, not a finite number", d.path(n), v)
		}
	default:
		if !st.sk.again(skipBadNumber) {
			st.sk.add(skipBadNumber, "member %q is %q, not a number; numeric_strings reads strings like \"23.5\"", d.path(n), v)
		}
	}
	return dst
}

// literal reads a true, false or null member.
func (st *jsonState) literal(dst []edgegw.Reading, f *frame, n *node, lit byte) []edgegw.Reading {
	d := st.d
	if lit == 'n' { // null: as if absent
		return dst
	}
	v := 0.0
	text := []byte("false")
	if lit == 't' {
		v, text = 1, []byte("true")
	}
	switch {
	case n.bad != "":
		if d.booleans && !st.valueMode {
			st.badName(n)
		}
	case n.flags&nTime != 0:
		if !d.arrivalTime {
			st.fail(reasonBadTime, "time member %q is %s; %s", d.path(n), text, st.timeAccepted())
		}
	case n.flags&nValue != 0:
		d.sets[f.set].hasValue = true
		if !d.booleans {
			st.fail(reasonBadNumber, "member %q is %s; expected a JSON number like {%q: 23.5}, or set booleans: true to read true and false as 1 and 0", d.path(n), text, n.name)
			return dst
		}
		return st.read(dst, f, n, v)
	case n.flags&nTag != 0:
		st.tag(f, n, text)
	case d.booleans && !st.valueMode && n.flags&nRead != 0:
		return st.read(dst, f, n, v)
	}
	return dst
}

// container sets up the frame of an object or array member n.
func (st *jsonState) container(next *frame, n *node) {
	d := st.d
	switch {
	case n.bad != "":
		st.badName(n) // its members are dead
	case n.flags&nTime != 0:
		if !d.arrivalTime {
			st.fail(reasonBadTime, "time member %q is an object or array; %s", d.path(n), st.timeAccepted())
		}
	case n.flags&nValue != 0:
		d.sets[next.set].hasValue = true
		st.fail(reasonBadNumber, "member %q is an object or array; expected a JSON number like {%q: 23.5}", d.path(n), n.name)
	case n.flags&nRecord != 0 && next.kind == kObject:
		next.node, next.record = d.recRoot, true
		next.set = len(d.sets)
		d.sets = append(d.sets, readingSet{name: n.name, tagStart: len(d.recTags)})
		if d.nameTag != "" {
			d.recTags = append(d.recTags, edgegw.Tag{Key: d.nameTag, Value: n.name})
		}
	}
}

// tag sets the tag of member n to value.
func (st *jsonState) tag(f *frame, n *node, value []byte) {
	d := st.d
	p := nameProblem(value)
	if p == "" && len(value) > maxJSONName {
		p = fmt.Sprintf("longer than %d bytes", maxJSONName)
	}
	if p != "" {
		if !st.sk.again(skipBadName) {
			st.sk.add(skipBadName, "tag member %q is skipped: its value %s is %s; a tag value is non-empty UTF-8 text without control characters, at most %d bytes", d.path(n), quoteName(string(value)), p, maxJSONName)
		}
		return
	}
	known := len(d.names.m)
	t := edgegw.Tag{Key: n.tag, Value: d.names.get(value)}
	if len(d.names.m) > known {
		d.memory += len(value)
	}
	if f.set == 0 {
		d.rootTags = append(d.rootTags, t)
	} else {
		d.recTags = append(d.recTags, t)
	}
}

func (st *jsonState) timeAccepted() string {
	d := st.d
	unit := d.timeUnit + " (time_unit)"
	if d.unitNs == 0 {
		unit = "s, ms, us or ns (time_unit auto)"
	}
	layout := ""
	if d.timeFormat != "" {
		layout = fmt.Sprintf(", a string in time_format %q", d.timeFormat)
	}
	return fmt.Sprintf("expected a number in %s%s or an RFC 3339 string like \"2024-05-01T12:00:00Z\", within years 1678-2261", unit, layout)
}

// numberTime reads the time member n, a number.
func (st *jsonState) numberTime(f *frame, n *node, num []byte) {
	d := st.d
	if d.arrivalTime {
		return
	}
	unit := d.unitNs
	if unit == 0 {
		unit = autoUnit(num)
	}
	ns, ok := decimalNanos(num, unit)
	if !ok {
		st.fail(reasonBadTime, "time member %q is %s; %s", d.path(n), num, st.timeAccepted())
		return
	}
	set := &d.sets[f.set]
	set.time, set.hasTime, set.assumed = ns, true, false
}

// autoUnit tells the unit of a numeric time by its magnitude.
func autoUnit(num []byte) int64 {
	v, _ := strconv.ParseFloat(string(num), 64)
	switch v = math.Abs(v); {
	case v < 1e11:
		return 1e9
	case v < 1e14:
		return 1e6
	case v < 1e17:
		return 1e3
	}
	return 1
}

// stringTime reads the time member n, a string.
func (st *jsonState) stringTime(f *frame, n *node, v []byte) {
	d := st.d
	if d.arrivalTime {
		return
	}
	var ns int64
	var zone bool
	if ts, ok := parseStamp(v); ok {
		zone = ts.zone
		loc := time.UTC
		if !zone && d.loc != nil {
			loc = d.loc
		}
		ns = time.Date(ts.year, time.Month(ts.month), ts.day, ts.hour, ts.min, ts.sec, ts.nsec, loc).UnixNano() - int64(ts.offset)*1e9
	} else if d.timeFormat != "" {
		loc := time.UTC
		if d.loc != nil {
			loc = d.loc
		}
		tm, err := time.ParseInLocation(d.timeFormat, string(v), loc)
		if err != nil || tm.Year() < 1678 || tm.Year() > 2261 {
			st.fail(reasonBadTime, "time member %q is %q; %s", d.path(n), v, st.timeAccepted())
			return
		}
		zone, ns = d.formatZone, tm.UnixNano()
	} else {
		st.fail(reasonBadTime, "time member %q is %q; %s", d.path(n), v, st.timeAccepted())
		return
	}
	set := &d.sets[f.set]
	set.hasTime = true
	if zone || d.loc != nil {
		set.time, set.assumed = ns, false
		return
	}
	set.time, set.assumed = st.arrival, true
	if len(d.noZone) == 0 {
		d.noZone = append(d.noZone, v...)
		st.noZone = n
	}
}

// stamp is a date and time as RFC 3339 writes it, perhaps without a zone.
type stamp struct {
	year, month, day, hour, min, sec, nsec int
	offset                                 int // seconds east of UTC
	zone                                   bool
}

// parseStamp reads YYYY-MM-DD[T ]hh:mm:ss[.fraction][Z|±hh:mm] (T and Z in
// any case), within years 1678-2261.
func parseStamp(b []byte) (stamp, bool) {
	var ts stamp
	num := func(i, n int) int {
		v := 0
		for _, c := range b[i : i+n] {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return ts, false
	}
	ts.year, ts.month, ts.day = num(0, 4), num(5, 2), num(8, 2)
	ts.hour, ts.min, ts.sec = num(11, 2), num(14, 2), num(17, 2)
	if ts.year < 1678 || ts.year > 2261 || ts.month < 1 || ts.month > 12 || ts.day < 1 || ts.day > daysIn(ts.year, ts.month) ||
		ts.hour < 0 || ts.hour > 23 || ts.min < 0 || ts.min > 59 || ts.sec < 0 || ts.sec > 59 {
		return ts, false
	}
	i := 19
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		scale := int(1e8)
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			ts.nsec += int(b[i]-'0') * scale
			scale /= 10
		}
		if i == start {
			return ts, false
		}
	}
	switch rest := b[i:]; {
	case len(rest) == 0:
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
		ts.zone = true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		h, m := num(i+1, 2), num(i+4, 2)
		if h < 0 || h > 23 || m < 0 || m > 59 {
			return ts, false
		}
		ts.zone, ts.offset = true, h*3600+m*60
		if rest[0] == '-' {
			ts.offset = -ts.offset
		}
	default:
		return ts, false
	}
	return ts, true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// openRoot starts the root of the payload or of an element of a top-level
// array, whose first reading will be dst[start].
func (st *jsonState) openRoot(start int) {
	d := st.d
	d.sets = append(d.sets[:0], readingSet{})
	d.rootTags, d.recTags = d.rootTags[:0], d.recTags[:0]
	st.rootStart = start
}

// end ends the object or array f.
func (st *jsonState) end(dst []edgegw.Reading, f *frame) []edgegw.Reading {
	d := st.d
	if f.record {
		set := &d.sets[f.set]
		set.tagEnd = len(d.recTags)
		if st.valueMode && d.valuePath[ctxRecord] != nil && !set.hasValue {
			st.fail(reasonNoValue, "record %q at %s has no number member %q; the topic names the field, so each record needs one (value_key %q)",
				set.name, d.record, strings.Join(d.valuePath[ctxRecord], "."), d.valueKey)
		}
	}
	if f.root {
		dst = st.endRoot(dst)
	}
	return dst
}

// endRoot gives the readings of a root and of its records their series
// and time.
func (st *jsonState) endRoot(dst []edgegw.Reading) []edgegw.Reading {
	d, t := st.d, st.t
	root := &d.sets[0]
	if st.valueMode && d.valuePath[ctxRoot] != nil && !root.hasValue {
		st.fail(reasonNoValue, "an object has no number member %q; the topic names the field, so format json expects {%q: 23.5}", d.valueKey, d.valueKey)
	}
	if st.err != nil {
		return dst
	}
	root.series = t.series
	if len(d.rootTags) > 0 {
		root.series = st.seriesOf(nil)
	}
	if !root.hasTime {
		root.time = st.arrival
	}
	assumed := 0
	if len(d.sets) == 1 {
		for i := st.rootStart; i < len(dst); i++ {
			dst[i].Series, dst[i].Time = root.series, root.time
		}
		if root.assumed {
			assumed = len(dst) - st.rootStart
		}
	} else {
		for i := 1; i < len(d.sets); i++ {
			r := &d.sets[i]
			r.series = root.series
			if r.tagEnd > r.tagStart {
				r.series = st.seriesOf(d.recTags[r.tagStart:r.tagEnd])
			}
			if !r.hasTime {
				r.time, r.assumed = root.time, root.assumed
			}
		}
		for i := st.rootStart; i < len(dst); i++ {
			r := &d.sets[dst[i].Time]
			dst[i].Series, dst[i].Time = r.series, r.time
			if r.assumed {
				assumed++
			}
		}
	}
	if assumed > 0 {
		st.assumed(assumed)
	}
	return dst
}

// assumed counts n readings stamped with the arrival time for want of a
// zone.
func (st *jsonState) assumed(n int) {
	for i := range st.sk.list {
		if st.sk.list[i].reason == assumeNoZone {
			st.sk.list[i].n += n
			return
		}
	}
	st.sk.add(assumeNoZone, "time member %q is %q, which has no zone; its readings take the arrival time; set json time_zone (an IANA name like Europe/Berlin) to read such times",
		st.d.path(st.noZone), st.d.noZone)
	st.sk.list[len(st.sk.list)-1].n += n - 1
}

// putTag sets tag t in tags, sorted by key.
func putTag(tags []edgegw.Tag, t edgegw.Tag) []edgegw.Tag {
	i, found := slices.BinarySearchFunc(tags, t.Key, func(a edgegw.Tag, key string) int { return strings.Compare(a.Key, key) })
	if found {
		tags[i].Value = t.Value
		return tags
	}
	return slices.Insert(tags, i, t)
}

// seriesOf returns the series key of the topic's tags, replaced by the
// root's tags, replaced by rec. A known combination costs one lookup by the
// tags as given; only a new one is sorted, merged and escaped.
func (st *jsonState) seriesOf(rec []edgegw.Tag) string {
	d, t := st.d, st.t
	// Names and tag values hold no control character, so that these
	// separators keep the key unambiguous.
	k := append(d.key[:0], t.series...)
	for _, tg := range d.rootTags {
		k = append(append(append(append(k, 0), tg.Key...), 1), tg.Value...)
	}
	k = append(k, 2)
	for _, tg := range rec {
		k = append(append(append(append(k, 0), tg.Key...), 1), tg.Value...)
	}
	d.key = k
	if s, ok := d.series[string(k)]; ok {
		return s
	}
	d.tags = append(d.tags[:0], t.tags...)
	for _, tg := range d.rootTags {
		d.tags = putTag(d.tags, tg)
	}
	for _, tg := range rec {
		d.tags = putTag(d.tags, tg)
	}
	if len(d.series) >= maxInterned {
		clear(d.series)
	}
	s := string(edgegw.AppendSeriesKey(nil, t.measurement, d.tags))
	d.series[string(k)] = s
	d.memory += len(k) + len(s)
	return s
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

// literal reads true, false or null and returns its first letter, or 0.
func (s *scanner) literal() byte {
	b := s.b[s.i:]
	switch {
	case len(b) >= 4 && string(b[:4]) == "true":
		s.i += 4
		return 't'
	case len(b) >= 5 && string(b[:5]) == "false":
		s.i += 5
		return 'f'
	case len(b) >= 4 && string(b[:4]) == "null":
		s.i += 4
		return 'n'
	}
	return 0
}

// scalar reads and validates a string, number or literal at s.i.
func (s *scanner) scalar() bool {
	switch c := s.peek(); {
	case c == '"':
		_, _, ok := s.str()
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		_, ok := s.num()
		return ok
	}
	return s.literal() != 0
}

// unescape appends the decoded content of a JSON string (validated by str)
// to dst. Bytes that are not valid UTF-8 are kept, so that nameProblem
// finds them; an escaped lone surrogate becomes U+FFFD, as encoding/json
// decodes it.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
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
