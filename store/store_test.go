package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	edgegw "github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/window"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"
)

func TestMain(m *testing.M) {
	if child := os.Getenv(childEnv); child != "" {
		os.Exit(runChild(child, os.Getenv(childDirEnv)))
	}
	os.Exit(m.Run())
}

// open opens a Store in dir and, when the test ends, checks the file with
// bbolt's consistency check and the outbox counters against a recount.
func open(t testing.TB, dir string, opts *Options, logger *slog.Logger, reg prometheus.Registerer) *Store {
	t.Helper()
	s, err := Open(dir, opts, logger, reg)
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	t.Cleanup(func() {
		checkInvariants(t, s)
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

// checkInvariants checks the file of an open Store (a closed one is left to
// whoever reopened its file).
func checkInvariants(t testing.TB, s *Store) {
	t.Helper()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	rollups, size := s.Outbox()
	err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		var n int
		var b int64
		tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			n++
			b += int64(len(v))
			return nil
		})
		if n != rollups || b != size {
			t.Errorf("Outbox() = %d rollups, %d bytes; a recount of the file gives %d, %d", rollups, size, n, b)
		}
		return nil
	})
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return
	}
	if err != nil {
		t.Errorf("check %s: %v", s.dir, err)
	}
}

func rollup(series string, start int64, count int) edgegw.Rollup {
	return edgegw.Rollup{Series: series, Start: start, Fields: []edgegw.Field{
		{Name: "temperature_count", Value: float64(count), Integer: true},
		{Name: "temperature_max", Value: 21.5},
		{Name: "temperature_mean", Value: -3.25},
	}}
}

// restored returns what Restore passes to its callback.
func restored(t *testing.T, s *Store) (meta []byte, state map[string]string) {
	t.Helper()
	state = map[string]string{}
	err := s.Restore(func(m []byte, st iter.Seq2[[]byte, []byte]) error {
		meta = m
		for k, v := range st {
			state[string(k)] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Restore() = %v", err)
	}
	return meta, state
}

func peekAll(t testing.TB, s *Store) ([]edgegw.Rollup, uint64) {
	t.Helper()
	rs, through, err := s.Peek(1 << 30)
	if err != nil {
		t.Fatalf("Peek() = %v", err)
	}
	return rs, through
}

func TestCommitRestoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, nil, nil, nil)
	meta, state := restored(t, s)
	if meta != nil || len(state) != 0 {
		t.Fatalf("Restore on a new file gave meta %q, %d state entries; want nil, none", meta, len(state))
	}

	want := []edgegw.Rollup{
		rollup("sensors,device=d1,site=s1", 1_700_000_000_000_000_000, 3),
		rollup(`sensors,device=d\ 2,site=s\,1`, -10_000_000_000, 0),
		{Series: "m", Start: 0},
	}
	batches := []window.Ready{
		{State: []window.Change{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("2")}},
			Meta: []byte("wm=1"), Rollups: want[:1]},
		{State: []window.Change{{Key: []byte("a"), Value: nil}, {Key: []byte("c"), Value: []byte{}}},
			Meta: []byte("wm=2"), Rollups: want[1:]},
		{State: []window.Change{{Key: []byte("b"), Value: []byte("22")}, {Key: []byte("never"), Value: nil}},
			Meta: []byte("wm=3")},
	}
	for i, rd := range batches {
		if err := s.Commit(rd); err != nil {
			t.Fatalf("Commit(batch %d) = %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}

	s = open(t, dir, nil, nil, nil)
	meta, state = restored(t, s)
	if string(meta) != "wm=3" {
		t.Errorf("restored meta = %q, want %q", meta, "wm=3")
	}
	if wantState := map[string]string{"b": "22", "c": ""}; !reflect.DeepEqual(state, wantState) {
		t.Errorf("restored state = %q, want %q", state, wantState)
	}
	got, through := peekAll(t, s)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("outbox after reopen = %+v, want %+v", got, want)
	}
	if through != 3 {
		t.Errorf("Peek sequence = %d, want 3", through)
	}
	if n, _ := s.Outbox(); n != 3 {
		t.Errorf("Outbox() = %d rollups after reopen, want 3", n)
	}
}

func TestRestoreReturnsCallbackError(t *testing.T) {
	s := open(t, t.TempDir(), nil, nil, nil)
	if err := s.Commit(window.Ready{State: []window.Change{{Key: []byte("k"), Value: []byte("v")}}, Meta: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	bad := errors.New("bad state")
	err := s.Restore(func(meta []byte, st iter.Seq2[[]byte, []byte]) error {
		for range st {
			return bad // stopping early must be fine too
		}
		return nil
	})
	if !errors.Is(err, bad) {
		t.Errorf("Restore() = %v, want the callback's error", err)
	}
}

func TestCommitIsAllOrNothing(t *testing.T) {
	s := open(t, t.TempDir(), nil, nil, nil)
	if err := s.Commit(window.Ready{Meta: []byte("m1"), State: []window.Change{{Key: []byte("k"), Value: []byte("v1")}}}); err != nil {
		t.Fatal(err)
	}
	err := s.Commit(window.Ready{
		Meta:    []byte("m2"),
		Rollups: []edgegw.Rollup{rollup("m", 1, 1)},
		State:   []window.Change{{Key: []byte("k"), Value: []byte("v2")}, {Key: nil, Value: []byte("x")}},
	})
	if err == nil || !strings.Contains(err.Error(), "commit batch") || !strings.Contains(err.Error(), "state change 1: empty key") {
		t.Fatalf("Commit with an empty key = %v, want an error naming the commit and the change", err)
	}
	meta, state := restored(t, s)
	if string(meta) != "m1" || state["k"] != "v1" {
		t.Errorf("after a failed Commit: meta %q, k=%q; want m1, v1", meta, state["k"])
	}
	if n, b := s.Outbox(); n != 0 || b != 0 {
		t.Errorf("Outbox() = %d, %d after a failed Commit, want 0, 0", n, b)
	}
	select {
	case <-s.Notify():
		t.Error("Notify fired after a failed Commit")
	default:
	}
}

func TestOutboxOrderAndRemove(t *testing.T) {
	s := open(t, t.TempDir(), nil, nil, nil)
	if rs, through, err := s.Peek(10); err != nil || rs != nil || through != 0 {
		t.Fatalf("Peek on an empty outbox = %v, %d, %v; want nil, 0, nil", rs, through, err)
	}
	if err := s.Commit(window.Ready{Meta: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Notify():
		t.Fatal("Notify fired after a Commit without rollups")
	default:
	}
	var all []edgegw.Rollup
	for b := range 3 {
		rs := []edgegw.Rollup{rollup("m,b=x", int64(b*10), 1), rollup("m,b=x", int64(b*10+1), 2)}
		all = append(all, rs...)
		if err := s.Commit(window.Ready{Meta: []byte("m"), Rollups: rs}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-s.Notify():
	default:
		t.Fatal("Notify did not fire after Commits with rollups")
	}
	select {
	case <-s.Notify():
		t.Fatal("Notify fired twice for three commits; want one buffered signal")
	default:
	}

	got, through, err := s.Peek(4)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, all[:4]) || through != 4 {
		t.Fatalf("Peek(4) = %v, %d; want the 4 oldest, sequence 4", got, through)
	}
	// Peek does not remove.
	if again, _, _ := s.Peek(4); !reflect.DeepEqual(again, got) {
		t.Fatalf("second Peek(4) = %v, want the same %v", again, got)
	}
	if err := s.Remove(through); err != nil {
		t.Fatalf("Remove(%d) = %v", through, err)
	}
	got, through = peekAll(t, s)
	if !reflect.DeepEqual(got, all[4:]) || through != 6 {
		t.Fatalf("Peek after Remove = %v, %d; want %v, 6", got, through, all[4:])
	}
	if n, b := s.Outbox(); n != 2 || b <= 0 {
		t.Errorf("Outbox() = %d, %d; want 2 rollups and their size", n, b)
	}
	if err := s.Remove(0); err != nil {
		t.Errorf("Remove(0) = %v", err)
	}
	if err := s.Remove(4); err != nil { // already gone
		t.Errorf("Remove(4) again = %v", err)
	}
	if err := s.Remove(1 << 40); err != nil {
		t.Errorf("Remove(past the end) = %v", err)
	}
	if n, b := s.Outbox(); n != 0 || b != 0 {
		t.Errorf("Outbox() = %d, %d after removing everything, want 0, 0", n, b)
	}
	// Sequence numbers keep growing after the outbox empties.
	if err := s.Commit(window.Ready{Meta: []byte("m"), Rollups: all[:1]}); err != nil {
		t.Fatal(err)
	}
	if _, through = peekAll(t, s); through != 7 {
		t.Errorf("sequence after emptying = %d, want 7", through)
	}
	if _, _, err := s.Peek(0); err == nil {
		t.Error("Peek(0) = nil error, want one naming max")
	}
}

func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestMaxOutboxBytesDropsOldest(t *testing.T) {
	dir := t.TempDir()
	one := int64(len(appendRollup(nil, ptr(rollup("m,s=1", 0, 1)))))
	opts := &Options{MaxOutboxBytes: 3 * one}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	reg := prometheus.NewRegistry()
	s := open(t, dir, opts, logger, reg)
	var all []edgegw.Rollup
	for i := range 5 {
		r := rollup("m,s=1", int64(i), 1)
		all = append(all, r)
		if err := s.Commit(window.Ready{Meta: []byte("m"), Rollups: []edgegw.Rollup{r}}); err != nil {
			t.Fatal(err)
		}
	}
	got, through := peekAll(t, s)
	if !reflect.DeepEqual(got, all[2:]) || through != 5 {
		t.Errorf("outbox over the cap = %v (through %d), want the 3 newest %v", got, through, all[2:])
	}
	if n, b := s.Outbox(); n != 3 || b != 3*one {
		t.Errorf("Outbox() = %d, %d; want 3, %d", n, b, 3*one)
	}
	if got := gathered(t, reg, "edgegw_outbox_dropped_total"); got != 2 {
		t.Errorf("edgegw_outbox_dropped_total = %v, want 2", got)
	}
	if got := gathered(t, reg, "edgegw_outbox_rollups"); got != 3 {
		t.Errorf("edgegw_outbox_rollups = %v, want 3", got)
	}
	if got := gathered(t, reg, "edgegw_outbox_bytes"); got != float64(3*one) {
		t.Errorf("edgegw_outbox_bytes = %v, want %d", got, 3*one)
	}
	// Two drops within the log interval: one line.
	if n := strings.Count(logs.String(), "oldest rollups dropped"); n != 1 {
		t.Errorf("logged %d drop lines, want 1 (rate-limited):\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "dropped=1") {
		t.Errorf("drop log does not give the number dropped:\n%s", logs.String())
	}

	// A batch larger than the cap keeps only its newest rollups.
	big := []edgegw.Rollup{rollup("m,s=1", 10, 1), rollup("m,s=1", 11, 1), rollup("m,s=1", 12, 1), rollup("m,s=1", 13, 1)}
	if err := s.Commit(window.Ready{Meta: []byte("m"), Rollups: big}); err != nil {
		t.Fatal(err)
	}
	if got, _ = peekAll(t, s); !reflect.DeepEqual(got, big[1:]) {
		t.Errorf("outbox after a batch over the cap = %v, want %v", got, big[1:])
	}

	// The byte count is exact across a restart.
	_, before := s.Outbox()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, opts, nil, nil)
	if n, b := s.Outbox(); n != 3 || b != before {
		t.Errorf("Outbox() after reopen = %d, %d; want 3, %d", n, b, before)
	}
}

func ptr[T any](v T) *T { return &v }

func TestMetricsOnlyWithRegistry(t *testing.T) {
	s := open(t, t.TempDir(), nil, nil, nil) // nil registerer: nothing to register
	if err := s.Commit(window.Ready{Meta: []byte("m"), Rollups: []edgegw.Rollup{rollup("m", 0, 1)}}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	open(t, t.TempDir(), nil, nil, reg)
	if n := testutil.CollectAndCount(reg); n != 5 { // outbox rollups, bytes, dropped; dead letters, dropped
		t.Errorf("metrics registered = %d, want 5", n)
	}
	// A second Store on the same registry is refused rather than panicking.
	if _, err := Open(t.TempDir(), nil, nil, reg); err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Errorf("Open with a registry already holding the metrics = %v, want a register error", err)
	}
}

func TestErrInUseSameProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	open(t, dir, nil, nil, nil)
	start := time.Now()
	s2, err := Open(dir, &Options{LockTimeout: 200 * time.Millisecond}, nil, nil)
	took := time.Since(start)
	if err == nil {
		s2.Close()
		t.Fatal("second Open of the same data_dir succeeded, want ErrInUse")
	}
	if !errors.Is(err, ErrInUse) {
		t.Errorf("second Open = %v, want errors.Is(err, ErrInUse)", err)
	}
	if want := fmt.Sprintf("data_dir %s is in use by another edgegw", dir); err.Error() != want {
		t.Errorf("second Open error = %q, want %q", err, want)
	}
	if took > 200*time.Millisecond+500*time.Millisecond {
		t.Errorf("second Open took %v, want about the lock timeout of 200ms", took)
	}
}

func TestOpenErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(file, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "open store "+file) {
		t.Errorf("Open(a regular file) = %v, want an error naming it", err)
	}
	if _, err := Open(t.TempDir(), &Options{MaxOutboxBytes: -1}, nil, nil); err == nil || !strings.Contains(err.Error(), "max outbox bytes -1") {
		t.Errorf("Open(MaxOutboxBytes -1) = %v, want an error naming it", err)
	}
	if _, err := Open(t.TempDir(), &Options{LockTimeout: -time.Second}, nil, nil); err == nil || !strings.Contains(err.Error(), "lock timeout") {
		t.Errorf("Open(LockTimeout -1s) = %v, want an error naming it", err)
	}
	// Not a bbolt file.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), bytes.Repeat([]byte("x"), 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, nil, nil, nil); err == nil || !strings.Contains(err.Error(), FileName) {
		t.Errorf("Open(a file that is not bbolt) = %v, want an error naming it", err)
	}
	// Open creates the directory with mode 0750.
	nested := filepath.Join(t.TempDir(), "a", "b")
	open(t, nested, nil, nil, nil)
	if st, err := os.Stat(nested); err != nil || st.Mode().Perm() != 0o750 {
		t.Errorf("created data_dir: %v, %v; want mode 0750", st.Mode(), err)
	}
}

func TestUndecodableEntryIsDropped(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	s := open(t, t.TempDir(), nil, slog.New(slog.NewTextHandler(&logs, nil)), reg)
	good := []edgegw.Rollup{rollup("m", 1, 1), rollup("m", 2, 1), rollup("m", 3, 1)}
	if err := s.Commit(window.Ready{Meta: []byte("m"), Rollups: good}); err != nil {
		t.Fatal(err)
	}
	// Damage the first and second entries as a failing disk might.
	err := s.db.Update(func(tx *bolt.Tx) error {
		ob := tx.Bucket(bucketOutbox)
		k := binary.BigEndian.AppendUint64(nil, 1)
		if err := ob.Put(k, []byte{codecVersion, 200}); err != nil {
			return err
		}
		return ob.Put(binary.BigEndian.AppendUint64(nil, 2), []byte{9, 9, 9})
	})
	if err != nil {
		t.Fatal(err)
	}
	// The counters were bypassed: reset them as Open would.
	s.outCount, s.outBytes = 3, 2+3+int64(len(appendRollup(nil, &good[2])))

	got, through, err := s.Peek(1)
	if err != nil {
		t.Fatalf("Peek past damaged entries = %v", err)
	}
	if !reflect.DeepEqual(got, good[2:]) || through != 3 {
		t.Errorf("Peek past damaged entries = %v, %d; want %v, 3", got, through, good[2:])
	}
	if n, _ := s.Outbox(); n != 1 {
		t.Errorf("Outbox() = %d after dropping 2 damaged entries, want 1", n)
	}
	if got := gathered(t, reg, "edgegw_outbox_dropped_total"); got != 2 {
		t.Errorf("edgegw_outbox_dropped_total = %v, want 2", got)
	}
	if !strings.Contains(logs.String(), "undecodable") || !strings.Contains(logs.String(), "dropped=2") {
		t.Errorf("log does not report the 2 undecodable entries:\n%s", logs.String())
	}
}

func TestConcurrentCommitPeekRemove(t *testing.T) {
	s := open(t, t.TempDir(), &Options{MaxOutboxBytes: 4000}, nil, nil)
	const batches = 200
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range batches {
			rs := []edgegw.Rollup{rollup("m", int64(2*i), 1), rollup("m", int64(2*i+1), 1)}
			st := []window.Change{{Key: fmt.Appendf(nil, "k%d", i%7), Value: []byte("v")}}
			if err := s.Commit(window.Ready{Meta: []byte("m"), Rollups: rs, State: st}); err != nil {
				t.Errorf("Commit = %v", err)
				return
			}
		}
	})
	done := make(chan struct{})
	var last int64 = -1
	wg.Go(func() {
		for range 10 * batches {
			rs, through, err := s.Peek(3)
			if err != nil {
				t.Errorf("Peek = %v", err)
				return
			}
			for _, r := range rs {
				if r.Start <= last {
					t.Errorf("rollup %d after %d: out of order", r.Start, last)
				}
				last = r.Start
			}
			if err := s.Remove(through); err != nil {
				t.Errorf("Remove = %v", err)
				return
			}
			select {
			case <-done:
				return
			default:
			}
		}
	})
	wg.Wait()
	close(done)
}

func TestCodec(t *testing.T) {
	cases := []edgegw.Rollup{
		{Series: "m", Start: 0},
		{Series: "", Start: math.MinInt64, Fields: []edgegw.Field{{Name: "", Value: 0}}},
		{Series: "sensors,site=ü", Start: math.MaxInt64, Fields: []edgegw.Field{
			{Name: "a_count", Value: 1 << 62, Integer: true},
			{Name: "b_count", Value: -7, Integer: true},
			{Name: "c_count", Value: 1.5, Integer: true}, // not whole: kept exactly
			{Name: "d_count", Value: 1 << 63, Integer: true},
			{Name: "e_count", Value: math.Copysign(0, -1), Integer: true}, // -0: kept as a float
			{Name: "inf", Value: math.Inf(-1)},
			{Name: "negzero", Value: math.Copysign(0, -1)},
			{Name: "nan", Value: math.NaN()},
		}},
	}
	for _, r := range cases {
		enc := appendRollup([]byte("prefix"), &r)[len("prefix"):]
		got, err := decodeRollup(enc)
		if err != nil {
			t.Fatalf("decodeRollup(appendRollup(%+v)) = %v", r, err)
		}
		if got.Series != r.Series || got.Start != r.Start || len(got.Fields) != len(r.Fields) {
			t.Fatalf("decodeRollup(appendRollup(%+v)) = %+v", r, got)
		}
		for i, f := range got.Fields {
			w := r.Fields[i]
			if f.Name != w.Name || f.Integer != w.Integer || math.Float64bits(f.Value) != math.Float64bits(w.Value) {
				t.Errorf("field %d = %+v, want %+v (bit-exact)", i, f, w)
			}
		}
		// Every truncation and every trailing extra byte is an error.
		for n := range len(enc) {
			if _, err := decodeRollup(enc[:n]); err == nil {
				t.Errorf("decodeRollup(first %d of %d bytes) = nil error", n, len(enc))
			}
		}
		if _, err := decodeRollup(append(bytes.Clone(enc), 0)); err == nil {
			t.Error("decodeRollup(with a trailing byte) = nil error")
		}
	}
	if _, err := decodeRollup([]byte{2}); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("decodeRollup(version 2) = %v, want an error naming the version", err)
	}
}
