package store

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	edgegw "github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/window"
)

// The test binary re-executes itself as a child process when childEnv is
// set: "crash" commits batches until killed, "lock" holds the store open
// until its stdin closes.
const (
	childEnv    = "EDGEGW_STORE_TEST_CHILD"
	childDirEnv = "EDGEGW_STORE_TEST_DIR"
)

// maxChildBatches bounds the crash child's loop; it is killed long before.
const maxChildBatches = 1_000_000

func runChild(mode, dir string) int {
	s, err := Open(dir, &Options{LockTimeout: 5 * time.Second}, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	switch mode {
	case "lock":
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		return 0
	case "crash":
		var n uint64
		err := s.Restore(func(meta []byte, _ iter.Seq2[[]byte, []byte]) error {
			if meta != nil {
				n = binary.BigEndian.Uint64(meta)
			}
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// A kill between the last Commit and its Remove loses the Remove;
		// redo it before the next Commit, as the uplink would after a restart.
		if through, ok := crashRemoval(n - 1); n > 0 && ok {
			if err := s.Remove(through); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		fmt.Println("ready")
		for i := n; i < n+maxChildBatches; i++ {
			if err := s.Commit(crashBatch(i)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			if through, ok := crashRemoval(i); ok {
				if err := s.Remove(through); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 1
				}
			}
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown child mode %q\n", mode)
	return 2
}

// crashRollups is the number of rollups written by batches 0 .. n-1.
func crashRollups(n uint64) uint64 {
	// batch i writes i%3+1 rollups: 6 per 3 batches.
	total := n / 3 * 6
	for i := n / 3 * 3; i < n; i++ {
		total += i%3 + 1
	}
	return total
}

// crashBatch is batch i of the crash child: it sets key i%50, deletes key
// (i+25)%50, writes meta = i+1 and i%3+1 rollups numbered on from the
// previous batches (rollup g has Start g and outbox sequence g+1).
func crashBatch(i uint64) window.Ready {
	rd := window.Ready{
		Meta: binary.BigEndian.AppendUint64(nil, i+1),
		State: []window.Change{
			{Key: fmt.Appendf(nil, "k%02d", i%50), Value: binary.BigEndian.AppendUint64(nil, i)},
			{Key: fmt.Appendf(nil, "k%02d", (i+25)%50), Value: nil},
		},
	}
	first := crashRollups(i)
	for g := first; g < first+i%3+1; g++ {
		rd.Rollups = append(rd.Rollups, edgegw.Rollup{
			Series: fmt.Sprintf("crash,batch=%d", i),
			Start:  int64(g),
			Fields: []edgegw.Field{{Name: "x_count", Value: float64(g), Integer: true}, {Name: "x_mean", Value: float64(i) / 3}},
		})
	}
	return rd
}

// crashRemoval says whether the child removes delivered rollups after batch
// i, and through which sequence: after every tenth batch, all but the last 5.
func crashRemoval(i uint64) (uint64, bool) {
	if i%10 != 9 {
		return 0, false
	}
	return crashRollups(i+1) - 5, true
}

// crashState is the state after batches 0 .. n-1.
func crashState(n uint64) map[string]string {
	m := map[string]string{}
	for i := range n {
		for _, c := range crashBatch(i).State {
			if c.Value == nil {
				delete(m, string(c.Key))
			} else {
				m[string(c.Key)] = string(c.Value)
			}
		}
	}
	return m
}

// startChild starts the test binary as a child in mode on dir and waits for
// it to be ready.
func startChild(t *testing.T, mode, dir string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childDirEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child %s: got %q, %v; want ready; stderr:\n%s", mode, line, err, stderr.String())
	}
	return cmd, stdin
}

func TestErrInUseOtherProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cmd, stdin := startChild(t, "lock", dir)
	defer func() { stdin.Close(); cmd.Wait() }()

	_, err := Open(dir, nil, nil, nil)
	if want := fmt.Sprintf("data_dir %s is in use by another edgegw", dir); err == nil || err.Error() != want {
		t.Fatalf("Open while another process holds %s = %v, want %q", dir, err, want)
	}
	// The lock goes with the process, however it ends.
	cmd.Process.Kill()
	cmd.Wait()
	open(t, dir, nil, nil, nil)
}

func TestCrashKeepsACommittedPrefix(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; skipped with -short")
	}
	dir := t.TempDir()
	var lastN uint64
	const rounds = 10
	for round := range rounds {
		cmd, stdin := startChild(t, "crash", dir)
		time.Sleep(time.Duration(5+rand.IntN(100)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		stdin.Close()
		if err := cmd.Wait(); err == nil {
			t.Fatalf("round %d: the crash child ended by itself", round)
		}

		s := open(t, dir, nil, nil, nil)
		var n uint64
		var state map[string]string
		meta, state := restored(t, s)
		if meta != nil {
			n = binary.BigEndian.Uint64(meta)
		}
		if n < lastN {
			t.Fatalf("round %d: %d batches committed, fewer than the %d seen before", round, n, lastN)
		}
		lastN = n
		if diff := diffState(state, crashState(n)); diff != "" {
			t.Errorf("round %d: state after %d batches differs from the model: %s", round, n, diff)
		}

		rs, through := peekAll(t, s)
		total := crashRollups(n)
		// The oldest rollup left: after the removals of the batches before
		// the last, and maybe after the last batch's own removal.
		var firstOK []uint64
		var removed uint64
		for i := range n {
			if r, ok := crashRemoval(i); ok {
				if i+1 < n {
					removed = r
				} else {
					firstOK = append(firstOK, r)
				}
			}
		}
		firstOK = append(firstOK, removed)
		if total == 0 {
			if len(rs) != 0 {
				t.Fatalf("round %d: outbox holds %d rollups before any batch", round, len(rs))
			}
		} else {
			if through != total {
				t.Errorf("round %d: last outbox sequence %d, want %d for %d batches", round, through, total, n)
			}
			first := uint64(0)
			if len(rs) > 0 {
				first = uint64(rs[0].Start)
			}
			ok := false
			for _, f := range firstOK {
				ok = ok || f == first
			}
			if !ok {
				t.Errorf("round %d: oldest rollup %d, want one of %v", round, first, firstOK)
			}
			for j, r := range rs {
				if uint64(r.Start) != first+uint64(j) || r.Fields[0].Value != float64(r.Start) {
					t.Fatalf("round %d: rollup %d = %+v, want Start %d: a gap or damage", round, j, r, first+uint64(j))
				}
			}
		}
		t.Logf("round %d: %d batches, %d rollups committed, %d in the outbox", round, n, total, len(rs))
		checkInvariants(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if lastN == 0 {
		t.Fatalf("the crash child committed nothing in %d rounds: the test checked nothing", rounds)
	}
}

// diffState describes how got differs from want, or returns "".
func diffState(got, want map[string]string) string {
	var d []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			d = append(d, fmt.Sprintf("%s missing", k))
		} else if g != v {
			d = append(d, fmt.Sprintf("%s = %x, want %x", k, g, v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("%s present, want deleted", k))
		}
	}
	sort.Strings(d)
	return strings.Join(d, "; ")
}
