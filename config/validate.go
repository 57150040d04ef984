package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Aggregates accepted in window.aggregates, in the order the error lists them.
var aggregateNames = []string{"count", "mean", "min", "max", "sum", "first", "last", "stddev", "p50", "p90", "p95", "p99"}

// The most a keepalive can be: MQTT carries it as a 16-bit count of seconds.
const maxKeepalive = 65535 * time.Second

// The largest payload MQTT can carry: its remaining length is at most
// 268435455 bytes, topic included.
const maxMQTTPayload = 268435455

const minOutboxBytes = 1 << 20

// validate returns a problem for every value out of its range; subKeys are
// the key paths of c.MQTT.Subscriptions, hostErr why the host name, the
// default gateway.id, is unknown.
func (c *Config) validate(subKeys []string, hostErr error) []error {
	var errs []error
	bad := func(key, format string, args ...any) { add(&errs, key, format, args...) }
	positive := func(key string, d time.Duration, example string) {
		if d <= 0 {
			bad(key, "%s is not more than 0; use e.g. %s", formatDuration(d), example)
		}
	}
	oneOf := func(key, value, what string, accepted ...string) {
		if !slices.Contains(accepted, value) {
			bad(key, "%q is not %s; use %s", value, what, orList(accepted))
		}
	}

	g := &c.Gateway
	if g.ID == "" {
		msg := "empty; set a name for this gateway, e.g. gw-01"
		if hostErr != nil {
			msg += fmt.Sprintf(" (its default, the host name, is unknown: %v)", hostErr)
		}
		bad("gateway.id", "%s", msg)
	}
	if g.DataDir == "" {
		bad("gateway.data_dir", "empty; set the directory that holds edgegw.db, e.g. ./data")
	}
	positive("gateway.shutdown_timeout", g.ShutdownTimeout, "10s")

	m := &c.MQTT
	if m.Broker != "embedded" {
		if p := checkBroker(m.Broker); p != "" {
			bad("mqtt.broker", "%s", p)
		}
	}
	if p := checkHostPort(m.EmbeddedListen); p != "" {
		bad("mqtt.embedded_listen", "%s; use e.g. 127.0.0.1:1883", p)
	}
	for _, f := range []struct{ key, path string }{
		{"mqtt.tls.ca_file", m.TLS.CAFile},
		{"mqtt.tls.cert_file", m.TLS.CertFile},
		{"mqtt.tls.key_file", m.TLS.KeyFile},
	} {
		if p := checkFile(f.path); p != "" {
			bad(f.key, "%s", p)
		}
	}
	if m.TLS.CertFile != "" && m.TLS.KeyFile == "" {
		bad("mqtt.tls.key_file", "empty; required with mqtt.tls.cert_file: give the client certificate's private key file")
	}
	if m.TLS.KeyFile != "" && m.TLS.CertFile == "" {
		bad("mqtt.tls.cert_file", "empty; required with mqtt.tls.key_file: give the client certificate file")
	}
	if m.QoS != 0 && m.QoS != 1 {
		bad("mqtt.qos", "%d is not supported; use 0 or 1", m.QoS)
	}
	if m.Keepalive < time.Second || m.Keepalive > maxKeepalive {
		bad("mqtt.keepalive", "%s is out of range; use 1s to %s, e.g. 30s", formatDuration(m.Keepalive), formatDuration(maxKeepalive))
	}
	if strings.ContainsAny(m.ShareGroup, "/+#") {
		bad("mqtt.share_group", "%q contains /, + or #; use a name without them, e.g. edgegw", m.ShareGroup)
	}
	if m.MaxPayloadBytes < 1 || m.MaxPayloadBytes > maxMQTTPayload {
		bad("mqtt.max_payload_bytes", "%d is out of range; use 1 to %d (MQTT's limit), e.g. 262144", m.MaxPayloadBytes, maxMQTTPayload)
	}
	if m.MaxReadingsPerMessage < 1 {
		bad("mqtt.max_readings_per_message", "%d is less than 1; use e.g. 10000", m.MaxReadingsPerMessage)
	}
	filters := map[string]string{} // MQTT filter -> key of the topic subscribing to it
	for i := range m.Subscriptions {
		errs = append(errs, checkSubscription(&m.Subscriptions[i], subKeys[i], filters)...)
	}

	b := &c.Batch
	positive("batch.interval", b.Interval, "100ms")
	if b.MaxReadings < 1 {
		bad("batch.max_readings", "%d is less than 1; use e.g. 10000", b.MaxReadings)
	}

	w := &c.Window
	positive("window.size", w.Size, "10s")
	positive("window.slide", w.Slide, "10s")
	if w.Size > 0 && w.Slide > 0 {
		if w.Slide > w.Size {
			bad("window.slide", "%s is longer than window.size %s; use at most window.size", formatDuration(w.Slide), formatDuration(w.Size))
		} else if w.Size%w.Slide != 0 {
			lower := w.Size / w.Slide * w.Slide
			bad("window.size", "%s is not a multiple of window.slide %s; use e.g. %s or %s",
				formatDuration(w.Size), formatDuration(w.Slide), formatDuration(lower), formatDuration(lower+w.Slide))
		}
	}
	if w.AllowedLateness < 0 {
		bad("window.allowed_lateness", "%s is negative; use 0s or more, e.g. 5s", formatDuration(w.AllowedLateness))
	}
	oneOf("window.time", w.Time, "a time mode", "event", "arrival")
	oneOf("window.late_policy", w.LatePolicy, "a late policy", "drop", "update")
	positive("window.max_future", w.MaxFuture, "1m")
	if len(w.Aggregates) == 0 {
		bad("window.aggregates", "empty; use one or more of %s", strings.Join(aggregateNames, ", "))
	}
	seen := map[string]bool{}
	for _, a := range w.Aggregates {
		switch {
		case !slices.Contains(aggregateNames, a):
			bad("window.aggregates", "%q is not an aggregate; use %s", a, orList(aggregateNames))
		case seen[a]:
			bad("window.aggregates", "%q is listed twice; list each aggregate once", a)
		}
		seen[a] = true
	}

	u, in := &c.Uplink, &c.Uplink.Influx
	oneOf("uplink.influx.api", in.API, "an API version", "v1", "v2")
	if in.URL == "" {
		if !u.Stdout {
			bad("uplink", "nothing to write to: set uplink.influx.url or uplink.stdout: true")
		}
	} else {
		if p := checkHTTPURL(in.URL); p != "" {
			bad("uplink.influx.url", "%s", p)
		}
		switch in.API {
		case "v1":
			if in.Database == "" {
				bad("uplink.influx.database", "empty; required with uplink.influx.api v1, e.g. edge")
			}
		case "v2":
			for _, f := range []struct{ key, value string }{
				{"uplink.influx.org", in.Org},
				{"uplink.influx.bucket", in.Bucket},
				{"uplink.influx.token", string(in.Token)},
			} {
				if f.value == "" {
					bad(f.key, "empty; required with uplink.influx.api v2")
				}
			}
		}
	}
	positive("uplink.influx.timeout", in.Timeout, "10s")
	if u.BatchSize < 1 {
		bad("uplink.batch_size", "%d is less than 1; use e.g. 5000", u.BatchSize)
	}
	positive("uplink.flush_interval", u.FlushInterval, "1s")
	if u.MaxOutboxBytes < minOutboxBytes {
		bad("uplink.max_outbox_bytes", "%d is less than %d (1 MiB); use e.g. 268435456 (256 MiB)", u.MaxOutboxBytes, minOutboxBytes)
	}

	if c.Metrics.Listen != "" {
		if p := checkHostPort(c.Metrics.Listen); p != "" {
			bad("metrics.listen", `%s; use e.g. 127.0.0.1:9464, or "" to disable`, p)
		}
	}

	oneOf("log.level", c.Log.Level, "a log level", "debug", "info", "warn", "error")
	oneOf("log.format", c.Log.Format, "a log format", "text", "json")
	return errs
}

// checkSubscription returns the problems of the subscription s at key,
// adding its MQTT filter to filters.
func checkSubscription(s *Subscription, key string, filters map[string]string) []error {
	var errs []error
	bad := func(k, format string, args ...any) { add(&errs, key+"."+k, format, args...) }

	filter, names, p := checkTopic(s.Topic)
	if p != "" {
		bad("topic", "%s", p)
	} else if other, ok := filters[filter]; ok {
		bad("topic", "%q subscribes to the same filter %s as %s; use one subscription per filter", s.Topic, filter, other)
	} else {
		filters[filter] = key + ".topic"
	}
	if !slices.Contains([]string{"value", "json", "influx", "senml"}, s.Format) {
		bad("format", "%q is not a format; use value, json, influx or senml", s.Format)
	}
	if p == "" && s.Format == "value" && !names["field"] {
		bad("topic", "%q has no {field} placeholder, which format value needs to name the field; use e.g. sensors/{site}/{device}/{field}", s.Topic)
	}
	if s.Measurement == "" && !names["measurement"] && s.Format != "influx" {
		bad("measurement", "empty; use e.g. sensors, or a {measurement} placeholder in the topic")
	}
	if !slices.Contains([]string{"s", "ms", "us", "ns", "auto"}, s.JSON.TimeUnit) {
		bad("json.time_unit", "%q is not a time unit; use s, ms, us, ns or auto", s.JSON.TimeUnit)
	}
	if s.JSON.TimeZone != "" {
		if _, err := time.LoadLocation(s.JSON.TimeZone); err != nil || s.JSON.TimeZone == "Local" {
			bad("json.time_zone", "%q is not a time zone; use an IANA name like Europe/Berlin, or UTC", s.JSON.TimeZone)
		}
	}
	if !slices.Contains([]string{"ns", "us", "ms", "s"}, s.Influx.Precision) {
		bad("influx.precision", "%q is not a precision; use ns, us, ms or s", s.Influx.Precision)
	}
	if s.Value.UnitSuffix != "" {
		if _, err := regexp.Compile(s.Value.UnitSuffix); err != nil {
			bad("value.unit_suffix", "%q is not a regular expression (%v); use e.g. \\s*°?C$", s.Value.UnitSuffix, err)
		}
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"json.fields", s.JSON.Fields}, {"json.exclude", s.JSON.Exclude}, {"json.numeric_strings", s.JSON.NumericStrings}} {
		for i, p := range l.list {
			if p == "" {
				bad(l.key, "item %d is empty; use dotted member paths or globs, e.g. ENERGY.* or uplink_message.rx_metadata", i)
				continue
			}
			for _, seg := range strings.Split(p, ".") {
				if _, err := path.Match(seg, ""); err != nil || seg == "" {
					bad(l.key, "%q is not a path; use member names and globs joined with '.', e.g. ENERGY.* or temp*", p)
					break
				}
			}
		}
	}
	if s.Format == "json" && names["field"] && s.JSON.ValueKey == "" {
		bad("json.value_key", "empty; with {field} in the topic, name the payload member holding the value, e.g. value")
	}
	seen := map[string]bool{}
	for i, t := range s.JSON.TagKeys {
		switch {
		case t == "":
			bad("json.tag_keys", "item %d is empty; use dotted payload member paths, e.g. unit or device.name", i)
		case seen[t]:
			bad("json.tag_keys", "%q is listed twice; list each member once", t)
		}
		seen[t] = true
	}
	return errs
}

// checkTopic checks the topic template t. It returns the MQTT filter the
// template subscribes to (each placeholder becomes +) and the placeholder
// names, or a problem.
func checkTopic(t string) (filter string, names map[string]bool, problem string) {
	const accepted = "a level is literal text, +, # (last level only) or one {name} placeholder, e.g. sensors/{site}/{device}/{field}"
	switch {
	case t == "":
		return "", nil, "empty; use a topic template, e.g. sensors/{site}/{device}/{field}"
	case !utf8.ValidString(t) || strings.ContainsRune(t, 0):
		return "", nil, fmt.Sprintf("%q is not valid UTF-8 text without NUL characters, as MQTT requires", t)
	case len(t) > 65535:
		return "", nil, fmt.Sprintf("is %d bytes long; MQTT allows at most 65535", len(t))
	case strings.HasPrefix(t, "$share/"):
		return "", nil, fmt.Sprintf("%q starts with $share/; set mqtt.share_group instead and give the topic without it", t)
	}
	levels := strings.Split(t, "/")
	names = map[string]bool{}
	out := make([]string, len(levels))
	for i, l := range levels {
		switch {
		case l == "#":
			if i != len(levels)-1 {
				return "", nil, fmt.Sprintf("%q has # before the last level; %s", t, accepted)
			}
			out[i] = l
		case l == "+":
			out[i] = l
		case len(l) >= 2 && l[0] == '{' && l[len(l)-1] == '}':
			name := l[1 : len(l)-1]
			if !validName(name) {
				return "", nil, fmt.Sprintf("%q has placeholder %s; a name is letters, digits and _, not starting with a digit, e.g. {device}", t, l)
			}
			if names[name] {
				return "", nil, fmt.Sprintf("%q has placeholder {%s} twice; use each name once", t, name)
			}
			names[name] = true
			out[i] = "+"
		case strings.ContainsAny(l, "+#{}"):
			return "", nil, fmt.Sprintf("%q has level %q; %s", t, l, accepted)
		default:
			out[i] = l
		}
	}
	return strings.Join(out, "/"), names, ""
}

// validName reports whether s matches [a-zA-Z_][a-zA-Z0-9_]*.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func checkBroker(b string) string {
	const accepted = `use tcp://, ssl://, ws://, wss://, mqtt:// or mqtts:// and host:port, e.g. tcp://127.0.0.1:1883, or "embedded"`
	u, err := url.Parse(b)
	switch {
	case b == "":
		return "empty; " + accepted
	case err != nil || u.Scheme == "":
		return fmt.Sprintf("%q is not a broker URL; %s", b, accepted)
	case !slices.Contains([]string{"tcp", "ssl", "ws", "wss", "mqtt", "mqtts"}, u.Scheme):
		return fmt.Sprintf("%q has scheme %s://; %s", b, u.Scheme, accepted)
	case u.Hostname() == "":
		return fmt.Sprintf("%q has no host; %s", b, accepted)
	case u.Port() == "" && u.Scheme != "ws" && u.Scheme != "wss":
		return fmt.Sprintf("%q has no port; %s", b, accepted)
	}
	return ""
}

func checkHTTPURL(s string) string {
	const accepted = "use http:// or https:// and a host, e.g. http://127.0.0.1:8086"
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Scheme == "":
		return fmt.Sprintf("%q is not a URL; %s", s, accepted)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("%q has scheme %s://; %s", s, u.Scheme, accepted)
	case u.Hostname() == "":
		return fmt.Sprintf("%q has no host; %s", s, accepted)
	}
	return ""
}

// checkHostPort returns a problem unless s is host:port with a numeric port
// (the host may be empty: all interfaces).
func checkHostPort(s string) string {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q is not host:port", s)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("%q has port %q, not a number from 0 to 65535", s, port)
	}
	return ""
}

// checkFile returns a problem unless path is empty or names a file.
func checkFile(path string) string {
	if path == "" {
		return ""
	}
	fi, err := os.Stat(path)
	switch {
	case os.IsNotExist(err):
		return fmt.Sprintf(`%q does not exist; give the path of a PEM file, or "" for none`, path)
	case err != nil:
		return fmt.Sprintf("%q cannot be read (%v); give the path of a readable PEM file", path, err)
	case fi.IsDir():
		return fmt.Sprintf("%q is a directory; give the path of a PEM file", path)
	}
	return ""
}

// orList writes xs as "a, b or c".
func orList(xs []string) string {
	if len(xs) < 2 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}
