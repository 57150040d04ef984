package store

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// ErrNoFile means the data directory holds no edgegw.db: no gateway has run
// there yet.
var ErrNoFile = errors.New("no edgegw.db in data_dir")

// View is a read-only look at a data directory, valid only inside the
// function passed to Inspect.
type View struct {
	tx *bolt.Tx
}

// Inspect opens dir/edgegw.db read-only, without creating or changing
// anything, and calls fn with a View of it inside one read transaction. The
// file is locked for reading while fn runs, so a gateway cannot start on it
// meanwhile. If a running gateway holds the file, Inspect returns an error
// matching ErrInUse within opts.LockTimeout (nil opts: 100 ms); if the file
// does not exist, one matching ErrNoFile. Inspect returns fn's error as is.
func Inspect(dir string, opts *Options, fn func(*View) error) error {
	timeout := defaultLockTimeout
	if opts != nil && opts.LockTimeout > 0 {
		timeout = opts.LockTimeout
	}
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w %s", ErrNoFile, dir)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return &inUseError{dir: dir}
	}
	if err != nil {
		return fmt.Errorf("open store %s read-only: %w", path, err)
	}
	defer db.Close()
	var fnErr error
	err = db.View(func(tx *bolt.Tx) error {
		fnErr = fn(&View{tx: tx})
		return nil
	})
	if err != nil {
		return fmt.Errorf("inspect store %s: %w", path, err)
	}
	return fnErr
}

// Meta returns the engine metadata last committed; nil in a new file.
func (v *View) Meta() []byte {
	if b := v.tx.Bucket(bucketMeta); b != nil {
		return bytes.Clone(b.Get(keyMeta))
	}
	return nil
}

// State yields every window state entry in key order, as Restore does.
func (v *View) State() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		b := v.tx.Bucket(bucketState)
		if b == nil {
			return
		}
		c := b.Cursor()
		for k, val := c.First(); k != nil; k, val = c.Next() {
			if !yield(bytes.Clone(k), bytes.Clone(val)) {
				return
			}
		}
	}
}

// Outbox returns the number of rollups waiting in the outbox and their
// encoded size in bytes, as Store.Outbox counts them.
func (v *View) Outbox() (rollups int, size int64) {
	return countBucket(v.tx, bucketOutbox)
}

// DeadLetters returns the number of dead letters and their encoded size in
// bytes.
func (v *View) DeadLetters() (count int, size int64) {
	return countBucket(v.tx, bucketDead)
}

// ListDeadLetters yields every dead letter, oldest first; it stops at the
// first entry it cannot decode and yields that error.
func (v *View) ListDeadLetters() iter.Seq2[DeadLetter, error] {
	return deadLettersIn(v.tx)
}

func countBucket(tx *bolt.Tx, name []byte) (n int, size int64) {
	b := tx.Bucket(name)
	if b == nil {
		return 0, 0
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		n++
		size += int64(len(v))
	}
	return n, size
}
