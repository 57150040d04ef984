package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	edgegw "github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/window"
	"github.com/prometheus/client_golang/prometheus"
)

// FileName is the name of the bbolt file inside the data directory.
const FileName = "edgegw.db"

// Errors returned by Open.
var (
	// ErrInUse means another gateway (or another Store in this process)
	// holds the data directory. Its text names the directory:
	// "data_dir ./data is in use by another edgegw".
	ErrInUse = errors.New("data_dir is in use by another edgegw")
)

// inUseError is ErrInUse naming the directory.
type inUseError struct{ dir string }

func (e *inUseError) Error() string {
	return fmt.Sprintf("data_dir %s is in use by another edgegw", e.dir)
}

func (e *inUseError) Unwrap() error { return ErrInUse }

// Options configures a Store. The zero value (or a nil *Options) means no cap
// on the outbox and a lock timeout of 100 ms.
type Options struct {
	// MaxOutboxBytes caps the encoded size of the outbox. When a Commit takes
	// it past the cap, the oldest rollups are dropped until it fits; they are
	// counted in edgegw_outbox_dropped_total and logged. 0 means no cap.
	MaxOutboxBytes int64
	// LockTimeout is how long Open waits for the file lock held by another
	// gateway before it returns ErrInUse. 0 means 100 ms.
	LockTimeout time.Duration
}

const defaultLockTimeout = 100 * time.Millisecond

// dropLogInterval is the shortest time between two logs of dropped rollups.
const dropLogInterval = 10 * time.Second

var (
	bucketState  = []byte("state")
	bucketMeta   = []byte("meta")
	bucketOutbox = []byte("outbox")
	keyMeta      = []byte("engine")
)

// Store is the gateway's bbolt file. Its methods are safe for concurrent use;
// write transactions are serialized.
type Store struct {
	db     *bolt.DB
	dir    string
	maxOut int64
	log    *slog.Logger
	notify chan struct{}

	// wmu serializes the write transactions and guards what follows it.
	wmu         sync.Mutex
	keyBuf      []byte // keys of the rollups of the current Commit
	valBuf      []byte // values of the rollups of the current Commit
	dropPending int64  // dropped and not yet logged
	dropLog     time.Time

	// mu guards the outbox counters, which mirror the file after each write
	// transaction.
	mu       sync.Mutex
	outCount int
	outBytes int64

	mRollups prometheus.Gauge
	mBytes   prometheus.Gauge
	mDropped prometheus.Counter

	dead deadLetters // the dead-letter bucket's counters (deadletter.go)
}

// Open opens (or creates) dir/edgegw.db, creating dir with mode 0750 if
// needed, and locks it. A nil opts means the defaults; a nil logger discards
// and a nil reg registers no metrics. If another gateway holds the file, Open
// returns an error matching ErrInUse within opts.LockTimeout.
func Open(dir string, opts *Options, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxOutboxBytes < 0 {
		return nil, fmt.Errorf("open store %s: max outbox bytes %d is negative; want 0 (no cap) or more", dir, o.MaxOutboxBytes)
	}
	if o.LockTimeout < 0 {
		return nil, fmt.Errorf("open store %s: lock timeout %v is negative; want 0 (default 100ms) or more", dir, o.LockTimeout)
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = defaultLockTimeout
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.LockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, &inUseError{dir: dir}
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{
		db:     db,
		dir:    dir,
		maxOut: o.MaxOutboxBytes,
		log:    logger,
		notify: make(chan struct{}, 1),
		dead:   newDeadLetters(),
		mRollups: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgegw_outbox_rollups",
			Help: "Rollups in the outbox, waiting for the upstream.",
		}),
		mBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgegw_outbox_bytes",
			Help: "Encoded bytes of the rollups in the outbox.",
		}),
		mDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgegw_outbox_dropped_total",
			Help: "Rollups dropped from the outbox: oldest first past max_outbox_bytes, or undecodable.",
		}),
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketState, bucketMeta, bucketOutbox, bucketDead} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		// The counters are rebuilt by one scan; values are not decoded.
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			s.outCount++
			s.outBytes += int64(len(v))
		}
		s.dead.scan(tx)
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s.mRollups.Set(float64(s.outCount))
	s.mBytes.Set(float64(s.outBytes))
	if reg != nil {
		for _, c := range []prometheus.Collector{s.mRollups, s.mBytes, s.mDropped, s.dead.mCount, s.dead.mDropped} {
			if err := reg.Register(c); err != nil {
				db.Close()
				return nil, fmt.Errorf("open store %s: register metrics: %w", path, err)
			}
		}
	}
	return s, nil
}

// Restore calls fn once, inside one read transaction, with the engine
// metadata last committed (nil in a new file) and every state entry in key
// order. fn gets copies it may keep. Restore returns fn's error as is.
func (s *Store) Restore(fn func(meta []byte, state iter.Seq2[[]byte, []byte]) error) error {
	var fnErr error
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := bytes.Clone(tx.Bucket(bucketMeta).Get(keyMeta))
		st := tx.Bucket(bucketState)
		seq := func(yield func([]byte, []byte) bool) {
			c := st.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if !yield(bytes.Clone(k), bytes.Clone(v)) {
					return
				}
			}
		}
		fnErr = fn(meta, seq)
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore state: %w", err)
	}
	return fnErr
}

// Commit makes rd durable in one write transaction, synced to disk before it
// returns: the state delta rd.State, the metadata rd.Meta, the rollups
// rd.Rollups appended to the outbox, and the MQTT packets of the batch
// (see Packets). If it returns an error, nothing of rd was written. Past
// MaxOutboxBytes the oldest rollups are dropped in the same transaction.
// After a Commit that added rollups, Notify fires.
func (s *Store) Commit(rd window.Ready, packets ...edgegw.Packet) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var (
		added, dropped     int
		addBytes, dropByte int64
	)
	s.keyBuf, s.valBuf = s.keyBuf[:0], s.valBuf[:0]
	err := s.db.Update(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketState)
		for i, c := range rd.State {
			if len(c.Key) == 0 {
				return fmt.Errorf("state change %d: empty key", i)
			}
			var err error
			if c.Value == nil {
				err = st.Delete(c.Key)
			} else {
				err = st.Put(c.Key, c.Value)
			}
			if err != nil {
				return fmt.Errorf("state change %d: %w", i, err)
			}
		}
		if err := tx.Bucket(bucketMeta).Put(keyMeta, rd.Meta); err != nil {
			return fmt.Errorf("put meta: %w", err)
		}
		if err := putPackets(tx, packets); err != nil {
			return err
		}
		if len(rd.Rollups) == 0 {
			return nil
		}
		ob := tx.Bucket(bucketOutbox)
		// bbolt keeps the key and value slices until the transaction ends:
		// each rollup gets its own part of the two buffers. A buffer that
		// grows leaves the earlier parts in its old array, still valid.
		for i := range rd.Rollups {
			seq, err := ob.NextSequence()
			if err != nil {
				return fmt.Errorf("next outbox sequence: %w", err)
			}
			k0, v0 := len(s.keyBuf), len(s.valBuf)
			s.keyBuf = binary.BigEndian.AppendUint64(s.keyBuf, seq)
			s.valBuf = appendRollup(s.valBuf, &rd.Rollups[i])
			k, v := s.keyBuf[k0:len(s.keyBuf):len(s.keyBuf)], s.valBuf[v0:len(s.valBuf):len(s.valBuf)]
			if err := ob.Put(k, v); err != nil {
				return fmt.Errorf("append rollup %d: %w", i, err)
			}
			added++
			addBytes += int64(len(v))
		}
		if s.maxOut <= 0 {
			return nil
		}
		s.mu.Lock()
		total := s.outBytes + addBytes
		s.mu.Unlock()
		c := ob.Cursor()
		for k, v := c.First(); k != nil && total > s.maxOut; k, v = c.First() {
			if err := c.Delete(); err != nil {
				return fmt.Errorf("drop oldest rollup: %w", err)
			}
			dropped++
			dropByte += int64(len(v))
			total -= int64(len(v))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	s.adjust(added-dropped, addBytes-dropByte)
	if dropped > 0 {
		s.countDropped(dropped)
	}
	if added > 0 {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
	return nil
}

// adjust applies a committed change to the outbox counters.
func (s *Store) adjust(n int, b int64) {
	s.mu.Lock()
	s.outCount += n
	s.outBytes += b
	count, bytes := s.outCount, s.outBytes
	s.mu.Unlock()
	s.mRollups.Set(float64(count))
	s.mBytes.Set(float64(bytes))
}

// countDropped counts n rollups dropped past MaxOutboxBytes and logs them,
// at most once per dropLogInterval with the number dropped since the last
// log. s.wmu is held.
func (s *Store) countDropped(n int) {
	s.mDropped.Add(float64(n))
	s.dropPending += int64(n)
	now := time.Now()
	if now.Sub(s.dropLog) < dropLogInterval {
		return
	}
	rollups, bytes := s.Outbox()
	s.log.Warn("outbox over max_outbox_bytes: oldest rollups dropped",
		"dropped", s.dropPending, "outbox_rollups", rollups, "outbox_bytes", bytes, "max_outbox_bytes", s.maxOut)
	s.dropPending, s.dropLog = 0, now
}

// Peek returns up to max of the oldest rollups in the outbox, oldest first,
// and the sequence number of the last one, to pass to Remove once they are
// delivered. An empty outbox gives (nil, 0, nil). Peek does not remove
// anything the caller will see; an entry that cannot be decoded is dropped,
// logged and counted, and Peek goes on past it.
func (s *Store) Peek(max int) ([]edgegw.Rollup, uint64, error) {
	if max <= 0 {
		return nil, 0, fmt.Errorf("peek outbox: max %d; want 1 or more", max)
	}
	for {
		var (
			rs      []edgegw.Rollup
			through uint64
			bad     [][]byte
			badErr  error
		)
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketOutbox).Cursor()
			for k, v := c.First(); k != nil && len(rs) < max; k, v = c.Next() {
				if len(k) != 8 {
					bad = append(bad, bytes.Clone(k))
					badErr = fmt.Errorf("key %x: not an 8-byte sequence", k)
					continue
				}
				r, err := decodeRollup(v)
				if err != nil {
					bad = append(bad, bytes.Clone(k))
					badErr = fmt.Errorf("rollup %d: %w", binary.BigEndian.Uint64(k), err)
					continue
				}
				rs = append(rs, r)
				through = binary.BigEndian.Uint64(k)
			}
			return nil
		})
		if err != nil {
			return nil, 0, fmt.Errorf("peek outbox: %w", err)
		}
		if len(bad) == 0 {
			return rs, through, nil
		}
		if err := s.dropBad(bad, badErr); err != nil {
			return nil, 0, err
		}
		if len(rs) > 0 {
			return rs, through, nil
		}
	}
}

// dropBad deletes the outbox entries keys, which could not be decoded.
func (s *Store) dropBad(keys [][]byte, last error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var n int
	var b int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		ob := tx.Bucket(bucketOutbox)
		for _, k := range keys {
			v := ob.Get(k)
			if v == nil {
				continue
			}
			b += int64(len(v))
			n++
			if err := ob.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("drop undecodable rollups: %w", err)
	}
	s.adjust(-n, -b)
	s.mDropped.Add(float64(n))
	s.log.Error("undecodable rollups dropped from the outbox", "dropped", n, "last_error", last)
	return nil
}

// Remove deletes the outbox entries with a sequence number up to through, in
// one write transaction. Entries already gone (dropped past the cap, or
// removed before) are skipped.
func (s *Store) Remove(through uint64) error {
	if through == 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var n int
	var b int64
	var end [8]byte
	binary.BigEndian.PutUint64(end[:], through)
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil && bytes.Compare(k, end[:]) <= 0; k, v = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			n++
			b += int64(len(v))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove delivered rollups: %w", err)
	}
	s.adjust(-n, -b)
	return nil
}

// Notify returns a channel that receives a value after a Commit that added
// rollups. It has a buffer of one: several commits may give one receive, so
// the receiver reads the outbox until it is empty.
func (s *Store) Notify() <-chan struct{} { return s.notify }

// Outbox returns the number of rollups in the outbox and their encoded size
// in bytes, as of the last write transaction. It does not touch the file.
func (s *Store) Outbox() (rollups int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outCount, s.outBytes
}

// Close releases the file lock and closes the file. It waits for running
// transactions to end.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.dir, err)
	}
	return nil
}
