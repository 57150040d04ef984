package uplink

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	edgegw "github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// writeLP writes line protocol to database with InfluxDB's own API, as
// another writer sharing the database would.
func writeLP(t *testing.T, db *testenv.InfluxDB, database, lp string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Post(db.URL()+"/write?"+url.Values{"db": {database}}.Encode(), "text/plain", strings.NewReader(lp))
	if err != nil {
		t.Fatalf("write %q: %v", lp, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("write %q: %s", lp, resp.Status)
	}
}

// posts returns the number of write requests u sent.
func posts(t *testing.T, u *Uplink) uint64 {
	t.Helper()
	var m dto.Metric
	if err := u.mSeconds.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// TestRefusedLinesAreDeadLettered has a real InfluxDB 1.x refuse some lines
// of a batch with a field type conflict (400 "partial write"): those lines,
// and only those, go to the dead letters, the others are written, and the
// batch leaves the outbox.
func TestRefusedLinesAreDeadLettered(t *testing.T) {
	db := testenv.Influx(t)
	const before = 1_699_999_990_000_000_000 // 10 s before sample's first window
	station := edgegw.SeriesKey("weather station", []edgegw.Tag{{Key: "site", Value: "roof"}})

	t.Run("some lines", func(t *testing.T) {
		db.CreateDatabase(t, "edge_conflict")
		// Another writer made temperature_count a float in "weather
		// station": every rollup of that measurement conflicts.
		writeLP(t, db, "edge_conflict", `weather\ station,site=roof temperature_count=0.5 1699999990000000000`)
		rs := sample(40)
		var good, bad []edgegw.Rollup
		for _, r := range rs {
			if r.Series == station {
				bad = append(bad, r)
			} else {
				good = append(good, r)
			}
		}
		ob := newOutbox(rs...)
		var logs, out syncBuffer
		u := newUplink(t, Options{URL: db.URL(), Database: "edge_conflict", Gzip: true, Stdout: &out},
			ob, slog.New(slog.NewTextHandler(&logs, nil)), nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := u.Flush(ctx); err != nil {
			t.Fatalf("Flush() = %v, want the outbox emptied despite the refused lines", err)
		}
		if got := ob.removals(); !slices.Equal(got, []uint64{40}) {
			t.Errorf("removed through %v, want [40] once", got)
		}
		dead := ob.deadLetters()
		var deadLines []string
		for _, d := range dead {
			deadLines = append(deadLines, d.line)
			if !strings.HasPrefix(d.reason, "400 Bad Request: partial write: field type conflict") || strings.Contains(d.reason, "dropped=") {
				t.Errorf("dead letter reason %q, want InfluxDB's 400 field type conflict without its dropped count", d.reason)
			}
		}
		if got, want := strings.Join(deadLines, ""), lines(t, bad); got != want {
			t.Errorf("dead letters =\n%s\nwant the %d rollups of weather station:\n%s", got, len(bad), want)
		}
		checkStored(t, db, "edge_conflict", append(slices.Clone(good), edgegw.Rollup{
			Series: station, Start: before, Fields: []edgegw.Field{{Name: "temperature_count", Value: 0.5}},
		}))
		if got, want := out.String(), lines(t, good); got != want {
			t.Errorf("Stdout =\n%s\nwant only the written rollups:\n%s", got, want)
		}
		if got := testutil.ToFloat64(u.mDead); got != float64(len(bad)) {
			t.Errorf("edgegw_rollups_dead_letter_total = %v, want %d", got, len(bad))
		}
		if got := testutil.ToFloat64(u.mWritten); got != float64(len(good)) {
			t.Errorf("edgegw_rollups_written_total = %v, want %d", got, len(good))
		}
		if n := strings.Count(logs.String(), "upstream refused rollups"); n != 1 ||
			!strings.Contains(logs.String(), fmt.Sprintf("dead_letters=%d", len(bad))) || !strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("want one error line for the one reason, counting %d dead letters:\n%s", len(bad), logs.String())
		}
		// Bisection: about two requests per level for each refused line.
		if n := posts(t, u); n > 2*6*uint64(len(bad))+1 {
			t.Errorf("%d write requests to isolate %d refused lines among %d, want at most %d", n, len(bad), len(rs), 2*6*len(bad)+1)
		}

		// The next batch goes through as usual: nothing stalls.
		more := sample(43)[40:]
		ob.add(more...)
		if err := u.Flush(ctx); err != nil {
			t.Fatalf("Flush() = %v", err)
		}
		if got := ob.removals(); !slices.Equal(got, []uint64{40, 43}) {
			t.Errorf("removed through %v, want [40 43]", got)
		}
	})

	t.Run("every line", func(t *testing.T) {
		db.CreateDatabase(t, "edge_conflict_all")
		writeLP(t, db, "edge_conflict_all", "sensors temperature_count=0.5 1699999990000000000\n"+
			`weather\ station,site=roof temperature_count=0.5 1699999990000000000`)
		rs := sample(30)
		ob := newOutbox(rs...)
		reg := prometheus.NewRegistry()
		u := newUplink(t, Options{URL: db.URL(), Database: "edge_conflict_all"}, ob, nil, reg)
		if err := u.Flush(context.Background()); err != nil {
			t.Fatalf("Flush() = %v", err)
		}
		if got := len(ob.deadLetters()); got != len(rs) {
			t.Errorf("%d dead letters, want all %d", got, len(rs))
		}
		// InfluxDB says dropped=30 for 30 lines: no need to bisect.
		if n := posts(t, u); n != 1 {
			t.Errorf("%d write requests, want 1: the answer says every line was dropped", n)
		}
	})
}

func TestRefusal(t *testing.T) {
	for _, tc := range []struct {
		we      WriteError
		msg     string
		dropped int
	}{
		{WriteError{Status: 400, Body: `{"error":"partial write: field type conflict: input field \"x\" on measurement \"m\" is type float, already exists as type integer dropped=2"}`},
			`400 Bad Request: partial write: field type conflict: input field "x" on measurement "m" is type float, already exists as type integer`, 2},
		{WriteError{Status: 422, Body: `{"code":"unprocessable entity","message":"failure writing points to database: partial write: points beyond retention policy dropped=1"}`},
			"422 Unprocessable Entity: failure writing points to database: partial write: points beyond retention policy", 1},
		{WriteError{Status: 400, Body: "unable to parse 'x': invalid field format"},
			"400 Bad Request: unable to parse 'x': invalid field format", -1},
	} {
		msg, dropped := refusal(&tc.we)
		if msg != tc.msg || dropped != tc.dropped {
			t.Errorf("refusal(%q) = %q, %d; want %q, %d", tc.we.Body, msg, dropped, tc.msg, tc.dropped)
		}
	}
}
