package mqtt

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"unsafe"
)

// Paths in format json name a member by its levels from the root of its
// reading set (the payload's object, an element of a top-level array, or a
// record): member names and array indices joined with dots, like
// "uplink_message.decoded_payload.temperature" or "ENERGY.Total.0".

// pathLevel is one level of a path pattern.
type pathLevel struct {
	text string
	star bool // "*": any one level
	glob bool // a pattern as path.Match understands it
}

func (l pathLevel) match(seg string) bool {
	switch {
	case l.star:
		return true
	case l.glob:
		ok, _ := path.Match(l.text, seg)
		return ok
	}
	return l.text == seg
}

// pattern is a parsed path option.
type pattern []pathLevel

// matchExact reports whether p names exactly the member at segs.
func (p pattern) matchExact(segs []string) bool {
	return len(segs) == len(p) && p.matchPrefix(segs)
}

// matchPrefix reports whether p names the member at segs or an object or
// array holding it.
func (p pattern) matchPrefix(segs []string) bool {
	if len(segs) < len(p) {
		return false
	}
	for i, l := range p {
		if !l.match(segs[i]) {
			return false
		}
	}
	return true
}

func (p pattern) lastStar() int {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i].star {
			return i
		}
	}
	return -1
}

func (p pattern) String() string {
	var b strings.Builder
	for i, l := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(l.text)
	}
	return b.String()
}

func (p pattern) texts() []string {
	s := make([]string, len(p))
	for i, l := range p {
		s[i] = l.text
	}
	return s
}

// parsePattern parses the path option opt (for error messages) holding
// text; globs allows path.Match patterns as levels, otherwise only a whole
// level may be "*".
func parsePattern(opt, text string, globs bool) (pattern, error) {
	const form = "a path is member names or array indices joined with dots, like uplink_message.decoded_payload"
	if text == "" {
		return nil, fmt.Errorf("json %s holds an empty path; %s", opt, form)
	}
	var p pattern
	for _, seg := range strings.Split(text, ".") {
		switch {
		case seg == "":
			return nil, fmt.Errorf("json %s %q has an empty level; %s", opt, text, form)
		case seg == "*":
			p = append(p, pathLevel{text: seg, star: true})
		case strings.ContainsAny(seg, `*?[\`) && globs:
			if _, err := path.Match(seg, ""); err != nil {
				return nil, fmt.Errorf("json %s %q: level %q is not a valid glob (%v); a level is a member name, an index, * or a glob like temp* as Go's path.Match reads it", opt, text, seg, err)
			}
			p = append(p, pathLevel{text: seg, glob: true})
		case strings.Contains(seg, "*"):
			return nil, fmt.Errorf("json %s %q: level %q holds a * that is not a whole level; here * stands for exactly one level, like ZbReceived.*.Device", opt, text, seg)
		default:
			p = append(p, pathLevel{text: seg})
		}
	}
	return p, nil
}

// Contexts of a trie: paths are taken from the root of the payload (or of
// an element of a top-level array) or from the root of a record.
const (
	ctxRoot = iota
	ctxRecord
)

// Flags of a node.
const (
	nRead   = 1 << iota // a number here is a field (fields, exclude)
	nNumStr             // a string here is read as a number (numeric_strings)
	nTime               // the time member
	nValue              // the value member (the topic names the field)
	nTag                // a tag member; node.tag is its key
	nRecord             // an object here is a record
	nDead               // nothing at or below here is read: below a bad name, the time or the value member
)

// node is a member of a trie of the paths a decoder has seen, holding what
// the options make of the member, so that a known member costs one map
// lookup, or none when it comes in the same order as last time.
type node struct {
	name   string // the level: a member name or an array index
	field  string // the field name: the levels from the root joined with "_"
	parent *node  // nil at a root
	kids   map[string]*node
	elems  []*node
	first  *node  // the first member of the object last seen here
	next   *node  // the member that followed this one last time
	seen   uint64 // the serial of the object that last held this member
	tag    string // the tag key, with nTag
	bad    string // why the name cannot be a field name, or ""
	flags  uint8
	ctx    uint8
}

// segs returns the levels of n from its root.
func (n *node) segs() []string {
	var s []string
	for m := n; m.parent != nil; m = m.parent {
		s = append(s, m.name)
	}
	slices.Reverse(s)
	return s
}

// path returns the dotted path of n for messages, records as their
// pattern, shortened when long.
func (d *jsonDecoder) path(n *node) string {
	p := strings.Join(n.segs(), ".")
	if n.ctx == ctxRecord {
		if p == "" {
			p = d.record.String()
		} else {
			p = d.record.String() + "." + p
		}
	}
	if len(p) > maxQuotedName {
		return p[:maxQuotedName] + "..."
	}
	return p
}

// maxQuotedName bounds the bytes of a name quoted in a message.
const maxQuotedName = 64

// quoteName quotes a name for a message, shortened when long.
func quoteName(s string) string {
	if len(s) > maxQuotedName {
		return strconv.Quote(s[:maxQuotedName]) + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return strconv.Quote(s)
}

// resetTrie forgets every path seen.
func (d *jsonDecoder) resetTrie() {
	d.root = &node{ctx: ctxRoot}
	d.recRoot = &node{ctx: ctxRecord}
	d.nodes = 0
}

// forget forgets every path, tag value and series seen.
func (d *jsonDecoder) forget() {
	d.resetTrie()
	clear(d.names.m)
	clear(d.series)
	d.memory = 0
}

// child returns the member name of p, adding it to the trie when new.
func (d *jsonDecoder) child(p *node, name []byte) *node {
	if n := p.kids[string(name)]; n != nil {
		return n
	}
	if p.kids == nil {
		p.kids = make(map[string]*node)
	}
	n := d.newNode(p, string(name), true)
	p.kids[n.name] = n
	return n
}

// elem returns the element i of the array at p.
func (d *jsonDecoder) elem(p *node, i int) *node {
	if i < len(p.elems) {
		return p.elems[i]
	}
	n := d.newNode(p, strconv.Itoa(i), false)
	p.elems = append(p.elems, n)
	return n
}

// newNode works out what the options make of the member name of p.
func (d *jsonDecoder) newNode(p *node, name string, member bool) *node {
	d.nodes++
	n := &node{name: name, parent: p, ctx: p.ctx}
	if member {
		n.bad = nameProblem([]byte(name))
	}
	switch {
	case n.bad != "" || p.bad != "" || p.flags&nDead != 0:
	case p.parent == nil && len(name) <= maxJSONName:
		n.field = name
	case p.parent != nil && len(p.field)+1+len(name) <= maxJSONName:
		n.field = p.field + "_" + name
	default:
		n.bad = fmt.Sprintf("too long: the field name it gives is over %d bytes", maxJSONName)
	}
	d.memory += int(unsafe.Sizeof(*n)) + len(name) + len(n.field)
	if p.flags&(nDead|nTime|nValue) != 0 || p.bad != "" {
		n.flags = nDead
		return n
	}
	if n.bad != "" {
		return n
	}
	segs := n.segs()
	ctx := n.ctx
	switch {
	case d.timePath[ctx] != nil && slices.Equal(segs, d.timePath[ctx]):
		n.flags |= nTime
	case d.valuePath[ctx] != nil && slices.Equal(segs, d.valuePath[ctx]):
		n.flags |= nValue
	}
	for _, t := range d.tagPaths[ctx] {
		if slices.Equal(segs, t.path) {
			n.flags |= nTag
			n.tag = t.key
		}
	}
	if ctx == ctxRoot && d.record != nil && d.record.matchExact(segs) {
		n.flags |= nRecord
	}
	read := len(d.fields) == 0
	for _, f := range d.fields {
		if f.matchPrefix(segs) {
			read = true
			break
		}
	}
	for _, x := range d.exclude {
		if x.matchPrefix(segs) {
			read = false
			break
		}
	}
	if read {
		n.flags |= nRead
	}
	for _, x := range d.numStrings {
		if x.matchPrefix(segs) {
			n.flags |= nNumStr
			break
		}
	}
	return n
}

// tagPath is a tag_keys path within its context.
type tagPath struct {
	path []string
	key  string
}

// compilePaths parses the path options of o into d. valueMode says the
// topic names the field, so that value_key is used.
func (d *jsonDecoder) compilePaths(o JSONOptions, valueMode bool) error {
	type starred struct {
		opt, text string
		p         pattern
	}
	var keys []starred // time_key, value_key and tag_keys as parsed
	if o.TimeKey != "" {
		p, err := parsePattern("time_key", o.TimeKey, false)
		if err != nil {
			return err
		}
		keys = append(keys, starred{"time_key", o.TimeKey, p})
	}
	if valueMode {
		p, err := parsePattern("value_key", d.valueKey, false)
		if err != nil {
			return err
		}
		keys = append(keys, starred{"value_key", d.valueKey, p})
	}
	for _, k := range o.TagKeys {
		p, err := parsePattern("tag_keys", k, false)
		if err != nil {
			return err
		}
		if p[len(p)-1].star && len(p) >= 2 && p[len(p)-2].star {
			return fmt.Errorf("json tag_keys %q ends in *.*; with a last *, the level before it names the tag (ZbReceived.* gives tag ZbReceived), so it cannot be * too", k)
		}
		keys = append(keys, starred{"tag_keys", k, p})
	}
	// The record path: the part of every starred path up to its last *.
	var from starred
	for _, k := range keys {
		i := k.p.lastStar()
		if i < 0 {
			continue
		}
		prefix := k.p[:i+1]
		if d.record == nil {
			d.record, from = prefix, k
			continue
		}
		if d.record.String() != prefix.String() {
			return fmt.Errorf("json %s %q and %s %q make records of different members (%s and %s); every path with a * must share the part up to its last *, which names the records",
				from.opt, from.text, k.opt, k.text, d.record, prefix)
		}
	}
	// Each path within its context: relative to the record when starred.
	rel := func(p pattern) ([]string, int) {
		if i := p.lastStar(); i >= 0 {
			return p[i+1:].texts(), ctxRecord
		}
		return p.texts(), ctxRoot
	}
	type where struct {
		ctx  int
		path string
	}
	roles := make(map[where]string)
	for _, k := range keys {
		segs, ctx := rel(k.p)
		if k.opt == "tag_keys" && len(segs) == 0 {
			continue // the record's name
		}
		w := where{ctx, strings.Join(segs, "\x00")}
		if other, ok := roles[w]; ok {
			return fmt.Errorf("json %s holds %q, which is also the %s; a member is either the time, the value or a tag", k.opt, k.text, other)
		}
		roles[w] = k.opt + " " + strconv.Quote(k.text)
		switch k.opt {
		case "time_key":
			d.timePath[ctx] = segs
		case "value_key":
			d.valuePath[ctx] = segs
		}
	}
	tagKeys := [2]map[string]string{{}, {}}
	for _, k := range keys {
		if k.opt != "tag_keys" {
			continue
		}
		segs, ctx := rel(k.p)
		key := k.p[len(k.p)-1].text
		if len(segs) == 0 { // the last level is *: the record's name is the value
			key = "key"
			if len(k.p) >= 2 {
				key = k.p[len(k.p)-2].text
			}
		}
		if p := nameProblem([]byte(key)); p != "" {
			return fmt.Errorf("json tag_keys %q gives tag key %q, which InfluxDB cannot take (%s); a tag key is non-empty UTF-8 text without control characters", k.text, key, p)
		}
		if other, ok := tagKeys[ctx][key]; ok {
			return fmt.Errorf("json tag_keys %q and %q both name tag %q; rename one by its path", other, k.text, key)
		}
		tagKeys[ctx][key] = k.text
		if len(segs) == 0 {
			d.nameTag = key
			continue
		}
		d.tagPaths[ctx] = append(d.tagPaths[ctx], tagPath{path: segs, key: key})
	}
	for _, o := range []struct {
		opt  string
		list []string
		dst  *[]pattern
	}{{"fields", o.Fields, &d.fields}, {"exclude", o.Exclude, &d.exclude}, {"numeric_strings", o.NumericStrings, &d.numStrings}} {
		for _, text := range o.list {
			p, err := parsePattern(o.opt, text, true)
			if err != nil {
				return err
			}
			*o.dst = append(*o.dst, p)
		}
	}
	return nil
}
