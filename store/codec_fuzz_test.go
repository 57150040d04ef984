package store

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	edgegw "github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/window"
)

// sameRollup reports whether a and b are equal, float values bit for bit
// (so NaN equals NaN and -0 differs from 0) and no fields equal to nil.
func sameRollup(a, b edgegw.Rollup) bool {
	if a.Series != b.Series || a.Start != b.Start || len(a.Fields) != len(b.Fields) {
		return false
	}
	for i, f := range a.Fields {
		g := b.Fields[i]
		if f.Name != g.Name || f.Integer != g.Integer || math.Float64bits(f.Value) != math.Float64bits(g.Value) {
			return false
		}
	}
	return true
}

// Field specs, as FuzzRollupCodec builds rollups from bytes: per field a
// length byte, the name, a flags byte and 8 bytes (little endian) for the
// value. Flag specInteger marks an integer field; with specWhole the 8
// bytes are an int64 converted to float64, else the float64 bits.
const (
	specInteger = 1
	specWhole   = 2
)

// fieldsOf builds the fields that spec describes; an incomplete last field
// is dropped, so that every byte string describes some fields.
func fieldsOf(spec []byte) []edgegw.Field {
	var fs []edgegw.Field
	for len(spec) > 0 {
		n := int(spec[0])
		if len(spec) < 1+n+9 {
			break
		}
		name, flags, bits := string(spec[1:1+n]), spec[1+n], binary.LittleEndian.Uint64(spec[2+n:])
		spec = spec[10+n:]
		v := math.Float64frombits(bits)
		if flags&specWhole != 0 {
			v = float64(int64(bits))
		}
		fs = append(fs, edgegw.Field{Name: name, Value: v, Integer: flags&specInteger != 0})
	}
	return fs
}

// specOf is the inverse of fieldsOf, for fields with names under 256 bytes.
func specOf(fs []edgegw.Field) []byte {
	var b []byte
	for _, f := range fs {
		b = append(b, byte(len(f.Name)))
		b = append(b, f.Name...)
		var flags byte
		if f.Integer {
			flags |= specInteger
		}
		b = append(b, flags)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f.Value))
	}
	return b
}

// codecRollups are rollups as the engine emits them, and the edge cases of
// the encoding.
func codecRollups(t testing.TB) []edgegw.Rollup {
	rs := []edgegw.Rollup{
		{Series: "m", Start: 0},
		{Series: "", Start: math.MinInt64, Fields: []edgegw.Field{{Name: "", Value: 0}}},
		{Series: "sensors,site=ü", Start: math.MaxInt64, Fields: []edgegw.Field{
			{Name: "a_count", Value: 1 << 62, Integer: true},
			{Name: "b_count", Value: -7, Integer: true},
			{Name: "c_count", Value: 1.5, Integer: true},
			{Name: "d_count", Value: 1 << 63, Integer: true},
			{Name: "e_count", Value: -(1 << 63), Integer: true},
			{Name: "f_count", Value: math.Copysign(0, -1), Integer: true},
			{Name: "inf", Value: math.Inf(-1)},
			{Name: "negzero", Value: math.Copysign(0, -1)},
			{Name: "nan", Value: math.NaN()},
		}},
		rollup("sensors,site=a", 12345, 3),
	}
	e, err := window.New(window.Options{Size: 10 * time.Second, Slide: 5 * time.Second,
		Aggregates: []string{"count", "mean", "min", "max", "sum", "first", "last", "stddev", "p50", "p99"}})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Unix(1_700_000_000, 0)
	for i := range 8 {
		at := base.Add(time.Duration(i) * 3 * time.Second)
		e.Add([]edgegw.Reading{
			{Series: "m,id=a", Field: "temperature", Value: 20 + float64(i)/4, Time: at.UnixNano()},
			{Series: `weather,site=a\ b`, Field: "rain", Value: -float64(i), Time: at.UnixNano()},
		}, at)
	}
	e.Advance(base.Add(time.Minute))
	r := e.Ready()
	e.Done(r)
	if len(r.Rollups) == 0 {
		t.Fatal("engine emitted no rollups")
	}
	return append(rs, r.Rollups[:min(len(r.Rollups), 4)]...)
}

// rollupSeed is one FuzzRollupCodec input: bytes to decode and a rollup
// to encode.
type rollupSeed struct {
	name   string
	enc    []byte
	series string
	start  int64
	fields []byte
}

func rollupSeeds(t testing.TB) []rollupSeed {
	var out []rollupSeed
	add := func(name string, enc []byte, r edgegw.Rollup) {
		out = append(out, rollupSeed{name, enc, r.Series, r.Start, specOf(r.Fields)})
	}
	for i, r := range codecRollups(t) {
		enc := appendRollup(nil, &r)
		add(fmt.Sprintf("rollup-%d", i), enc, r)
		add(fmt.Sprintf("rollup-%d-truncated", i), enc[:len(enc)-1], r)
		add(fmt.Sprintf("rollup-%d-trailing", i), append(bytes.Clone(enc), 0), r)
	}
	r := rollup("m,id=a", 1, 2)
	enc := appendRollup(nil, &r)
	for _, c := range []struct {
		name string
		enc  []byte
	}{
		{"empty", nil},
		{"version-2", []byte{2}},
		{"huge-series-length", append([]byte{codecVersion}, binary.AppendUvarint(nil, 1<<60)...)},
		{"huge-field-count", []byte{codecVersion, 1, 'm', 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"huge-name-length", append([]byte{codecVersion, 1, 'm', 0, 1}, binary.AppendUvarint(nil, 1<<60)...)},
		{"unknown-kind", []byte{codecVersion, 1, 'm', 0, 1, 1, 'x', 3, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"integer-max", append([]byte{codecVersion, 1, 'm', 0, 1, 1, 'x', kindInteger}, binary.AppendVarint(nil, math.MaxInt64)...)},
		{"long-varint", append([]byte{codecVersion, 1, 'm'}, 0x80, 0x80, 0x80, 0x00, 0)},
		{"bad-varint", append([]byte{codecVersion, 1, 'm'}, bytes.Repeat([]byte{0xff}, 11)...)},
	} {
		add(c.name, c.enc, r)
	}
	add("series-cut", enc[:3], r)
	return out
}

var writeCodecSeeds = flag.Bool("write-fuzz-seeds", false, "write the FuzzRollupCodec and FuzzDeadLetter seed corpora to testdata/fuzz")

func writeSeedFile(t *testing.T, fuzzName, name string, args ...any) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", fuzzName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := "go test fuzz v1\n"
	for _, a := range args {
		switch a := a.(type) {
		case []byte:
			body += "[]byte(" + strconv.Quote(string(a)) + ")\n"
		case string:
			body += "string(" + strconv.Quote(a) + ")\n"
		case int64:
			body += "int64(" + strconv.FormatInt(a, 10) + ")\n"
		case uint64:
			body += "uint64(" + strconv.FormatUint(a, 10) + ")\n"
		default:
			t.Fatalf("seed argument of type %T", a)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWriteCodecSeeds rewrites the seed files of FuzzRollupCodec and
// FuzzDeadLetter with -write-fuzz-seeds, after a change of the encodings.
func TestWriteCodecSeeds(t *testing.T) {
	if !*writeCodecSeeds {
		t.Skip("run with -write-fuzz-seeds to rewrite testdata/fuzz/{FuzzRollupCodec,FuzzDeadLetter}/seed-*")
	}
	for _, sd := range rollupSeeds(t) {
		writeSeedFile(t, "FuzzRollupCodec", sd.name, sd.enc, sd.series, sd.start, sd.fields)
	}
	for _, sd := range deadLetterSeeds() {
		writeSeedFile(t, "FuzzDeadLetter", sd.name, sd.key, sd.val, sd.seq, sd.at, sd.reason, sd.line)
	}
}

// FuzzRollupCodec decodes arbitrary bytes as an outbox value (a damaged
// bbolt file) and encodes rollups built from arbitrary bytes. Decoding
// never panics; what decodes encodes to bytes that decode to the same
// rollup, and encoding that again gives the same bytes; every rollup
// decodes from its encoding unchanged, bit for bit.
func FuzzRollupCodec(f *testing.F) {
	for _, sd := range rollupSeeds(f) {
		f.Add(sd.enc, sd.series, sd.start, sd.fields)
	}
	f.Fuzz(func(t *testing.T, enc []byte, series string, start int64, fields []byte) {
		if r, err := decodeRollup(enc); err == nil {
			enc2 := appendRollup(nil, &r)
			r2, err := decodeRollup(enc2)
			if err != nil {
				t.Fatalf("decodeRollup(%x) = %+v, whose encoding %x does not decode: %v", enc, r, enc2, err)
			}
			if !sameRollup(r, r2) {
				t.Fatalf("decodeRollup(%x) = %+v, whose encoding decodes to %+v", enc, r, r2)
			}
			if enc3 := appendRollup(nil, &r2); !bytes.Equal(enc2, enc3) {
				t.Fatalf("%+v encodes to %x, then to %x", r, enc2, enc3)
			}
		} else if err.Error() == "" {
			t.Fatalf("decodeRollup(%x): empty error", enc)
		}

		r := edgegw.Rollup{Series: series, Start: start, Fields: fieldsOf(fields)}
		enc = appendRollup([]byte("prefix"), &r)[len("prefix"):]
		got, err := decodeRollup(enc)
		if err != nil {
			t.Fatalf("decodeRollup(appendRollup(%+v)) = %v", r, err)
		}
		if !sameRollup(got, r) {
			t.Fatalf("decodeRollup(appendRollup(%+v)) = %+v", r, got)
		}
	})
}

// deadLetterSeed is one FuzzDeadLetter input: a key and value to decode,
// and a dead letter to encode.
type deadLetterSeed struct {
	name     string
	key, val []byte
	seq      uint64
	at       int64
	reason   string
	line     []byte
}

func deadLetterSeeds() []deadLetterSeed {
	var out []deadLetterSeed
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	for i, dl := range []DeadLetter{
		{Seq: 1, At: time.Unix(0, at), Reason: "400 Bad Request: field type conflict", Line: []byte("m,id=a x=1i 1700000000000000000")},
		{Seq: math.MaxUint64, At: time.Unix(0, math.MinInt64), Reason: "", Line: nil},
		{Seq: 1 << 32, At: time.Unix(0, math.MaxInt64), Reason: "ü\n", Line: []byte("weather,site=a\\ b rain=-2.5 0")},
	} {
		key := binary.BigEndian.AppendUint64(nil, dl.Seq)
		val := appendDeadLetter(nil, dl.At.UnixNano(), dl.Reason, dl.Line)
		add := func(name string, k, v []byte) {
			out = append(out, deadLetterSeed{name, k, v, dl.Seq, dl.At.UnixNano(), dl.Reason, dl.Line})
		}
		add(fmt.Sprintf("dead-%d", i), key, val)
		add(fmt.Sprintf("dead-%d-key-short", i), key[:7], val)
		add(fmt.Sprintf("dead-%d-truncated", i), key, val[:len(val)/2])
		add(fmt.Sprintf("dead-%d-version-2", i), key, append([]byte{2}, val[1:]...))
	}
	key := binary.BigEndian.AppendUint64(nil, 7)
	huge := append([]byte{deadVersion, 0}, binary.AppendUvarint(nil, 1<<60)...)
	out = append(out,
		deadLetterSeed{"huge-reason-length", key, huge, 7, 0, "r", []byte("l")},
		deadLetterSeed{"empty", key, nil, 7, 0, "", nil},
		deadLetterSeed{"bad-varint", key, append([]byte{deadVersion}, bytes.Repeat([]byte{0xff}, 11)...), 7, 0, "", nil})
	return out
}

// FuzzDeadLetter decodes arbitrary dead-letter keys and values and encodes
// dead letters built from arbitrary fields. Decoding never panics; what
// decodes encodes to a value that decodes to the same dead letter; every
// dead letter decodes from its encoding unchanged.
func FuzzDeadLetter(f *testing.F) {
	for _, sd := range deadLetterSeeds() {
		f.Add(sd.key, sd.val, sd.seq, sd.at, sd.reason, sd.line)
	}
	same := func(a, b DeadLetter) bool {
		return a.Seq == b.Seq && a.At.UnixNano() == b.At.UnixNano() && a.Reason == b.Reason && bytes.Equal(a.Line, b.Line)
	}
	f.Fuzz(func(t *testing.T, key, val []byte, seq uint64, at int64, reason string, line []byte) {
		if dl, err := decodeDeadLetter(key, val); err == nil {
			if dl.Seq != binary.BigEndian.Uint64(key) {
				t.Fatalf("decodeDeadLetter(%x, …).Seq = %d", key, dl.Seq)
			}
			val2 := appendDeadLetter(nil, dl.At.UnixNano(), dl.Reason, dl.Line)
			dl2, err := decodeDeadLetter(key, val2)
			if err != nil || !same(dl, dl2) {
				t.Fatalf("decodeDeadLetter(%x) = %+v, whose encoding %x decodes to %+v, %v", val, dl, val2, dl2, err)
			}
			if len(dl.Line) > 0 && &dl.Line[0] == &val[len(val)-len(dl.Line)] {
				t.Fatal("the decoded line aliases the value")
			}
		}

		want := DeadLetter{Seq: seq, At: time.Unix(0, at), Reason: reason, Line: line}
		got, err := decodeDeadLetter(binary.BigEndian.AppendUint64(nil, seq), appendDeadLetter(nil, at, reason, line))
		if err != nil || !same(got, want) {
			t.Fatalf("decodeDeadLetter of %+v = %+v, %v", want, got, err)
		}
	})
}
