package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	edgegw "github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/window"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func listDead(t *testing.T, s *Store) []DeadLetter {
	t.Helper()
	var out []DeadLetter
	for dl, err := range s.ListDeadLetters() {
		if err != nil {
			t.Fatalf("ListDeadLetters: %v", err)
		}
		out = append(out, dl)
	}
	return out
}

func TestDeadLetterRemovesAndKeeps(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	s := open(t, dir, nil, nil, reg)
	var rs []edgegw.Rollup
	for i := range 5 {
		rs = append(rs, rollup("m,id=a", int64(i), i+1))
	}
	if err := s.Commit(window.Ready{Rollups: rs, Meta: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	_, through := peekAll(t, s)
	before := time.Now()
	err := s.DeadLetter(through-2, [][]byte{[]byte("m,id=a x=1i 1\n"), []byte("m,id=a x=2i 2")}, []string{"400 Bad Request: conflict", "400 Bad Request: other"})
	if err != nil {
		t.Fatalf("DeadLetter() = %v", err)
	}
	if n, _ := s.Outbox(); n != 2 {
		t.Errorf("Outbox() = %d rollups, want the 2 after through", n)
	}
	dead := listDead(t, s)
	if len(dead) != 2 || string(dead[0].Line) != "m,id=a x=1i 1" || dead[0].Reason != "400 Bad Request: conflict" ||
		string(dead[1].Line) != "m,id=a x=2i 2" || dead[1].Seq <= dead[0].Seq || dead[0].At.Before(before.Add(-time.Second)) {
		t.Errorf("dead letters = %+v, want the two lines in order, without newline, with their reasons", dead)
	}
	if n, b := s.DeadLetters(); n != 2 || b == 0 {
		t.Errorf("DeadLetters() = %d, %d; want 2 and their size", n, b)
	}
	if got := gathered(t, reg, "edgegw_dead_letters"); got != 2 {
		t.Errorf("edgegw_dead_letters = %v, want 2", got)
	}
	if err := s.DeadLetter(0, [][]byte{[]byte("x")}, nil); err == nil || !strings.Contains(err.Error(), "one reason per line") {
		t.Errorf("DeadLetter with a reason missing = %v, want an error saying one reason per line", err)
	}

	// Reopened: the counters come back from the file, and Inspect sees
	// the same.
	s.Close()
	s2 := open(t, dir, nil, nil, nil)
	if n, _ := s2.DeadLetters(); n != 2 {
		t.Errorf("DeadLetters() after reopen = %d, want 2", n)
	}
	if _, err := Open(dir, &Options{LockTimeout: 10 * time.Millisecond}, nil, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open = %v, want ErrInUse", err)
	}
	err = Inspect(dir, &Options{LockTimeout: 50 * time.Millisecond}, func(v *View) error { return nil })
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), dir) {
		t.Errorf("Inspect while a Store holds the file = %v, want ErrInUse naming %s", err, dir)
	}
	s2.Close()
	err = Inspect(dir, nil, func(v *View) error {
		if n, b := v.Outbox(); n != 2 || b == 0 {
			t.Errorf("View.Outbox() = %d, %d; want 2 rollups", n, b)
		}
		if n, _ := v.DeadLetters(); n != 2 {
			t.Errorf("View.DeadLetters() = %d, want 2", n)
		}
		if string(v.Meta()) != "m" {
			t.Errorf("View.Meta() = %q, want %q", v.Meta(), "m")
		}
		var lines []string
		for dl, err := range v.ListDeadLetters() {
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, string(dl.Line))
		}
		if len(lines) != 2 {
			t.Errorf("View.ListDeadLetters() = %q, want 2 lines", lines)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Inspect() = %v", err)
	}
	if err := Inspect(filepath.Join(dir, "nope"), nil, func(*View) error { return nil }); !errors.Is(err, ErrNoFile) {
		t.Errorf("Inspect of an empty data_dir = %v, want ErrNoFile", err)
	}
}

func TestDeadLettersBounded(t *testing.T) {
	s := open(t, t.TempDir(), &Options{MaxOutboxBytes: 1000}, nil, nil)
	for i := range 50 {
		line := fmt.Appendf(nil, "m,id=a x=%di %d", i, i)
		if err := s.DeadLetter(0, [][]byte{line}, []string{"400 Bad Request"}); err != nil {
			t.Fatal(err)
		}
	}
	n, b := s.DeadLetters()
	dead := listDead(t, s)
	if b > 1000 || n != len(dead) || n == 0 || string(dead[len(dead)-1].Line) != "m,id=a x=49i 49" {
		t.Errorf("DeadLetters() = %d, %d bytes, last %q; want at most 1000 bytes, the newest kept", n, b, dead[len(dead)-1].Line)
	}
	if got := testutil.ToFloat64(s.dead.mDropped); got != float64(50-n) {
		t.Errorf("edgegw_dead_letters_dropped_total = %v, want %d", got, 50-n)
	}
}
