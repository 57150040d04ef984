package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	edgegw "github.com/edgegw/edgegw"
)

// bucketPackets holds the MQTT packets of the QoS 1 messages committed: key
// the 2-byte packet identifier (big endian), value the 8-byte hash of the
// message's topic and payload (big endian). A packet replaces the entry of
// its identifier, so the bucket never holds more than 65535 entries (about
// 1 MiB with bbolt's overhead).
var bucketPackets = []byte("packets")

// putPackets records pkts in tx, which also holds the batch they belong to.
func putPackets(tx *bolt.Tx, pkts []edgegw.Packet) error {
	if len(pkts) == 0 {
		return nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketPackets)
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketPackets, err)
	}
	// bbolt keeps the key and value slices until the transaction ends: one
	// buffer for all, sized up front so that it never moves.
	buf := make([]byte, 10*len(pkts))
	for i, p := range pkts {
		if p.ID == 0 {
			return fmt.Errorf("packet %d: identifier 0", i)
		}
		k, v := buf[10*i:10*i+2:10*i+2], buf[10*i+2:10*i+10:10*i+10]
		binary.BigEndian.PutUint16(k, p.ID)
		binary.BigEndian.PutUint64(v, p.Hash)
		if err := b.Put(k, v); err != nil {
			return fmt.Errorf("put packet %d: %w", p.ID, err)
		}
	}
	return nil
}

// Packets returns the packets of the QoS 1 messages committed, one per
// identifier, the latest committed with it, in identifier order. A file that
// never committed one gives none. Entries of the wrong size (a file damaged
// outside bbolt) are skipped.
func (s *Store) Packets() ([]edgegw.Packet, error) {
	var pkts []edgegw.Packet
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPackets)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) == 2 && len(v) == 8 {
				pkts = append(pkts, edgegw.Packet{ID: binary.BigEndian.Uint16(k), Hash: binary.BigEndian.Uint64(v)})
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read committed packets: %w", err)
	}
	return pkts, nil
}
