package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	edgegw "github.com/edgegw/edgegw"
)

// codecVersion is the first byte of every encoded rollup.
//
// Layout of version 1, integers as varints (unsigned: uvarint):
//
//	version byte
//	uvarint len(series), series
//	varint start
//	uvarint len(fields), then per field:
//		uvarint len(name), name
//		kind byte, then the value:
//			0 float: 8 bytes, little-endian IEEE 754 bits
//			1 integer: varint
//			2 integer field holding a value that is not a whole number
//			  fitting an int64, or is -0: as float
const codecVersion = 1

const (
	kindFloat        = 0
	kindInteger      = 1
	kindIntegerFloat = 2
)

// appendRollup appends the encoding of r to dst.
func appendRollup(dst []byte, r *edgegw.Rollup) []byte {
	dst = append(dst, codecVersion)
	dst = binary.AppendUvarint(dst, uint64(len(r.Series)))
	dst = append(dst, r.Series...)
	dst = binary.AppendVarint(dst, r.Start)
	dst = binary.AppendUvarint(dst, uint64(len(r.Fields)))
	for _, f := range r.Fields {
		dst = binary.AppendUvarint(dst, uint64(len(f.Name)))
		dst = append(dst, f.Name...)
		// An integer field holds a whole number that fits an int64; anything
		// else, -0 included, is kept as a float so that no value is altered
		// on the way.
		if f.Integer && f.Value == math.Trunc(f.Value) && f.Value >= -(1<<63) && f.Value < 1<<63 && !(f.Value == 0 && math.Signbit(f.Value)) {
			dst = append(dst, kindInteger)
			dst = binary.AppendVarint(dst, int64(f.Value))
		} else {
			kind := byte(kindFloat)
			if f.Integer {
				kind = kindIntegerFloat
			}
			dst = append(dst, kind)
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f.Value))
		}
	}
	return dst
}

var errTruncated = errors.New("truncated")

// decodeRollup decodes one rollup encoded by appendRollup. It never panics:
// any malformed input is an error.
func decodeRollup(b []byte) (edgegw.Rollup, error) {
	var r edgegw.Rollup
	if len(b) == 0 {
		return r, errTruncated
	}
	if b[0] != codecVersion {
		return r, fmt.Errorf("unknown encoding version %d (want %d)", b[0], codecVersion)
	}
	d := decoder{b: b[1:]}
	r.Series = d.str()
	r.Start = d.varint()
	n := d.uvarint()
	// Each field takes at least 3 bytes; a larger count is malformed, and
	// checking it first keeps a damaged count from allocating much.
	if d.err == nil && n > uint64(len(d.b))/3 {
		return r, fmt.Errorf("field count %d exceeds the %d bytes left", n, len(d.b))
	}
	if n > 0 && d.err == nil {
		r.Fields = make([]edgegw.Field, 0, n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		var f edgegw.Field
		f.Name = d.str()
		kind := d.byte()
		switch kind {
		case kindInteger:
			f.Integer = true
			f.Value = float64(d.varint())
		case kindFloat, kindIntegerFloat:
			f.Integer = kind == kindIntegerFloat
			f.Value = math.Float64frombits(d.uint64())
		default:
			if d.err == nil {
				d.err = fmt.Errorf("field %d: unknown kind %d", i, kind)
			}
		}
		r.Fields = append(r.Fields, f)
	}
	if d.err != nil {
		return edgegw.Rollup{}, d.err
	}
	if len(d.b) != 0 {
		return edgegw.Rollup{}, fmt.Errorf("%d trailing bytes", len(d.b))
	}
	return r, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errTruncated
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.err = errTruncated
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uint64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.err = errTruncated
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}
