package simulator

import (
	"strconv"
)

// encode returns the topic and payload of the message carrying b.
func (r *runner) encode(b *batch) (topic string, payload []byte) {
	p := r.buf[:0]
	switch {
	case r.o.Format == "value":
		topic = b.rs[0].s.topic
		p = append(p, b.rs[0].value...)
	case r.o.Format == "json" && r.o.Batch == 1 && !r.o.JSONNested:
		rd := b.rs[0]
		topic = rd.s.topic
		p = append(p, `{"value":`...)
		p = append(p, rd.value...)
		p = append(p, `,"ts":`...)
		p = strconv.AppendInt(p, rd.ts, 10)
		p = append(p, '}')
	case r.o.Format == "json":
		topic = b.dev.topic
		if r.o.JSONNested {
			p = append(p, `{"readings":`...)
		}
		p = appendJSONArray(p, b.rs)
		if r.o.JSONNested {
			p = append(p, '}')
		}
	case r.o.Format == "influx":
		topic = b.dev.topic
		p = appendLines(p, b.dev, b.rs)
	case r.o.Format == "senml":
		topic = b.dev.topic
		p = appendSenML(p, b.dev, b.rs)
	}
	r.buf = p
	// The payload outlives the call (paho publishes it later, duplicates
	// repeat it), so it gets its own copy.
	return topic, append([]byte(nil), p...)
}

// nextGroup returns the length of the group of readings that starts rs:
// the readings that follow one another with one event time, each field at
// most once. A group is one JSON object or one line-protocol line.
func nextGroup(rs []reading) int {
	n := 1
outer:
	for ; n < len(rs) && rs[n].ts == rs[0].ts; n++ {
		for _, rd := range rs[:n] {
			if rd.s.field == rs[n].s.field {
				break outer
			}
		}
	}
	return n
}

// appendJSONArray appends the readings rs as a JSON array with one object
// per group: [{"ts":1700000000000,"temperature":21.37,"humidity":44.80}].
func appendJSONArray(p []byte, rs []reading) []byte {
	p = append(p, '[')
	for i := 0; i < len(rs); {
		n := nextGroup(rs[i:])
		if i > 0 {
			p = append(p, ',')
		}
		p = append(p, `{"ts":`...)
		p = strconv.AppendInt(p, rs[i].ts, 10)
		for _, rd := range rs[i : i+n] {
			p = append(p, `,"`...)
			p = append(p, rd.s.name()...)
			p = append(p, `":`...)
			p = append(p, rd.value...)
		}
		p = append(p, '}')
		i += n
	}
	return append(p, ']')
}

// appendLines appends the readings rs of dev as line protocol with ns
// timestamps, one line per group:
// sensors,device=dev3,site=site1 temperature=21.37,humidity=44.80 1700000000000000000
func appendLines(p []byte, dev *device, rs []reading) []byte {
	for i := 0; i < len(rs); {
		n := nextGroup(rs[i:])
		p = append(p, dev.key...)
		for j, rd := range rs[i : i+n] {
			if j == 0 {
				p = append(p, ' ')
			} else {
				p = append(p, ',')
			}
			p = append(p, rd.s.name()...)
			p = append(p, '=')
			p = append(p, rd.value...)
		}
		p = append(p, ' ')
		p = strconv.AppendInt(p, rs[i].ts*1e6, 10)
		p = append(p, '\n')
		i += n
	}
	return p
}

// appendSenML appends the readings rs of dev as a SenML pack: the base name
// "<device>:" and the base time, the earliest event time in whole seconds,
// on the first record; each record's time is its offset from the base time
// in seconds:
// [{"bn":"dev3:","bt":1700000000,"n":"temperature","v":21.37,"t":0.124},{"n":"humidity","v":44.80,"t":0.124}]
func appendSenML(p []byte, dev *device, rs []reading) []byte {
	earliest := rs[0].ts
	for _, rd := range rs[1:] {
		earliest = min(earliest, rd.ts)
	}
	bt := floorDiv(earliest, 1000)
	p = append(p, '[')
	for i, rd := range rs {
		if i == 0 {
			p = append(p, `{"bn":"`...)
			p = append(p, dev.name...)
			p = append(p, `:","bt":`...)
			p = strconv.AppendInt(p, bt, 10)
			p = append(p, `,"n":"`...)
		} else {
			p = append(p, `,{"n":"`...)
		}
		p = append(p, rd.s.name()...)
		p = append(p, `","v":`...)
		p = append(p, rd.value...)
		p = append(p, `,"t":`...)
		p = appendSeconds(p, rd.ts-bt*1000)
		p = append(p, '}')
	}
	return append(p, ']')
}

// appendSeconds appends ms milliseconds (ms >= 0) as seconds, with no more
// decimals than needed: 124 → 0.124, 1500 → 1.5, 0 → 0.
func appendSeconds(p []byte, ms int64) []byte {
	p = strconv.AppendInt(p, ms/1000, 10)
	if frac := ms % 1000; frac != 0 {
		d := []byte{'.', byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
		for d[len(d)-1] == '0' {
			d = d[:len(d)-1]
		}
		p = append(p, d...)
	}
	return p
}

// floorDiv returns a/b rounded towards minus infinity, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}
