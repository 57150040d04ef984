package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func (db *InfluxDB) do(ctx context.Context, method, path string, form url.Values) ([]byte, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, db.URL()+path, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return b, nil
}

// CreateDatabase creates database name.
func (db *InfluxDB) CreateDatabase(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.do(ctx, "POST", "/query", url.Values{"q": {fmt.Sprintf("CREATE DATABASE %q", name)}}); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
}

// Row is one point returned by Query: its measurement, tags, time in ns and
// fields (numbers as json.Number, so integers and floats stay exact).
type Row struct {
	Measurement string
	Tags        map[string]string
	Time        int64
	Fields      map[string]json.Number
}

// Query runs an InfluxQL query against database and returns every point of
// every series, with timestamps in ns. Use "GROUP BY *" to get tags back.
func (db *InfluxDB) Query(t testing.TB, database, q string) []Row {
	t.Helper()
	rows, err := db.QueryErr(database, q)
	if err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	return rows
}

// QueryErr is Query returning its error instead of failing the test.
func (db *InfluxDB) QueryErr(database, q string) ([]Row, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := db.do(ctx, "GET", "/query?"+url.Values{"db": {database}, "q": {q}, "epoch": {"ns"}}.Encode(), nil)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Results []struct {
			Error  string `json:"error"`
			Series []struct {
				Name    string            `json:"name"`
				Tags    map[string]string `json:"tags"`
				Columns []string          `json:"columns"`
				Values  [][]any           `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&resp); err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	var rows []Row
	for _, r := range resp.Results {
		if r.Error != "" {
			return nil, fmt.Errorf("influxdb: %s", r.Error)
		}
		for _, s := range r.Series {
			for _, v := range s.Values {
				row := Row{Measurement: s.Name, Tags: s.Tags, Fields: map[string]json.Number{}}
				for i, c := range s.Columns {
					if i >= len(v) || v[i] == nil {
						continue
					}
					n, _ := v[i].(json.Number)
					if c == "time" {
						row.Time, _ = n.Int64()
						continue
					}
					if n != "" {
						row.Fields[c] = n
					}
				}
				rows = append(rows, row)
			}
		}
	}
	return rows, nil
}
