package store

import (
	"slices"
	"testing"

	edgegw "github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/window"
)

// TestPacketsCommittedWithTheBatch checks that the packets of a batch are
// durable with it, that a later packet with the same identifier replaces the
// earlier one, and that a failed commit records none of its packets.
func TestPacketsCommittedWithTheBatch(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, nil, nil, nil)
	if got, err := s.Packets(); err != nil || len(got) != 0 {
		t.Fatalf("Packets() of a new file = %v, %v; want none", got, err)
	}
	first := []edgegw.Packet{{ID: 1, Hash: 11}, {ID: 2, Hash: 22}, {ID: 65535, Hash: 99}}
	if err := s.Commit(window.Ready{Meta: []byte("m1")}, first...); err != nil {
		t.Fatalf("Commit(packets %v) = %v", first, err)
	}
	if err := s.Commit(window.Ready{Meta: []byte("m2")}, edgegw.Packet{ID: 2, Hash: 23}); err != nil {
		t.Fatalf("Commit(packet 2 again) = %v", err)
	}
	// A commit that fails writes nothing: neither its state nor its packets.
	bad := window.Ready{Meta: []byte("m3"), State: []window.Change{{Key: nil, Value: []byte("v")}}}
	if err := s.Commit(bad, edgegw.Packet{ID: 3, Hash: 33}); err == nil {
		t.Fatalf("Commit(state change with an empty key) = nil; want an error")
	}
	if err := s.Commit(window.Ready{Meta: []byte("m4")}, edgegw.Packet{ID: 0, Hash: 1}); err == nil {
		t.Fatalf("Commit(packet with identifier 0) = nil; want an error")
	}
	s.Close()

	s = open(t, dir, nil, nil, nil)
	got, err := s.Packets()
	if err != nil {
		t.Fatalf("Packets() after reopening = %v", err)
	}
	want := []edgegw.Packet{{ID: 1, Hash: 11}, {ID: 2, Hash: 23}, {ID: 65535, Hash: 99}}
	if !slices.Equal(got, want) {
		t.Errorf("Packets() after reopening = %v; want %v", got, want)
	}
	if meta, _ := restored(t, s); string(meta) != "m2" {
		t.Errorf("meta after reopening = %q; want m2 (the failed commits wrote nothing)", meta)
	}
}
