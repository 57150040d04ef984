package config_test

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/config"
	"go.yaml.in/yaml/v3"
)

// contractDefaults is the config an empty file gives, written out from the
// contract's config section (CONTRACT.md), with id as gateway.id.
func contractDefaults(id string) *config.Config {
	return &config.Config{
		Gateway: config.Gateway{ID: id, DataDir: "./data", ShutdownTimeout: 10 * time.Second},
		MQTT: config.MQTT{
			Broker:         "tcp://127.0.0.1:1883",
			EmbeddedListen: "127.0.0.1:1883",
			ClientID:       "edgegw-" + id,
			QoS:            1,
			CleanSession:   false,
			Keepalive:      30 * time.Second,
			Subscriptions: []config.Subscription{{
				Topic:       "sensors/{site}/{device}/{field}",
				Format:      "json",
				Measurement: "sensors",
				JSON: config.JSON{TimeKey: "ts", TimeUnit: "ms", ValueKey: "value",
					TagKeys: []string{}, Fields: []string{}, Exclude: []string{}, NumericStrings: []string{}},
				Influx: config.SubInflux{Precision: "ns"},
			}},
			MaxPayloadBytes:       262144,
			MaxReadingsPerMessage: 10000,
		},
		Batch: config.Batch{Interval: 100 * time.Millisecond, MaxReadings: 10000},
		Window: config.Window{
			Size:            10 * time.Second,
			Slide:           10 * time.Second,
			AllowedLateness: 5 * time.Second,
			Time:            "event",
			LatePolicy:      "drop",
			Dedup:           true,
			MaxFuture:       time.Minute,
			Aggregates:      []string{"count", "mean", "min", "max", "sum"},
		},
		Uplink: config.Uplink{
			Influx: config.Influx{
				URL:      "http://127.0.0.1:8086",
				API:      "v1",
				Database: "edge",
				Gzip:     true,
				Timeout:  10 * time.Second,
			},
			Stdout:         false,
			BatchSize:      5000,
			FlushInterval:  time.Second,
			MaxOutboxBytes: 268435456,
		},
		Metrics: config.Metrics{Listen: "127.0.0.1:9464"},
		Log:     config.Log{Level: "info", Format: "text"},
	}
}

func mustLoad(t *testing.T, data string, environ ...string) *config.Config {
	t.Helper()
	c, err := config.LoadEnv([]byte(data), environ)
	if err != nil {
		t.Fatalf("LoadEnv(%q, %q): %v", data, environ, err)
	}
	return c
}

func equal(t *testing.T, what string, got, want *config.Config) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\ngot  %+v\nwant %+v", what, *got, *want)
	}
}

// problems returns the *config.Error values joined in err.
func problems(t *testing.T, err error) []*config.Error {
	t.Helper()
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	var out []*config.Error
	for _, e := range errs {
		var ce *config.Error
		if !errors.As(e, &ce) {
			t.Fatalf("error %q is a %T, not a *config.Error", e, e)
		}
		out = append(out, ce)
	}
	return out
}

func TestExampleLoads(t *testing.T) {
	got, err := config.LoadEnv(config.Example, nil)
	if err != nil {
		t.Fatalf("LoadEnv(Example): %v", err)
	}
	equal(t, "LoadEnv(Example)", got, contractDefaults("gw-01"))
}

// TestExampleHasEveryKey checks that the example names every key Redacted
// prints, which is every key Load knows, in the same order.
func TestExampleHasEveryKey(t *testing.T) {
	c := mustLoad(t, string(config.Example))
	out, err := c.Redacted()
	if err != nil {
		t.Fatalf("Redacted: %v", err)
	}
	got, want := keyPaths(t, config.Example), keyPaths(t, out)
	if !slices.Equal(got, want) {
		t.Errorf("keys of Example:\n%s\nwant the keys of Redacted:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(want) < 45 {
		t.Errorf("Redacted printed %d keys, want every key (45 or more)", len(want))
	}
}

// keyPaths returns the dotted path of every key in the YAML document, in
// document order; list items are written [].
func keyPaths(t *testing.T, data []byte) []string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("parse YAML: %v", err)
	}
	var out []string
	var visit func(n *yaml.Node, path string)
	visit = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			visit(n.Content[0], path)
		case yaml.MappingNode:
			for i := 0; i < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				out = append(out, p)
				visit(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for _, item := range n.Content {
				visit(item, path+"[]")
			}
		}
	}
	visit(&doc, "")
	return out
}

func TestDefaults(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatalf("os.Hostname: %v", err)
	}
	for _, data := range []string{
		"",
		"# nothing set\n",
		"gateway:\nmqtt:\nbatch:\nwindow:\nuplink:\nmetrics:\nlog:\n",
		"mqtt:\n  subscriptions: []\n",
	} {
		equal(t, "LoadEnv("+strings.ReplaceAll(data, "\n", `\n`)+")", mustLoad(t, data), contractDefaults(host))
	}
}

func TestSubscriptionMemberDefaults(t *testing.T) {
	c := mustLoad(t, `
mqtt:
  subscriptions:
    - topic: a/{device}/{field}
    - topic: b/{field}
      format: value
      json: { time_unit: s }
`)
	want := []config.Subscription{
		{Topic: "a/{device}/{field}", Format: "json", Measurement: "sensors",
			JSON: config.JSON{TimeKey: "ts", TimeUnit: "ms", ValueKey: "value",
				TagKeys: []string{}, Fields: []string{}, Exclude: []string{}, NumericStrings: []string{}},
			Influx: config.SubInflux{Precision: "ns"}},
		{Topic: "b/{field}", Format: "value", Measurement: "sensors",
			JSON: config.JSON{TimeKey: "ts", TimeUnit: "s", ValueKey: "value",
				TagKeys: []string{}, Fields: []string{}, Exclude: []string{}, NumericStrings: []string{}},
			Influx: config.SubInflux{Precision: "ns"}},
	}
	if !reflect.DeepEqual(c.MQTT.Subscriptions, want) {
		t.Errorf("Subscriptions:\ngot  %+v\nwant %+v", c.MQTT.Subscriptions, want)
	}
}

func TestClientIDDefault(t *testing.T) {
	if got := mustLoad(t, "gateway: {id: line-3}\n").MQTT.ClientID; got != "edgegw-line-3" {
		t.Errorf("client_id with gateway.id line-3 = %q, want edgegw-line-3", got)
	}
	if got := mustLoad(t, "mqtt: {client_id: mine}\n").MQTT.ClientID; got != "mine" {
		t.Errorf("client_id set to mine = %q, want mine", got)
	}
}

func TestEnvOverrides(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("ca"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := "mqtt:\n  broker: tcp://from-file:1883\nuplink:\n  stdout: false\n"
	c := mustLoad(t, file,
		"HOME=/root",
		"EDGEGW_CONFIG=/etc/edgegw.yaml", // for the command, not a key
		"EDGEGW_MQTT_BROKER=ssl://from-env:8883",
		"EDGEGW_MQTT_TLS_CA_FILE="+ca,
		"EDGEGW_MQTT_PASSWORD=pw",
		"EDGEGW_BATCH_INTERVAL=250ms",
		"EDGEGW_UPLINK_BATCH_SIZE=42",
		"EDGEGW_UPLINK_MAX_OUTBOX_BYTES=2097152",
		"EDGEGW_UPLINK_STDOUT=true",
		"EDGEGW_UPLINK_INFLUX_URL=",
		"EDGEGW_WINDOW_AGGREGATES=count, p99 mean",
		"EDGEGW_WINDOW_DEDUP=false",
		"EDGEGW_GATEWAY_ID=gw-env",
		"EDGEGW_GATEWAY_ID=second-is-ignored",
	)
	checks := []struct {
		key       string
		got, want any
	}{
		{"mqtt.broker", c.MQTT.Broker, "ssl://from-env:8883"},
		{"mqtt.tls.ca_file", c.MQTT.TLS.CAFile, ca},
		{"mqtt.password", string(c.MQTT.Password), "pw"},
		{"batch.interval", c.Batch.Interval, 250 * time.Millisecond},
		{"uplink.batch_size", c.Uplink.BatchSize, 42},
		{"uplink.max_outbox_bytes", c.Uplink.MaxOutboxBytes, int64(2 << 20)},
		{"uplink.stdout", c.Uplink.Stdout, true},
		{"uplink.influx.url", c.Uplink.Influx.URL, ""},
		{"window.aggregates", c.Window.Aggregates, []string{"count", "p99", "mean"}},
		{"window.dedup", c.Window.Dedup, false},
		{"gateway.id", c.Gateway.ID, "gw-env"},
		{"mqtt.client_id", c.MQTT.ClientID, "edgegw-gw-env"},
		{"log.level (not set)", c.Log.Level, "info"},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.key, ch.got, ch.want)
		}
	}
}

func TestEnvMistakes(t *testing.T) {
	tests := []struct {
		env, key, problem string
	}{
		{"EDGEGW_BATCH_INTERVAL=fast", "batch.interval", `"fast" (from EDGEGW_BATCH_INTERVAL) is not a duration; use e.g. 100ms, 10s`},
		{"EDGEGW_MQTT_QOS=one", "mqtt.qos", `"one" (from EDGEGW_MQTT_QOS) is not a whole number; use e.g. 1`},
		{"EDGEGW_UPLINK_GZIP=maybe", "uplink.influx.gzip", ""}, // wrong name: no key uplink.gzip
		{"EDGEGW_UPLINK_INFLUX_GZIP=maybe", "uplink.influx.gzip", `"maybe" (from EDGEGW_UPLINK_INFLUX_GZIP) is not a boolean; use true or false`},
		{"EDGEGW_MQTT_QOS=2", "mqtt.qos", "2 is not supported; use 0 or 1"},
		{"EDGEGW_MQTT_BROKR=tcp://x:1883", "EDGEGW_MQTT_BROKR", "names no config key; known variables: EDGEGW_MQTT_BROKER, EDGEGW_MQTT_EMBEDDED_LISTEN"},
		{"EDGEGW_INFLUX_URL=http://x", "EDGEGW_INFLUX_URL", "known variables start with EDGEGW_GATEWAY_, EDGEGW_MQTT_, EDGEGW_BATCH_"},
		{"EDGEGW_MQTT_SUBSCRIPTIONS=a/b", "EDGEGW_MQTT_SUBSCRIPTIONS", "cannot be set from the environment"},
		{"EDGEGW_WINDOW_AGGREGATES=", "window.aggregates", "empty; use one or more of count"},
	}
	for _, tt := range tests {
		_, err := config.LoadEnv(nil, []string{tt.env})
		ps := problems(t, err)
		if tt.problem == "" { // the variable names no key: reported under its own name
			if len(ps) != 1 || ps[0].Key != strings.SplitN(tt.env, "=", 2)[0] {
				t.Errorf("LoadEnv with %s: %v, want one problem naming the variable", tt.env, err)
			}
			continue
		}
		if len(ps) != 1 || ps[0].Key != tt.key || !strings.Contains(ps[0].Problem, tt.problem) {
			t.Errorf("LoadEnv with %s: %v\nwant one problem, key %s, containing %q", tt.env, err, tt.key, tt.problem)
		}
	}
}

type want struct{ key, problem string }

// badFiles maps each testdata/<name>.bad.yaml to every problem Load must
// report for it, no more and no fewer.
var badFiles = map[string][]want{
	"unknown_key":              {{"mqtt.brokr", "unknown key; known keys in mqtt: broker, embedded_listen, client_id, username, password, tls, qos, clean_session, keepalive, share_group, subscriptions, max_payload_bytes, max_readings_per_message"}},
	"unknown_section":          {{"metric", "unknown key; known keys at the top level: gateway, mqtt, batch, window, uplink, metrics, log"}},
	"unknown_subscription_key": {{"mqtt.subscriptions[0].topik", "unknown key; known keys in mqtt.subscriptions[0]: topic, format, measurement, booleans, json, influx, senml, value"}},
	"unknown_tls_key":          {{"mqtt.tls.ca", "known keys in mqtt.tls: ca_file, cert_file, key_file, insecure_skip_verify"}},
	"upper_case_key":           {{"Gateway", "unknown key (keys are lower case: gateway)"}},
	"section_not_mapping":      {{"batch", `"100ms" is not a mapping; use keys interval, max_readings`}},
	"subscriptions_not_list":   {{"mqtt.subscriptions", `"sensors/#" is not a list; use a list of mappings with keys topic, format`}},
	"subscription_not_mapping": {{"mqtt.subscriptions[0]", `"sensors/#" is not a mapping; use keys topic, format`}},
	"top_level_list":           {{"", "the config is a list, not a mapping; use sections gateway, mqtt"}},
	"bad_duration":             {{"batch.interval", `"fast" is not a duration; use e.g. 100ms, 10s`}},
	"duration_without_unit":    {{"window.size", "10 is not a duration; use e.g. 100ms, 10s"}},
	"negative_duration":        {{"gateway.shutdown_timeout", "-1s is not more than 0; use e.g. 10s"}},
	"bad_int":                  {{"batch.max_readings", `"lots" is not a whole number; use e.g. 10000`}},
	"bad_bool":                 {{"window.dedup", `"yes" is not a boolean; use true or false`}},
	"number_for_text":          {{"gateway.id", `0123 is not text; quote it: "0123"`}},
	"topic_not_text":           {{"mqtt.subscriptions[0].topic", `42 is not text; quote it: "42"`}},
	"empty_gateway_id":         {{"gateway.id", "empty; set a name for this gateway"}},
	"empty_data_dir":           {{"gateway.data_dir", "empty; set the directory that holds edgegw.db"}},
	"bad_qos":                  {{"mqtt.qos", "2 is not supported; use 0 or 1"}},
	"bad_scheme":               {{"mqtt.broker", `"http://127.0.0.1:1883" has scheme http://; use tcp://, ssl://, ws://, wss://, mqtt:// or mqtts://`}},
	"broker_without_port":      {{"mqtt.broker", `"tcp://broker.local" has no port`}},
	"bad_embedded_listen":      {{"mqtt.embedded_listen", `"1883" is not host:port; use e.g. 127.0.0.1:1883`}},
	"bad_keepalive":            {{"mqtt.keepalive", "0s is out of range; use 1s to 18h12m15s"}},
	"bad_share_group":          {{"mqtt.share_group", `"edge/gw" contains /, + or #`}},
	"missing_tls_file":         {{"mqtt.tls.ca_file", `"testdata/no-such-ca.pem" does not exist`}},
	"cert_without_key":         {{"mqtt.tls.key_file", "empty; required with mqtt.tls.cert_file"}},
	"missing_topic":            {{"mqtt.subscriptions[0].topic", "empty; use a topic template, e.g. sensors/{site}/{device}/{field}"}},
	"bad_format":               {{"mqtt.subscriptions[0].format", `"xml" is not a format; use value, json, influx or senml`}},
	"bad_precision":            {{"mqtt.subscriptions[0].influx.precision", `"sec" is not a precision; use ns, us, ms or s`}},
	"bad_time_zone":            {{"mqtt.subscriptions[0].json.time_zone", `"CEST" is not a time zone; use an IANA name like Europe/Berlin, or UTC`}},
	"bad_unit_suffix":          {{"mqtt.subscriptions[0].value.unit_suffix", `"(°C" is not a regular expression`}},
	"bad_json_paths":           {{"mqtt.subscriptions[0].json.fields", `"ENERGY..Total" is not a path`}, {"mqtt.subscriptions[0].json.exclude", `item 0 is empty`}, {"mqtt.subscriptions[0].json.numeric_strings", `"PAPP[" is not a path`}},
	"bad_payload_limits":       {{"mqtt.max_payload_bytes", "0 is out of range; use 1 to 268435455"}, {"mqtt.max_readings_per_message", "-1 is less than 1"}},
	"bad_topic_template":       {{"mqtt.subscriptions[0].topic", `has level "dev-{id}"; a level is literal text, +, # (last level only) or one {name} placeholder`}},
	"hash_not_last":            {{"mqtt.subscriptions[0].topic", "has # before the last level"}},
	"bad_placeholder_name":     {{"mqtt.subscriptions[0].topic", "has placeholder {1st}; a name is letters, digits and _"}},
	"duplicate_placeholder":    {{"mqtt.subscriptions[0].topic", "has placeholder {site} twice"}},
	"value_without_field":      {{"mqtt.subscriptions[0].topic", "has no {field} placeholder, which format value needs"}},
	"duplicate_filter":         {{"mqtt.subscriptions[1].topic", "subscribes to the same filter sensors/+/+/+ as mqtt.subscriptions[0].topic"}},
	"bad_time_unit":            {{"mqtt.subscriptions[0].json.time_unit", `"minutes" is not a time unit; use s, ms, us, ns or auto`}},
	"duplicate_tag_key":        {{"mqtt.subscriptions[0].json.tag_keys", `"room" is listed twice`}},
	"slide_not_dividing":       {{"window.size", "10s is not a multiple of window.slide 3s; use e.g. 9s or 12s"}},
	"slide_longer_than_size":   {{"window.slide", "20s is longer than window.size 10s"}},
	"bad_time_mode":            {{"window.time", `"processing" is not a time mode; use event or arrival`}},
	"bad_late_policy":          {{"window.late_policy", `"keep" is not a late policy; use drop or update`}},
	"bad_aggregate":            {{"window.aggregates", `"median" is not an aggregate; use count, mean, min, max, sum, first, last, stddev, p50, p90, p95 or p99`}},
	"duplicate_aggregate":      {{"window.aggregates", `"mean" is listed twice`}},
	"empty_aggregates":         {{"window.aggregates", "empty; use one or more of"}},
	"bad_api":                  {{"uplink.influx.api", `"v3" is not an API version; use v1 or v2`}},
	"v2_without_token":         {{"uplink.influx.token", "empty; required with uplink.influx.api v2"}},
	"v1_without_database":      {{"uplink.influx.database", "empty; required with uplink.influx.api v1"}},
	"bad_influx_url":           {{"uplink.influx.url", `"ftp://127.0.0.1:8086" has scheme ftp://; use http:// or https://`}},
	"nothing_to_write":         {{"uplink", "nothing to write to: set uplink.influx.url or uplink.stdout: true"}},
	"small_batch_size":         {{"uplink.batch_size", "0 is less than 1"}},
	"small_outbox":             {{"uplink.max_outbox_bytes", "1000 is less than 1048576 (1 MiB)"}},
	"bad_metrics_listen":       {{"metrics.listen", `"9464" is not host:port; use e.g. 127.0.0.1:9464, or "" to disable`}},
	"bad_log_level":            {{"log.level", `"verbose" is not a log level; use debug, info, warn or error`}},
	"bad_log_format":           {{"log.format", `"logfmt" is not a log format; use text or json`}},
	"several_mistakes": {
		{"gateway.shutdown_timeout", `"soon" is not a duration`},
		{"mqtt.brokr", "unknown key"},
		{"mqtt.qos", "2 is not supported"},
		{"mqtt.subscriptions[0].topic", "has placeholder {site} twice"},
		{"mqtt.subscriptions[0].format", `"senmlx" is not a format`},
		{"batch.max_readings", "0 is less than 1"},
		{"window.size", "10s is not a multiple of window.slide 4s; use e.g. 8s or 12s"},
		{"window.aggregates", `"median" is not an aggregate`},
		{"uplink.influx.org", "required with uplink.influx.api v2"},
		{"uplink.influx.bucket", "required with uplink.influx.api v2"},
		{"uplink.influx.token", "required with uplink.influx.api v2"},
		{"log.level", `"loud" is not a log level`},
	},
}

func TestBadFiles(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tested := map[string]bool{}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".bad.yaml")
		tested[name] = true
		wants, ok := badFiles[name]
		if !ok {
			t.Errorf("%s has no entry in badFiles", path)
			continue
		}
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			c, err := config.LoadEnv(data, nil)
			if err == nil {
				t.Fatalf("LoadEnv(%s) = %+v, nil; want an error", path, c)
			}
			if c != nil {
				t.Errorf("LoadEnv(%s) returned a Config with its error", path)
			}
			got := problems(t, err)
			var missing []want
			for _, w := range wants {
				if !slices.ContainsFunc(got, func(e *config.Error) bool {
					return e.Key == w.key && strings.Contains(e.Problem, w.problem)
				}) {
					missing = append(missing, w)
				}
			}
			if len(missing) > 0 || len(got) != len(wants) {
				t.Errorf("LoadEnv(%s) reported %d problems:\n%v\nwant %d; missing: %q", path, len(got), err, len(wants), missing)
			}
		})
	}
	for name := range badFiles {
		if !tested[name] {
			t.Errorf("badFiles[%q] has no file testdata/%s.bad.yaml", name, name)
		}
	}
}

func TestErrorText(t *testing.T) {
	_, err := config.LoadEnv([]byte("mqtt:\n  brokr: x\nbatch:\n  interval: fast\n"), nil)
	want := "mqtt.brokr: unknown key; known keys in mqtt: broker, embedded_listen, client_id, username, password, tls, qos, clean_session, keepalive, share_group, subscriptions, max_payload_bytes, max_readings_per_message\n" +
		`batch.interval: "fast" is not a duration; use e.g. 100ms, 10s`
	if err == nil || err.Error() != want {
		t.Errorf("LoadEnv error:\n%v\nwant\n%s", err, want)
	}
}

func TestTopicTemplatesAccepted(t *testing.T) {
	for _, topic := range []string{
		"sensors/{site}/{device}/{field}",
		"sensors/+/{device}/#",
		"{measurement}/{Device_2}/{field}",
		"#",
		"/leading/{field}",
		"$SYS/broker/{field}",
	} {
		data := "mqtt:\n  subscriptions:\n    - topic: " + `"` + topic + `"` + "\n"
		if _, err := config.LoadEnv([]byte(data), nil); err != nil {
			t.Errorf("topic %q: %v, want it accepted", topic, err)
		}
	}
}

func TestYAMLSyntaxError(t *testing.T) {
	_, err := config.LoadEnv([]byte("mqtt:\n  broker: [tcp://x\n"), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "parse config: yaml: line ") {
		t.Errorf("LoadEnv(broken YAML) error = %v, want parse config: yaml: line ...", err)
	}
	_, err = config.LoadEnv([]byte("log:\n  level: info\n  level: debug\n"), nil)
	if err == nil || !strings.Contains(err.Error(), `"level" already defined`) {
		t.Errorf("LoadEnv(repeated key) error = %v, want it to name the repeated key", err)
	}
}

func TestAnchorsAndMerges(t *testing.T) {
	c := mustLoad(t, `
mqtt:
  subscriptions:
    - &base
      topic: a/{device}/{field}
      json: { time_unit: s }
    - <<: *base
      topic: b/{device}/{field}
`)
	if got := c.MQTT.Subscriptions[1]; got.Topic != "b/{device}/{field}" || got.JSON.TimeUnit != "s" {
		t.Errorf("merged subscription = %+v, want topic b/{device}/{field} and time_unit s", got)
	}
	_, err := config.LoadEnv([]byte("x: &x { colour: red }\nwindow:\n  <<: *x\n"), nil)
	ps := problems(t, err)
	if len(ps) != 2 || ps[0].Key != "x" || ps[1].Key != "window.colour" {
		t.Errorf("merge of an unknown key: %v, want x and window.colour reported", err)
	}
}

func TestLoadFile(t *testing.T) {
	c, err := config.LoadFile("testdata/good.yaml")
	if err != nil {
		t.Fatalf("LoadFile(testdata/good.yaml): %v", err)
	}
	if c.Gateway.ID != "plant-7" || c.MQTT.ClientID != "edgegw-plant-7" || len(c.MQTT.Subscriptions) != 2 ||
		c.MQTT.Subscriptions[1].JSON.TagKeys[1] != "floor" || c.Window.Size != time.Minute || string(c.Uplink.Influx.Token) != "s3cr3t-t0ken" {
		t.Errorf("LoadFile(testdata/good.yaml) = %+v", *c)
	}

	_, err = config.LoadFile("testdata/no-such.yaml")
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "testdata/no-such.yaml") {
		t.Errorf("LoadFile(missing file) error = %v, want one naming the file, matching os.ErrNotExist", err)
	}

	broken := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(broken, []byte("log: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = config.LoadFile(broken)
	if err == nil || !strings.HasPrefix(err.Error(), "parse config "+broken+": yaml: line ") {
		t.Errorf("LoadFile(broken YAML) error = %v, want parse config %s: yaml: line ...", err, broken)
	}

	_, err = config.LoadFile("testdata/bad_qos.bad.yaml")
	if ps := problems(t, err); len(ps) != 1 || ps[0].Key != "mqtt.qos" {
		t.Errorf("LoadFile(testdata/bad_qos.bad.yaml) error = %v, want mqtt.qos", err)
	}
}

const secretConfig = `
mqtt:
  password: mqtt-pass-123
uplink:
  influx:
    password: influx-pass-456
    token: influx-token-789
`

var secretValues = []string{"mqtt-pass-123", "influx-pass-456", "influx-token-789"}

func TestRedactedHidesSecrets(t *testing.T) {
	c := mustLoad(t, secretConfig)
	if string(c.MQTT.Password) != "mqtt-pass-123" {
		t.Fatalf("MQTT.Password = %q, want the value from the file", string(c.MQTT.Password))
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatalf("Redacted: %v", err)
	}
	for _, s := range secretValues {
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("Redacted() shows secret %q:\n%s", s, out)
		}
	}
	if n := bytes.Count(out, []byte("<secret>")); n != 3 {
		t.Errorf("Redacted() has %d <secret>, want 3:\n%s", n, out)
	}
	if !bytes.Contains(out, []byte(`  username: ""`)) {
		t.Errorf("Redacted() lacks empty mqtt.username as \"\":\n%s", out)
	}
}

func TestRedactedRoundTrip(t *testing.T) {
	for _, src := range []string{string(config.Example), "gateway: {id: gw-9}\n"} {
		c := mustLoad(t, src)
		out, err := c.Redacted()
		if err != nil {
			t.Fatalf("Redacted: %v", err)
		}
		equal(t, "LoadEnv(Redacted())", mustLoad(t, string(out)), c)
	}
	c, err := config.LoadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatalf("Redacted: %v", err)
	}
	again := mustLoad(t, string(out))
	again.MQTT.Password, again.Uplink.Influx.Token = c.MQTT.Password, c.Uplink.Influx.Token
	equal(t, "LoadEnv(Redacted(good.yaml)), secrets restored", again, c)
	if !strings.Contains(string(out), "  size: 1m\n") || !strings.Contains(string(out), "aggregates: [count, mean, p99]") {
		t.Errorf("Redacted() writes durations or lists unlike the example:\n%s", out)
	}
}

func TestSecretsInLogs(t *testing.T) {
	c := mustLoad(t, secretConfig)
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		log := slog.New(h)
		log.Info("connect", "password", c.MQTT.Password, "token", c.Uplink.Influx.Token)
		log.Info("config", "config", c, "influx", c.Uplink.Influx)
	}
	log := buf.String()
	for _, s := range secretValues {
		if strings.Contains(log, s) {
			t.Errorf("log shows secret %q:\n%s", s, log)
		}
	}
	if !strings.Contains(log, "password=<secret>") || !strings.Contains(log, `"token":"<secret>"`) {
		t.Errorf("log lacks <secret> in place of the secrets:\n%s", log)
	}
	if got := config.Secret("").String(); got != "" {
		t.Errorf(`Secret("").String() = %q, want ""`, got)
	}
}

// FuzzLoad checks that no input makes Load panic, and that a config it
// accepts prints, through Redacted, as YAML that loads to the same config.
func FuzzLoad(f *testing.F) {
	f.Add(config.Example)
	paths, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.LoadEnv(data, nil)
		if err != nil {
			return
		}
		out, err := c.Redacted()
		if err != nil {
			t.Fatalf("Redacted of an accepted config: %v", err)
		}
		again, err := config.LoadEnv(out, nil)
		if err != nil {
			t.Fatalf("Redacted output does not load: %v\n%s", err, out)
		}
		again.MQTT.Password, again.Uplink.Influx.Password, again.Uplink.Influx.Token = c.MQTT.Password, c.Uplink.Influx.Password, c.Uplink.Influx.Token
		equal(t, "LoadEnv(Redacted())", again, c)
	})
}
