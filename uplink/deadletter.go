package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// refused reports whether err is the upstream refusing the content of a
// write: 400 (InfluxDB 1.x and 2.x: a field type conflict, a point outside
// the retention policy, a line it cannot parse) or 422 (InfluxDB 2.x and 3
// for the same). Another write of the same lines fails the same way, so the
// refused lines are set apart instead of retried.
func refused(err error) (*WriteError, bool) {
	var we *WriteError
	if errors.As(err, &we) && (we.Status == http.StatusBadRequest || we.Status == http.StatusUnprocessableEntity) {
		return we, true
	}
	return nil, false
}

// droppedRE finds the number of points InfluxDB dropped in a partial write:
// "partial write: field type conflict: ... dropped=3".
var droppedRE = regexp.MustCompile(`\bdropped=(\d+)\s*$`)

// refusal returns the message of a refused write, from InfluxDB's JSON
// {"error": "..."} or {"message": "..."} when there is one, and the number
// of points it says it dropped (-1 when it does not say).
func refusal(we *WriteError) (msg string, dropped int) {
	msg = we.Body
	var body struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal([]byte(we.Body), &body) == nil {
		if body.Error != "" {
			msg = body.Error
		} else if body.Message != "" {
			msg = body.Message
		}
	}
	dropped = -1
	if m := droppedRE.FindStringSubmatchIndex(msg); m != nil {
		dropped, _ = strconv.Atoi(msg[m[2]:m[3]])
		msg = strings.TrimSpace(msg[:m[0]])
	}
	return fmt.Sprintf("%d %s: %s", we.Status, http.StatusText(we.Status), msg), dropped
}

// deadLetter handles a batch the upstream refused (we): it isolates the
// refused lines by writing halves of the batch until each refused line
// stands alone, keeps them in the outbox's dead letters and removes the
// batch. InfluxDB overwrites the accepted lines written more than once. If
// a write fails otherwise meanwhile, the whole batch is tried again later.
// It returns the backoff after a failure. u.mu is held.
func (u *Uplink) deadLetter(ctx context.Context, through uint64, we *WriteError) time.Duration {
	var bad []int
	var reasons []string
	var isolate func(lo, hi int, we *WriteError) error
	isolate = func(lo, hi int, we *WriteError) error {
		msg, dropped := refusal(we)
		if hi-lo == 1 || dropped == hi-lo {
			for i := lo; i < hi; i++ {
				bad = append(bad, i)
				reasons = append(reasons, msg)
			}
			return nil
		}
		mid := lo + (hi-lo)/2
		for _, half := range [2][2]int{{lo, mid}, {mid, hi}} {
			err := u.post(ctx, u.lines(half[0], half[1]))
			if err == nil {
				continue
			}
			we, ok := refused(err)
			if !ok {
				return err
			}
			if err := isolate(half[0], half[1], we); err != nil {
				return err
			}
		}
		return nil
	}
	if err := isolate(0, len(u.ends), we); err != nil {
		if ctx.Err() != nil {
			return 0
		}
		return u.failed(err, reason(err))
	}
	lines := make([][]byte, len(bad))
	for i, j := range bad {
		lines[i] = u.lines(j, j+1)
	}
	if err := u.ob.DeadLetter(through, lines, reasons); err != nil {
		return u.failed(fmt.Errorf("move refused rollups to the dead letters: %w", err), "outbox")
	}
	if u.opts.Stdout != nil {
		var good []byte
		for i := range u.ends {
			if _, isBad := slices.BinarySearch(bad, i); !isBad {
				good = append(good, u.lines(i, i+1)...)
			}
		}
		u.print(good) // the rollups are out of the outbox: a failure is only logged
	}
	u.mWritten.Add(float64(len(u.ends) - len(bad)))
	u.mDead.Add(float64(len(bad)))
	u.logRefusals(reasons)
	u.succeeded()
	return 0
}

// lines returns lines lo to hi (excluded) of the batch in u.body.
func (u *Uplink) lines(lo, hi int) []byte {
	start := 0
	if lo > 0 {
		start = u.ends[lo-1]
	}
	return u.body[start:u.ends[hi-1]]
}

// refusalLog is when a refusal reason was last logged and how many rollups
// it refused since.
type refusalLog struct {
	at      time.Time
	pending int
}

// maxRefusals bounds the reasons remembered for rate-limiting their logs.
const maxRefusals = 64

// logRefusals logs each distinct reason in reasons once, and again at most
// once per logInterval with the number of rollups it refused since. u.mu is
// held.
func (u *Uplink) logRefusals(reasons []string) {
	if len(reasons) == 0 {
		return
	}
	if u.refusals == nil || len(u.refusals) > maxRefusals {
		u.refusals = map[string]*refusalLog{}
	}
	now := time.Now()
	for i, r := range reasons {
		if i > 0 && r == reasons[i-1] {
			u.refusals[r].pending++
			continue
		}
		rl := u.refusals[r]
		if rl == nil {
			rl = &refusalLog{}
			u.refusals[r] = rl
		}
		rl.pending++
	}
	for i, r := range reasons {
		if i > 0 && r == reasons[i-1] {
			continue
		}
		rl := u.refusals[r]
		if rl.pending == 0 || now.Sub(rl.at) < logInterval {
			continue
		}
		u.log.Error("upstream refused rollups; kept as dead letters (edgegw state inspect --dead-letters prints them)",
			"target", u.target, "reason", r, "dead_letters", rl.pending)
		rl.at, rl.pending = now, 0
	}
}
