package window

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"iter"
	"math"
	"os"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

// fuzzOptions are the configurations FuzzRestore restores into; the first
// argument of the fuzz function picks one.
var fuzzOptions = []Options{
	{Size: 10 * time.Second},
	{Size: 10 * time.Second, Slide: 5 * time.Second, AllowedLateness: 2 * time.Second, Dedup: true,
		LatePolicy: LateUpdate, Aggregates: []string{"count", "mean", "stddev", "first", "last", "p90"}},
	{Size: time.Minute, Slide: time.Second, Dedup: true, Aggregates: []string{"min", "p50", "p99"}},
	{Size: 1, Dedup: true, Aggregates: []string{"count", "sum"}}, // 1 ns: every time offset is 0
	// The longest window. 100 panes rather than MaxPanesPerWindow: closing
	// 10000 windows per pane would slow every run to a crawl.
	{Size: MaxDuration, Slide: MaxDuration / 100, AllowedLateness: MaxDuration, Dedup: true,
		Aggregates: []string{"stddev", "p95"}},
}

// frameState encodes state entries as FuzzRestore reads them: per entry a
// uvarint key length, the key, a uvarint value length and the value.
func frameState(entries [][2][]byte) []byte {
	var b []byte
	for _, kv := range entries {
		for _, x := range kv {
			b = binary.AppendUvarint(b, uint64(len(x)))
			b = append(b, x...)
		}
	}
	return b
}

// unframeState splits b as frameState writes it. A length past the end
// takes what is left and a bad length ends the entries, so that every byte
// string is some list of entries.
func unframeState(b []byte) [][2][]byte {
	var out [][2][]byte
	next := func() ([]byte, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 {
			return nil, false
		}
		b = b[w:]
		n = min(n, uint64(len(b)))
		x := b[:n:n]
		b = b[n:]
		return x, true
	}
	for len(b) > 0 {
		k, ok := next()
		if !ok {
			break
		}
		v, _ := next()
		out = append(out, [2][]byte{k, v})
	}
	return out
}

func seqOf(entries [][2][]byte) iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for _, kv := range entries {
			if !yield(kv[0], kv[1]) {
				return
			}
		}
	}
}

// snapshot encodes everything e holds, as a store that committed every
// Ready of e would hold it: the metadata and the state entries in key order.
func snapshot(e *Engine) (meta []byte, entries [][2][]byte) {
	for _, sr := range e.series {
		for _, f := range sr.fields {
			for _, pn := range f.panes {
				entries = append(entries, [2][]byte{appendKey(nil, pn.idx, sr.key, f.name), pn.appendValue(nil, e)})
			}
		}
	}
	slices.SortFunc(entries, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
	return e.appendMeta(nil), entries
}

func (m *memStore) list() [][2][]byte {
	var out [][2][]byte
	for k, v := range m.entries() {
		out = append(out, [2][]byte{[]byte(k), v})
	}
	return out
}

func storeOf(meta []byte, entries [][2][]byte) *memStore {
	m := newMemStore()
	m.meta = bytes.Clone(meta)
	for _, kv := range entries {
		m.state[string(kv[0])] = bytes.Clone(kv[1])
	}
	return m
}

func sameEntries(a, b [][2][]byte) bool {
	return slices.EqualFunc(a, b, func(x, y [2][]byte) bool {
		return bytes.Equal(x[0], y[0]) && bytes.Equal(x[1], y[1])
	})
}

// restoreSeed is an engine snapshot: the options index, the metadata and
// the framed state entries.
type restoreSeed struct {
	name  string
	opt   byte
	meta  []byte
	state []byte
}

// engineSeeds runs each of fuzzOptions over a few series and fields,
// committing every Ready (state delta and metadata) as the store does, and
// returns what the store holds after the first and after the last commit.
func engineSeeds(t testing.TB) []restoreSeed {
	var seeds []restoreSeed
	for i, o := range fuzzOptions {
		e, err := New(o)
		if err != nil {
			t.Fatalf("New(%+v) = %v", o, err)
		}
		slide := int64(e.opts.Slide)
		ms := newMemStore()
		commit := func() { r := e.Ready(); ms.commit(r); e.Done(r) }
		at := func(k int64) int64 { return k * slide / 4 } // quarter slides after base
		feed(e, 0, rd("t", 1, at(1)), rd("h", 50, at(1)), rd("t", -2.5, at(2), "m,id=b"), rd("t", 0, at(3), "m,id=b"))
		feed(e, time.Duration(at(2)), rd("t", 3.5, at(5)), rd("t", 1e6, at(6)), rd("t", 1, at(1)), rd("h", math.SmallestNonzeroFloat64, at(7)))
		commit()
		seeds = append(seeds, restoreSeed{fmt.Sprintf("engine-%d-first", i), byte(i), bytes.Clone(ms.meta), frameState(ms.list())})
		for k := int64(8); k < 40; k += 3 {
			feed(e, time.Duration(at(k)), rd("t", float64(k)*1.5, at(k)), rd("t", -float64(k), at(k-5), "m,id=c"))
		}
		commit()
		feed(e, time.Duration(at(40)+int64(e.opts.Size)))
		commit()
		seeds = append(seeds, restoreSeed{fmt.Sprintf("engine-%d-last", i), byte(i), bytes.Clone(ms.meta), frameState(ms.list())})
	}
	return seeds
}

// paneValue encodes a pane value by hand: flags, count, the five floats and
// the two time offsets (0), the mean and M2 with valM2, then tail.
func paneValue(flags byte, n uint64, tail ...[]byte) []byte {
	b := []byte{flags}
	b = binary.AppendUvarint(b, n)
	for range 5 {
		b = appendFloat(b, 1)
	}
	b = append(b, 0, 0)
	if flags&valM2 != 0 {
		b = appendFloat(b, 1)
		b = appendFloat(b, 0)
	}
	for _, x := range tail {
		b = append(b, x...)
	}
	return b
}

func uv(x uint64) []byte { return binary.AppendUvarint(nil, x) }
func sv(x int64) []byte  { return binary.AppendVarint(nil, x) }

// variantSeeds derives truncated and mutated snapshots from seeds, and
// hand-made entries whose lengths and counts are absurd.
func variantSeeds(seeds []restoreSeed) []restoreSeed {
	var out []restoreSeed
	add := func(name string, opt byte, meta []byte, entries [][2][]byte) {
		out = append(out, restoreSeed{name, opt, meta, frameState(entries)})
	}
	for _, sd := range seeds {
		entries := unframeState(sd.state)
		if len(entries) == 0 {
			continue
		}
		add(sd.name+"-meta-truncated", sd.opt, sd.meta[:len(sd.meta)-1], entries)
		add(sd.name+"-no-meta", sd.opt, nil, entries)
		cut := slices.Clone(entries)
		cut[len(cut)-1][1] = cut[len(cut)-1][1][:len(cut[len(cut)-1][1])/2]
		add(sd.name+"-value-truncated", sd.opt, sd.meta, cut)
		flip := slices.Clone(entries)
		v := bytes.Clone(flip[0][1])
		v[len(v)-1] ^= 0x80
		flip[0][1] = v
		add(sd.name+"-value-flipped", sd.opt, sd.meta, flip)
		dup := append(slices.Clone(entries), entries[0])
		add(sd.name+"-pane-twice", sd.opt, sd.meta, dup)
		// The whole framed state cut short.
		out = append(out, restoreSeed{sd.name + "-state-truncated", sd.opt, sd.meta, sd.state[:len(sd.state)*2/3]})
	}

	// Absurd lengths and counts, for options 2 (sketch and dedup, no M2)
	// and 1 (sketch, dedup and M2).
	e, _ := New(fuzzOptions[2])
	e.hasClock = true
	meta := e.appendMeta(nil)
	key := appendKey(nil, 1_700_000_000, "m,id=a", "t")
	const huge = 1 << 60
	sk, tm := byte(valSketch), byte(valTimes)
	for _, c := range []struct {
		name     string
		key, val []byte
	}{
		{"huge-series-length", append(append([]byte{keyPane}, key[1:9]...), uv(huge)...), paneValue(sk|tm, 1, uv(0), uv(0), uv(0), uv(0))},
		{"huge-count", key, paneValue(sk|tm, huge, uv(0), uv(0), uv(0), uv(0))},
		{"huge-zero-count", key, paneValue(sk|tm, 1, uv(huge), uv(0), uv(0), uv(0))},
		{"huge-bins", key, paneValue(sk|tm, 1, uv(0), uv(huge), sv(1), uv(1))},
		{"huge-bin-count", key, paneValue(sk|tm, 1, uv(0), uv(1), sv(1), uv(huge), uv(0), uv(0))},
		{"huge-bin-index", key, paneValue(sk|tm, 1, uv(0), uv(2), sv(1), uv(1), sv(math.MaxInt64), uv(1), uv(0), uv(0))},
		{"repeated-bin", key, paneValue(sk|tm, 1, uv(0), uv(2), sv(1), uv(1<<53), sv(0), uv(1<<53), uv(0), uv(0))},
		{"huge-times", key, paneValue(sk|tm, 1, uv(0), uv(0), uv(0), uv(huge), sv(1))},
		{"huge-time-delta", key, paneValue(sk|tm, 1, uv(0), uv(0), uv(0), uv(2), sv(0), sv(math.MaxInt64))},
	} {
		add(c.name, 2, meta, [][2][]byte{{c.key, c.val}})
	}
	for _, c := range []struct {
		name string
		meta []byte
	}{
		{"meta-huge-slide", slices.Concat([]byte{metaVersion, metaClock | metaSketch}, uv(huge), uv(huge), sv(0), sv(0), sv(0), sv(0))},
		{"meta-max-clock", slices.Concat(meta[:len(meta)-4], sv(math.MaxInt64), sv(math.MinInt64), sv(math.MaxInt64), sv(math.MaxInt64))},
		{"meta-trailing", append(bytes.Clone(meta), 0)},
	} {
		add(c.name, 2, c.meta, nil)
	}
	return out
}

var writeFuzzSeeds = flag.Bool("write-fuzz-seeds", false, "write the FuzzRestore seed corpus to testdata/fuzz/FuzzRestore")

// TestWriteRestoreSeeds rewrites the seed files of FuzzRestore with
// -write-fuzz-seeds, after a change of the state layout.
func TestWriteRestoreSeeds(t *testing.T) {
	if !*writeFuzzSeeds {
		t.Skip("run with -write-fuzz-seeds to rewrite testdata/fuzz/FuzzRestore/seed-*")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzRestore")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seeds := engineSeeds(t)
	for _, sd := range append(seeds, variantSeeds(seeds)...) {
		body := fmt.Sprintf("go test fuzz v1\nbyte(%s)\n[]byte(%s)\n[]byte(%s)\n",
			strconv.QuoteRune(rune(sd.opt)), strconv.Quote(string(sd.meta)), strconv.Quote(string(sd.state)))
		if err := os.WriteFile(filepath.Join(dir, "seed-"+sd.name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var heapAllocs = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}

func allocated() uint64 {
	metrics.Read(heapAllocs)
	return heapAllocs[0].Value.Uint64()
}

// FuzzRestore restores arbitrary metadata and state entries (as a damaged
// or truncated bbolt file would hold them) into an engine with one of
// fuzzOptions. Restore must return an error or succeed, without panicking,
// hanging, or allocating out of proportion to its input. What it restores
// must encode to a snapshot that restores to the same snapshot, and the
// engine must then work: take readings, close windows, and commit a state
// that restores again.
func FuzzRestore(f *testing.F) {
	seeds := engineSeeds(f)
	for _, sd := range seeds {
		// An engine snapshot restores to itself, byte for byte.
		e, _ := New(fuzzOptions[sd.opt])
		entries := unframeState(sd.state)
		if err := e.Restore(sd.meta, seqOf(entries)); err != nil {
			f.Fatalf("%s: Restore() = %v", sd.name, err)
		}
		meta, got := snapshot(e)
		if !bytes.Equal(meta, sd.meta) || !sameEntries(got, entries) {
			f.Fatalf("%s: snapshot after Restore differs from the one restored", sd.name)
		}
		f.Add(sd.opt, sd.meta, sd.state)
	}
	for _, sd := range variantSeeds(seeds) {
		f.Add(sd.opt, sd.meta, sd.state)
	}
	f.Add(byte(0), []byte(nil), []byte(nil))

	f.Fuzz(func(t *testing.T, opt byte, meta, state []byte) {
		o := fuzzOptions[int(opt)%len(fuzzOptions)]
		entries := unframeState(state)
		e, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		before := allocated()
		err = e.Restore(meta, seqOf(entries))
		// The heap counter moves by whole spans, hence the 4 MiB slack. The
		// costliest entry is a pane with sketch bins at both ends of the
		// index range: some 1.5 KiB of sketch pages per byte of its value.
		if n, limit := allocated()-before, uint64(4<<20+4096*(len(meta)+len(state))); n > limit {
			t.Fatalf("Restore of %d bytes allocated %d bytes, more than %d", len(meta)+len(state), n, limit)
		}
		// Inspect reads the options from meta and restores as Restore does.
		_, _ = Inspect(meta, seqOf(entries))
		if err != nil {
			if e.Panes() != 0 || e.Series() != 0 || e.Watermark() != math.MinInt64 {
				t.Fatalf("failed Restore (%v) left %d panes, %d series, watermark %d", err, e.Panes(), e.Series(), e.Watermark())
			}
			return
		}

		// Round trip: what was restored encodes to a snapshot that
		// restores to the same snapshot.
		meta1, entries1 := snapshot(e)
		e2, _ := New(o)
		if err := e2.Restore(meta1, seqOf(entries1)); err != nil {
			t.Fatalf("Restore of the snapshot of a restored engine = %v", err)
		}
		meta2, entries2 := snapshot(e2)
		if !bytes.Equal(meta1, meta2) || !sameEntries(entries1, entries2) {
			t.Fatalf("snapshot of a restored snapshot differs:\nmeta %x\nthen %x\nentries %x\nthen %x", meta1, meta2, entries1, entries2)
		}
		if e2.Panes() != e.Panes() || e2.Series() != e.Series() || e2.Watermark() != e.Watermark() || e2.OpenWindows() != e.OpenWindows() {
			t.Fatalf("restored twice: panes %d series %d watermark %d open %d; once: %d %d %d %d",
				e2.Panes(), e2.Series(), e2.Watermark(), e2.OpenWindows(), e.Panes(), e.Series(), e.Watermark(), e.OpenWindows())
		}

		// The restored engine works, and what it commits restores again.
		ms := storeOf(meta1, entries1)
		now := time.Unix(0, 1_700_000_000*int64(time.Second))
		t0 := now.UnixNano()
		if e.hasClock {
			t0 = e.clock
		}
		e.Add([]edgegw.Reading{{Series: "m,id=a", Field: "t", Value: 1, Time: t0}, {Series: "m,id=a", Field: "t", Value: 2, Time: t0 - e.slide}}, now)
		r := e.Ready()
		ms.commit(r)
		e.Done(r)
		e.Advance(now.Add(2 * o.Size))
		r = e.Ready()
		ms.commit(r)
		e.Done(r)
		e3, _ := New(o)
		if err := e3.Restore(ms.meta, ms.entries()); err != nil {
			t.Fatalf("Restore of what a restored engine committed = %v", err)
		}
		if e3.Panes() != e.Panes() || e3.Series() != e.Series() || e3.Watermark() != e.Watermark() {
			t.Fatalf("restored after commits: panes %d series %d watermark %d; engine %d %d %d",
				e3.Panes(), e3.Series(), e3.Watermark(), e.Panes(), e.Series(), e.Watermark())
		}
	})
}
