package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// leaf is one key of the config file bound to the field of a Config it
// sets. ptr is a *string, *Secret, *time.Duration, *int, *int64, *bool,
// *[]string or *[]Subscription.
type leaf struct {
	key string
	ptr any
}

// leaves lists every key of the config file in the order of the example,
// bound to c. It is the one description of the file's keys: the strict
// key check, the environment overrides, decoding and Redacted all use it.
func leaves(c *Config) []leaf {
	g, m, b, w, u, i := &c.Gateway, &c.MQTT, &c.Batch, &c.Window, &c.Uplink, &c.Uplink.Influx
	return []leaf{
		{"gateway.id", &g.ID},
		{"gateway.data_dir", &g.DataDir},
		{"gateway.shutdown_timeout", &g.ShutdownTimeout},

		{"mqtt.broker", &m.Broker},
		{"mqtt.embedded_listen", &m.EmbeddedListen},
		{"mqtt.client_id", &m.ClientID},
		{"mqtt.username", &m.Username},
		{"mqtt.password", &m.Password},
		{"mqtt.tls.ca_file", &m.TLS.CAFile},
		{"mqtt.tls.cert_file", &m.TLS.CertFile},
		{"mqtt.tls.key_file", &m.TLS.KeyFile},
		{"mqtt.tls.insecure_skip_verify", &m.TLS.InsecureSkipVerify},
		{"mqtt.qos", &m.QoS},
		{"mqtt.clean_session", &m.CleanSession},
		{"mqtt.keepalive", &m.Keepalive},
		{"mqtt.share_group", &m.ShareGroup},
		{"mqtt.subscriptions", &m.Subscriptions},
		{"mqtt.max_payload_bytes", &m.MaxPayloadBytes},
		{"mqtt.max_readings_per_message", &m.MaxReadingsPerMessage},

		{"batch.interval", &b.Interval},
		{"batch.max_readings", &b.MaxReadings},

		{"window.size", &w.Size},
		{"window.slide", &w.Slide},
		{"window.allowed_lateness", &w.AllowedLateness},
		{"window.time", &w.Time},
		{"window.late_policy", &w.LatePolicy},
		{"window.dedup", &w.Dedup},
		{"window.max_future", &w.MaxFuture},
		{"window.aggregates", &w.Aggregates},

		{"uplink.influx.url", &i.URL},
		{"uplink.influx.api", &i.API},
		{"uplink.influx.database", &i.Database},
		{"uplink.influx.retention_policy", &i.RetentionPolicy},
		{"uplink.influx.username", &i.Username},
		{"uplink.influx.password", &i.Password},
		{"uplink.influx.org", &i.Org},
		{"uplink.influx.bucket", &i.Bucket},
		{"uplink.influx.token", &i.Token},
		{"uplink.influx.gzip", &i.Gzip},
		{"uplink.influx.timeout", &i.Timeout},
		{"uplink.stdout", &u.Stdout},
		{"uplink.batch_size", &u.BatchSize},
		{"uplink.flush_interval", &u.FlushInterval},
		{"uplink.max_outbox_bytes", &u.MaxOutboxBytes},

		{"metrics.listen", &c.Metrics.Listen},

		{"log.level", &c.Log.Level},
		{"log.format", &c.Log.Format},
	}
}

// subLeaves lists the keys of one item of mqtt.subscriptions, relative to
// the item.
func subLeaves(s *Subscription) []leaf {
	return []leaf{
		{"topic", &s.Topic},
		{"format", &s.Format},
		{"measurement", &s.Measurement},
		{"booleans", &s.Booleans},
		{"json.time_key", &s.JSON.TimeKey},
		{"json.time_unit", &s.JSON.TimeUnit},
		{"json.time_format", &s.JSON.TimeFormat},
		{"json.time_zone", &s.JSON.TimeZone},
		{"json.value_key", &s.JSON.ValueKey},
		{"json.tag_keys", &s.JSON.TagKeys},
		{"json.fields", &s.JSON.Fields},
		{"json.exclude", &s.JSON.Exclude},
		{"json.numeric_strings", &s.JSON.NumericStrings},
		{"influx.precision", &s.Influx.Precision},
		{"senml.device_separator", &s.SenML.DeviceSeparator},
		{"value.unit_suffix", &s.Value.UnitSuffix},
	}
}

// defaults returns the config an empty file gives, with host as gateway.id.
// mqtt.subscriptions is left empty: the default subscription is added only
// when the file gives none.
func defaults(host string) *Config {
	return &Config{
		Gateway: Gateway{ID: host, DataDir: "./data", ShutdownTimeout: 10 * time.Second},
		MQTT: MQTT{
			Broker:         "tcp://127.0.0.1:1883",
			EmbeddedListen: "127.0.0.1:1883",
			QoS:            1,
			Keepalive:      30 * time.Second,

			MaxPayloadBytes:       262144,
			MaxReadingsPerMessage: 10000,
		},
		Batch: Batch{Interval: 100 * time.Millisecond, MaxReadings: 10000},
		Window: Window{
			Size:            10 * time.Second,
			Slide:           10 * time.Second,
			AllowedLateness: 5 * time.Second,
			Time:            "event",
			LatePolicy:      "drop",
			Dedup:           true,
			MaxFuture:       time.Minute,
			Aggregates:      []string{"count", "mean", "min", "max", "sum"},
		},
		Uplink: Uplink{
			Influx: Influx{
				URL:      "http://127.0.0.1:8086",
				API:      "v1",
				Database: "edge",
				Gzip:     true,
				Timeout:  10 * time.Second,
			},
			BatchSize:      5000,
			FlushInterval:  time.Second,
			MaxOutboxBytes: 268435456,
		},
		Metrics: Metrics{Listen: "127.0.0.1:9464"},
		Log:     Log{Level: "info", Format: "text"},
	}
}

// defaultSubscription is the subscription used when the file gives none;
// its members are also the defaults of each member of a given subscription,
// topic aside.
func defaultSubscription() Subscription {
	return Subscription{
		Topic:       "sensors/{site}/{device}/{field}",
		Format:      "json",
		Measurement: "sensors",
		JSON: JSON{TimeKey: "ts", TimeUnit: "ms", ValueKey: "value",
			TagKeys: []string{}, Fields: []string{}, Exclude: []string{}, NumericStrings: []string{}},
		Influx: SubInflux{Precision: "ns"},
	}
}

// schema is the tree of known keys: a section has children, a list of
// mappings has item, a value has neither.
type schema struct {
	keys     []string // children's names, in the example's order
	children map[string]*schema
	item     *schema
	text     bool // a value that must be a YAML string
}

var rootSchema = buildSchema(leaves(&Config{}))

func buildSchema(ls []leaf) *schema {
	root := &schema{children: map[string]*schema{}}
	for _, l := range ls {
		s := root
		parts := strings.Split(l.key, ".")
		for j, name := range parts {
			next := s.children[name]
			if next == nil {
				next = &schema{}
				if j < len(parts)-1 {
					next.children = map[string]*schema{}
				}
				s.children[name] = next
				s.keys = append(s.keys, name)
			}
			s = next
		}
		switch l.ptr.(type) {
		case *[]Subscription:
			s.item = buildSchema(subLeaves(&Subscription{}))
		case *string, *Secret:
			s.text = true
		}
	}
	return root
}

// walk checks the YAML node n against the schema s, reporting every
// unknown key, every section that is not a mapping and every text value
// written as a number or boolean. path is n's key path.
func walk(n *yaml.Node, s *schema, path string, errs *[]error) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if isNull(n) {
		return
	}
	switch {
	case s.children != nil:
		if n.Kind != yaml.MappingNode {
			if path == "" {
				add(errs, "", "the config is %s, not a mapping; use sections %s", describeNode(n), strings.Join(s.keys, ", "))
			} else {
				add(errs, path, "%s is not a mapping; use keys %s", describeNode(n), strings.Join(s.keys, ", "))
			}
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" { // "<<: *anchor" merges mappings into this one
				for v.Kind == yaml.AliasNode {
					v = v.Alias
				}
				if v.Kind == yaml.SequenceNode {
					for _, m := range v.Content {
						walk(m, s, path, errs)
					}
				} else {
					walk(v, s, path, errs)
				}
				continue
			}
			key := joinKey(path, k.Value)
			child := s.children[k.Value]
			if child == nil {
				add(errs, key, "%s", unknownKey(path, s, k.Value))
				continue
			}
			walk(v, child, key, errs)
		}
	case s.item != nil:
		if n.Kind != yaml.SequenceNode {
			add(errs, path, "%s is not a list; use a list of mappings with keys %s", describeNode(n), strings.Join(s.item.keys, ", "))
			return
		}
		for i, item := range n.Content {
			key := fmt.Sprintf("%s[%d]", path, i)
			if !isMapping(item) {
				add(errs, key, "%s is not a mapping; use keys %s", describeNode(item), strings.Join(s.item.keys, ", "))
				continue
			}
			walk(item, s.item, key, errs)
		}
	case s.text:
		// Checked here rather than after decoding to quote the value as
		// written: YAML reads 0123 as the number 83.
		if n.Kind == yaml.ScalarNode && n.Tag != "!!str" {
			add(errs, path, "%s is not text; quote it: %q", n.Value, n.Value)
		}
	}
}

func unknownKey(path string, s *schema, name string) string {
	where := "in " + path
	if path == "" {
		where = "at the top level"
	}
	hint := ""
	if lower := strings.ToLower(name); lower != name && s.children[lower] != nil {
		hint = " (keys are lower case: " + lower + ")"
	}
	return fmt.Sprintf("unknown key%s; known keys %s: %s", hint, where, strings.Join(s.keys, ", "))
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describeNode(n *yaml.Node) string {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch {
	case isNull(n):
		return "empty"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Tag == "!!str":
		return strconv.Quote(n.Value)
	}
	return n.Value
}

func joinKey(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func add(errs *[]error, key, format string, args ...any) {
	*errs = append(*errs, &Error{Key: key, Problem: fmt.Sprintf(format, args...)})
}

const envPrefix = "EDGEGW_"

// envName returns the environment variable overriding key.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// envKeys maps each overridable key's environment variable to the key.
// mqtt.subscriptions, a list of mappings, has no variable.
var envKeys = func() map[string]string {
	m := map[string]string{}
	for _, l := range leaves(&Config{}) {
		if _, ok := l.ptr.(*[]Subscription); ok {
			continue
		}
		m[envName(l.key)] = l.key
	}
	return m
}()

// applyEnv sets the keys named by EDGEGW_ variables in environ on v. It
// returns, for each key set, the variable that set it, and a problem for
// every EDGEGW_ variable that names no key. The first of repeated names
// wins, as with os.Getenv.
func applyEnv(v *viper.Viper, environ []string) (map[string]string, []error) {
	from := map[string]string{}
	seen := map[string]bool{}
	var errs []error
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, envPrefix) || name == envPrefix+"CONFIG" || seen[name] {
			continue
		}
		seen[name] = true
		if key, ok := envKeys[name]; ok {
			v.Set(key, value)
			from[key] = name
			continue
		}
		if strings.HasPrefix(name, envName("mqtt.subscriptions")) {
			add(&errs, name, "mqtt.subscriptions is a list and cannot be set from the environment; set it in the config file")
			continue
		}
		add(&errs, name, "%s", unknownEnv(name))
	}
	return from, errs
}

func unknownEnv(name string) string {
	section, _, _ := strings.Cut(strings.TrimPrefix(name, envPrefix), "_")
	var known, sections []string
	for _, l := range leaves(&Config{}) {
		if _, ok := l.ptr.(*[]Subscription); ok {
			continue
		}
		e := envName(l.key)
		if strings.HasPrefix(e, envPrefix+section+"_") {
			known = append(known, e)
		}
		s := e[:len(envPrefix)+strings.IndexByte(e[len(envPrefix):], '_')+1]
		if len(sections) == 0 || sections[len(sections)-1] != s {
			sections = append(sections, s)
		}
	}
	if len(known) > 0 {
		return "names no config key; known variables: " + strings.Join(known, ", ")
	}
	return "names no config key; known variables start with " + strings.Join(sections, ", ")
}

// decode stores raw, a value read from the file or (when env is not empty)
// from the environment variable env, in the field ptr points to. It returns
// the problem, naming what is accepted, or "" when raw fits. The field's
// current value, its default, serves as the example in the problem.
func decode(ptr, raw any, env string) string {
	what := describe(raw)
	if env != "" {
		what += " (from " + env + ")"
	}
	s, isString := raw.(string)
	switch p := ptr.(type) {
	case *string:
		if !isString {
			return notText(what, raw)
		}
		*p = s
	case *Secret:
		if !isString {
			return notText(what, raw)
		}
		*p = Secret(s)
	case *time.Duration:
		if d, err := time.ParseDuration(strings.TrimSpace(s)); isString && err == nil {
			*p = d
			return ""
		}
		return what + " is not a duration; use e.g. 100ms, 10s"
	case *int:
		n, ok := toInt(raw, strconv.IntSize)
		if !ok {
			return fmt.Sprintf("%s is not a whole number; use e.g. %d", what, *p)
		}
		*p = int(n)
	case *int64:
		n, ok := toInt(raw, 64)
		if !ok {
			return fmt.Sprintf("%s is not a whole number; use e.g. %d", what, *p)
		}
		*p = n
	case *bool:
		b, ok := raw.(bool)
		if isString {
			var err error
			b, err = strconv.ParseBool(strings.TrimSpace(s))
			ok = err == nil
		}
		if !ok {
			return what + " is not a boolean; use true or false"
		}
		*p = b
	case *[]string:
		var list []string
		switch r := raw.(type) {
		case string: // from the environment: names separated by commas or spaces
			list = strings.FieldsFunc(r, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' || c == '\n' })
		case []any:
			list = make([]string, 0, len(r))
			for j, item := range r {
				s, ok := item.(string)
				if !ok {
					return fmt.Sprintf("item %d is %s, not text; use a list of names, e.g. [a, b]", j, describe(item))
				}
				list = append(list, s)
			}
		default:
			return what + " is not a list; use a list of names, e.g. [a, b]"
		}
		if list == nil {
			list = []string{}
		}
		*p = list
	default:
		return fmt.Sprintf("%s cannot be stored in a %T", what, ptr)
	}
	return ""
}

func notText(what string, raw any) string {
	switch raw.(type) {
	case map[string]any, map[any]any, []any:
		return what + " is not text; use a quoted string"
	}
	return fmt.Sprintf("%s is not text; quote it: %q", what, fmt.Sprint(raw))
}

// toInt converts a whole number read from YAML, or a decimal string, to an
// integer of the given size in bits.
func toInt(raw any, bits int) (int64, bool) {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if bits == 32 {
		lo, hi = math.MinInt32, math.MaxInt32
	}
	var n int64
	switch r := raw.(type) {
	case int:
		n = int64(r)
	case int64:
		n = r
	case uint64:
		if r > math.MaxInt64 {
			return 0, false
		}
		n = int64(r)
	case float64:
		if r != math.Trunc(r) || r < -(1<<63) || r >= 1<<63 {
			return 0, false
		}
		n = int64(r)
	case string:
		v, err := strconv.ParseInt(strings.TrimSpace(r), 10, 64)
		if err != nil {
			return 0, false
		}
		n = v
	default:
		return 0, false
	}
	return n, n >= lo && n <= hi
}

// describe writes a decoded YAML value as a user would recognise it.
func describe(raw any) string {
	switch r := raw.(type) {
	case string:
		return strconv.Quote(r)
	case map[string]any, map[any]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	return fmt.Sprint(raw)
}

// decodeSubscriptions decodes mqtt.subscriptions into p, each member
// defaulting as in defaultSubscription (the topic aside). It returns the key
// of each subscription decoded, e.g. mqtt.subscriptions[2]; items that are
// not mappings, and keys in reported (found wrong by walk), are skipped.
func decodeSubscriptions(p *[]Subscription, raw any, reported map[string]bool) (keys []string, errs []error) {
	items, ok := raw.([]any)
	if !ok {
		return nil, nil
	}
	for i, item := range items {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		prefix := fmt.Sprintf("mqtt.subscriptions[%d]", i)
		s := defaultSubscription()
		s.Topic = ""
		for _, l := range subLeaves(&s) {
			r := lookup(m, l.key)
			if r == nil || reported[prefix+"."+l.key] {
				continue
			}
			if problem := decode(l.ptr, r, ""); problem != "" {
				add(&errs, prefix+"."+l.key, "%s", problem)
			}
		}
		*p = append(*p, s)
		keys = append(keys, prefix)
	}
	return keys, errs
}

// lookup returns the value at the dotted key in m, or nil.
func lookup(m map[string]any, key string) any {
	var v any = m
	for _, name := range strings.Split(key, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[name]
	}
	return v
}
