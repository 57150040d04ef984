package mqtt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The golden corpus in testdata/corpus holds real device payloads copied
// from public documentation, one directory per case, named
// <family>_<what>:
//
//	source        line 1: the URL the payload was copied from; then notes
//	topic         the topic it is published on (one line)
//	payload       the bytes as published
//	default.json  the subscription a new user would write (topic, format,
//	              measurement only)
//	default.lp    the readings it must give, or
//	default.err   the rejection reason on line 1
//	tuned.json    optional: the subscription with the options a user would
//	tuned.lp/err  set, and what it must give
//
// Readings are "<series> <field>=<value> <time ns>" lines, plus one
// "# skipped <reason> x<n>" or "# assumed <reason> x<n>" line per reason;
// lines are compared sorted.

const corpusDir = "testdata/corpus"

// corpusCases returns the case directories of the corpus, sorted.
func corpusCases(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatalf("read the corpus: %v", err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(corpusDir, e.Name()))
		}
	}
	if len(dirs) == 0 {
		t.Fatalf("no cases in %s", corpusDir)
	}
	return dirs
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// corpusSkipLines writes what a decode skipped or assumed, one line per
// reason, without the details (they are free text).
func corpusSkipLines(sk *skips) string {
	var b strings.Builder
	for _, k := range sk.list {
		verb := "skipped"
		if k.reason == assumeNoZone {
			verb = "assumed"
		}
		fmt.Fprintf(&b, "# %s %s x%d\n", verb, k.reason, k.n)
	}
	return b.String()
}

// corpusLines splits s into its non-empty lines, sorted.
func corpusLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// TestCorpusLayout checks that every case holds the files it must and
// logs how many cases there are per format and per family.
func TestCorpusLayout(t *testing.T) {
	formats := map[string]int{}
	families := map[string]int{}
	dirs := corpusCases(t)
	for _, dir := range dirs {
		name := filepath.Base(dir)
		for _, f := range []string{"source", "topic", "payload", "default.json"} {
			if !fileExists(filepath.Join(dir, f)) {
				t.Errorf("%s: no %s", name, f)
			}
		}
		if src, err := os.ReadFile(filepath.Join(dir, "source")); err == nil {
			first, _, _ := strings.Cut(string(src), "\n")
			if !strings.HasPrefix(first, "https://") && !strings.HasPrefix(first, "http://") {
				t.Errorf("%s: source line 1 is %q; want the URL the payload was copied from", name, first)
			}
		}
		if topic, err := os.ReadFile(filepath.Join(dir, "topic")); err == nil {
			if s := strings.TrimSuffix(string(topic), "\n"); s == "" || strings.Contains(s, "\n") {
				t.Errorf("%s: topic must be one non-empty line, got %q", name, topic)
			}
		}
		for _, run := range []string{"default", "tuned"} {
			hasSub := fileExists(filepath.Join(dir, run+".json"))
			lp := fileExists(filepath.Join(dir, run+".lp"))
			rej := fileExists(filepath.Join(dir, run+".err"))
			switch {
			case hasSub && lp == rej:
				t.Errorf("%s: %s.json needs exactly one of %s.lp and %s.err", name, run, run, run)
			case !hasSub && (lp || rej):
				t.Errorf("%s: %s expectations without %s.json", name, run, run)
			}
		}
		if fileExists(filepath.Join(dir, "default.json")) {
			sub, _ := readCaseSubscription(t, filepath.Join(dir, "default.json"))
			formats[sub.Format]++
		}
		if fileExists(filepath.Join(dir, "tuned.json")) {
			tuned, _ := readCaseSubscription(t, filepath.Join(dir, "tuned.json"))
			def, _ := readCaseSubscription(t, filepath.Join(dir, "default.json"))
			if tuned.Format != def.Format {
				t.Errorf("%s: tuned format %q differs from default %q", name, tuned.Format, def.Format)
			}
		}
		family, _, _ := strings.Cut(name, "_")
		families[family]++
	}
	if len(dirs) < 48 {
		t.Errorf("the corpus holds %d cases; want at least 48", len(dirs))
	}
	if len(families) < 10 {
		t.Errorf("the corpus covers %d families; want at least 10", len(families))
	}
	t.Logf("corpus: %d cases; per format: %s; per family: %s", len(dirs), countList(formats), countList(families))
}

// countList formats counts as "a 3, b 1", by name.
func countList(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// TestCorpus decodes every corpus payload with the default subscription
// and, where the case has one, the tuned subscription, and compares the
// readings (sorted) and skip counts, or the rejection reason, with the
// case's expectation.
func TestCorpus(t *testing.T) {
	for _, dir := range corpusCases(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			topicBytes, err := os.ReadFile(filepath.Join(dir, "topic"))
			if err != nil {
				t.Fatal(err)
			}
			topic := strings.TrimSuffix(string(topicBytes), "\n")
			payload, err := os.ReadFile(filepath.Join(dir, "payload"))
			if err != nil {
				t.Fatal(err)
			}
			for _, run := range []string{"default", "tuned"} {
				subFile := filepath.Join(dir, run+".json")
				if run == "tuned" && !fileExists(subFile) {
					continue
				}
				t.Run(run, func(t *testing.T) {
					checkCorpusRun(t, dir, run, topic, payload)
				})
			}
		})
	}
}

func checkCorpusRun(t *testing.T, dir, run, topic string, payload []byte) {
	sub, arrivalTime := readCaseSubscription(t, filepath.Join(dir, run+".json"))
	r, err := newRouter([]Subscription{sub}, arrivalTime)
	if err != nil {
		t.Fatalf("newRouter(%s.json): %v", run, err)
	}
	rs, err := r.decode(nil, topic, payload, arrival)
	lpFile, errFile := filepath.Join(dir, run+".lp"), filepath.Join(dir, run+".err")
	if err != nil {
		var re *RejectError
		if !errors.As(err, &re) {
			t.Fatalf("decode: error %T %v is not a *RejectError", err, err)
		}
		if len(rs) != 0 {
			t.Errorf("decode returned %d readings with its rejection; want none", len(rs))
		}
		want, rerr := os.ReadFile(errFile)
		if rerr != nil {
			wantLP, _ := os.ReadFile(lpFile)
			t.Fatalf("decode(%q) rejected the message: %s: %s\nwant:\n%s", topic, re.Reason, re.Msg, wantLP)
		}
		wantReason, _, _ := strings.Cut(string(want), "\n")
		if re.Reason != strings.TrimSpace(wantReason) {
			t.Errorf("decode(%q) rejected for %s (%s); want %s", topic, re.Reason, re.Msg, wantReason)
		}
		return
	}
	got := corpusLines(lineProtocol(rs) + corpusSkipLines(&r.sk))
	if want, rerr := os.ReadFile(errFile); rerr == nil {
		wantReason, _, _ := strings.Cut(string(want), "\n")
		t.Fatalf("decode(%q) accepted the message; want a rejection for %s\ngot:\n%s", topic, wantReason, strings.Join(got, "\n"))
	}
	wantBytes, rerr := os.ReadFile(lpFile)
	if rerr != nil {
		t.Fatalf("read the expectation: %v\ngot:\n%s", rerr, strings.Join(got, "\n"))
	}
	want := corpusLines(string(wantBytes))
	if !slices.Equal(got, want) {
		t.Errorf("decode(%q) with %s.json:\n%s", topic, run, lineDiff(got, want))
	}
}

// lineDiff lists the lines only in got (+) and only in want (-), both
// sorted multisets.
func lineDiff(got, want []string) string {
	var b strings.Builder
	i, j := 0, 0
	for i < len(got) || j < len(want) {
		switch {
		case j == len(want) || (i < len(got) && got[i] < want[j]):
			fmt.Fprintf(&b, "+ %s\n", got[i])
			i++
		case i == len(got) || want[j] < got[i]:
			fmt.Fprintf(&b, "- %s\n", want[j])
			j++
		default:
			i++
			j++
		}
	}
	return "(+ got only, - want only)\n" + b.String()
}
