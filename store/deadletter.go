package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"iter"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/prometheus/client_golang/prometheus"
)

// bucketDead holds the dead letters: key the 8-byte sequence number, value
//
//	version byte (deadVersion)
//	varint time refused, ns since the Unix epoch
//	uvarint len(reason), reason
//	the line, without its newline
var bucketDead = []byte("dead_letters")

const deadVersion = 1

// DeadLetter is a rollup the upstream refused for its content (InfluxDB's
// 400, such as a field type conflict), kept as the line protocol that was
// sent, so that an operator can fix the cause and send it again.
type DeadLetter struct {
	// Seq orders the dead letters: a larger Seq was refused later.
	Seq uint64
	// At is when the upstream refused it.
	At time.Time
	// Reason is the upstream's answer.
	Reason string
	// Line is one line of line protocol, without the trailing newline.
	Line []byte
}

// deadLetters are the counters of the dead-letter bucket.
type deadLetters struct {
	// guarded by Store.mu, mirror the file after each write transaction
	count int
	bytes int64

	dropLog  time.Time // guarded by Store.wmu
	mCount   prometheus.Gauge
	mDropped prometheus.Counter
}

func newDeadLetters() deadLetters {
	return deadLetters{
		mCount: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgegw_dead_letters",
			Help: "Rollups the upstream refused for their content, kept in the dead-letter bucket (see edgegw state inspect --dead-letters).",
		}),
		mDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgegw_dead_letters_dropped_total",
			Help: "Dead letters dropped, oldest first, to keep the dead-letter bucket within max_outbox_bytes.",
		}),
	}
}

// scan rebuilds the counters from the bucket; the values are not decoded.
func (d *deadLetters) scan(tx *bolt.Tx) {
	c := tx.Bucket(bucketDead).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		d.count++
		d.bytes += int64(len(v))
	}
	d.mCount.Set(float64(d.count))
}

// DeadLetter deletes the outbox entries up to through, as Remove does, and
// in the same write transaction appends lines, which the upstream refused,
// to the dead-letter bucket, lines[i] with the reason reasons[i]. The
// dead-letter bucket is bounded like the outbox: past MaxOutboxBytes the
// oldest dead letters are dropped, counted and logged.
func (s *Store) DeadLetter(through uint64, lines [][]byte, reasons []string) error {
	if len(lines) != len(reasons) {
		return fmt.Errorf("dead-letter rollups: %d lines and %d reasons; want one reason per line", len(lines), len(reasons))
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var (
		removed, added, dropped       int
		remBytes, addBytes, dropBytes int64
	)
	now := time.Now()
	var end [8]byte
	binary.BigEndian.PutUint64(end[:], through)
	err := s.db.Update(func(tx *bolt.Tx) error {
		if through > 0 {
			c := tx.Bucket(bucketOutbox).Cursor()
			for k, v := c.First(); k != nil && bytes.Compare(k, end[:]) <= 0; k, v = c.First() {
				if err := c.Delete(); err != nil {
					return err
				}
				removed++
				remBytes += int64(len(v))
			}
		}
		dead := tx.Bucket(bucketDead)
		for i, line := range lines {
			seq, err := dead.NextSequence()
			if err != nil {
				return fmt.Errorf("next dead-letter sequence: %w", err)
			}
			v := appendDeadLetter(nil, now.UnixNano(), reasons[i], bytes.TrimSuffix(line, []byte("\n")))
			if err := dead.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
				return fmt.Errorf("append dead letter %d: %w", i, err)
			}
			added++
			addBytes += int64(len(v))
		}
		if s.maxOut <= 0 {
			return nil
		}
		s.mu.Lock()
		total := s.dead.bytes + addBytes
		s.mu.Unlock()
		c := dead.Cursor()
		for k, v := c.First(); k != nil && total > s.maxOut; k, v = c.First() {
			if err := c.Delete(); err != nil {
				return fmt.Errorf("drop oldest dead letter: %w", err)
			}
			dropped++
			dropBytes += int64(len(v))
			total -= int64(len(v))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dead-letter rollups: %w", err)
	}
	s.adjust(-removed, -remBytes)
	s.mu.Lock()
	s.dead.count += added - dropped
	s.dead.bytes += addBytes - dropBytes
	count := s.dead.count
	s.mu.Unlock()
	s.dead.mCount.Set(float64(count))
	if dropped > 0 {
		s.dead.mDropped.Add(float64(dropped))
		if now.Sub(s.dead.dropLog) >= dropLogInterval {
			s.dead.dropLog = now
			s.log.Warn("dead letters over max_outbox_bytes: oldest dropped",
				"dropped", dropped, "dead_letters", count, "max_outbox_bytes", s.maxOut)
		}
	}
	return nil
}

// DeadLetters returns the number of dead letters and their encoded size in
// bytes, as of the last write transaction. It does not touch the file.
func (s *Store) DeadLetters() (count int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead.count, s.dead.bytes
}

// ListDeadLetters yields every dead letter, oldest first, inside one read
// transaction; the values it yields are copies. It stops at the first entry
// it cannot decode and yields that error.
func (s *Store) ListDeadLetters() iter.Seq2[DeadLetter, error] {
	return func(yield func(DeadLetter, error) bool) {
		err := s.db.View(func(tx *bolt.Tx) error {
			for dl, err := range deadLettersIn(tx) {
				if !yield(dl, err) || err != nil {
					return nil
				}
			}
			return nil
		})
		if err != nil {
			yield(DeadLetter{}, fmt.Errorf("list dead letters: %w", err))
		}
	}
}

// deadLettersIn yields the dead letters of tx, oldest first.
func deadLettersIn(tx *bolt.Tx) iter.Seq2[DeadLetter, error] {
	return func(yield func(DeadLetter, error) bool) {
		b := tx.Bucket(bucketDead)
		if b == nil {
			return
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			dl, err := decodeDeadLetter(k, v)
			if !yield(dl, err) || err != nil {
				return
			}
		}
	}
}

// appendDeadLetter appends the value of a dead letter: line refused at (ns
// since the Unix epoch) for reason. The caller trims the line's newline.
func appendDeadLetter(dst []byte, at int64, reason string, line []byte) []byte {
	dst = slices.Grow(dst, 1+binary.MaxVarintLen64+binary.MaxVarintLen64+len(reason)+len(line))
	dst = append(dst, deadVersion)
	dst = binary.AppendVarint(dst, at)
	dst = binary.AppendUvarint(dst, uint64(len(reason)))
	dst = append(dst, reason...)
	return append(dst, line...)
}

func decodeDeadLetter(k, v []byte) (DeadLetter, error) {
	if len(k) != 8 {
		return DeadLetter{}, fmt.Errorf("dead letter key %x: not an 8-byte sequence", k)
	}
	seq := binary.BigEndian.Uint64(k)
	if len(v) == 0 || v[0] != deadVersion {
		return DeadLetter{}, fmt.Errorf("dead letter %d: unknown encoding", seq)
	}
	d := decoder{b: v[1:]}
	at := d.varint()
	reason := d.str()
	if d.err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter %d: %w", seq, d.err)
	}
	return DeadLetter{Seq: seq, At: time.Unix(0, at), Reason: reason, Line: bytes.Clone(d.b)}, nil
}
