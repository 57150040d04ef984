package config

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Example is a complete, commented config holding every key with its
// default value (except gateway.id, set to gw-01). Load accepts it as is;
// `edgegw config example` prints it.
//
//go:embed example.yaml
var Example []byte

// Config is the whole config file, decoded, defaulted and validated. Its
// fields mirror the YAML keys one to one; durations are time.Duration and
// secrets are Secret. A Config returned by Load is valid: every value lies
// in its documented range.
type Config struct {
	Gateway Gateway
	MQTT    MQTT
	Batch   Batch
	Window  Window
	Uplink  Uplink
	Metrics Metrics
	Log     Log
}

// Gateway is the gateway section.
type Gateway struct {
	// ID names this gateway; default: the host name.
	ID string
	// DataDir holds the bbolt file edgegw.db.
	DataDir string
	// ShutdownTimeout bounds the commit, acknowledge and outbox flush on
	// SIGTERM.
	ShutdownTimeout time.Duration
}

// MQTT is the mqtt section.
type MQTT struct {
	// Broker is a URL (tcp://, ssl://, ws://, wss://, mqtt://, mqtts://) or
	// "embedded" for the built-in broker.
	Broker string
	// EmbeddedListen is the host:port the built-in broker listens on.
	EmbeddedListen string
	// ClientID is the MQTT client identifier; Load sets it to
	// "edgegw-" + Gateway.ID when the file leaves it empty.
	ClientID     string
	Username     string
	Password     Secret
	TLS          TLS
	QoS          int
	CleanSession bool
	Keepalive    time.Duration
	// ShareGroup, when not empty, subscribes as $share/<group>/<filter>.
	ShareGroup string
	// Subscriptions holds at least one subscription.
	Subscriptions []Subscription
	// MaxPayloadBytes: larger messages are rejected, counted, acknowledged.
	MaxPayloadBytes int
	// MaxReadingsPerMessage: a message holding more readings is rejected,
	// counted, acknowledged.
	MaxReadingsPerMessage int
}

// TLS is the mqtt.tls section. Files named here exist when Load returns.
type TLS struct {
	CAFile             string
	CertFile           string
	KeyFile            string
	InsecureSkipVerify bool
}

// Subscription is one item of mqtt.subscriptions.
type Subscription struct {
	// Topic is a topic template: levels separated by '/', each literal
	// text, '+', '#' (last only) or one {name} placeholder.
	Topic string
	// Format is the payload format: value, json, influx or senml.
	Format string
	// Measurement is used when neither the topic nor the payload names one.
	Measurement string
	// Booleans reads true/false (and ON/OFF in value payloads) as 1/0.
	Booleans bool
	JSON     JSON
	Influx   SubInflux
	SenML    SenML
	Value    Value
}

// JSON is the json section of a subscription.
type JSON struct {
	// TimeKey is the path of the member holding the event time; empty:
	// arrival time is always used.
	TimeKey string
	// TimeUnit is the unit of a numeric time: s, ms, us, ns or auto.
	TimeUnit string
	// TimeFormat is a Go layout for time strings other than RFC 3339.
	TimeFormat string
	// TimeZone is the IANA zone of zone-less time strings.
	TimeZone string
	// ValueKey is the path of the member holding the value when the topic
	// names the field.
	ValueKey string
	// TagKeys are paths of members that become tags; never nil.
	TagKeys []string
	// Fields are the paths or globs of the only members read as fields;
	// empty: every numeric leaf. Never nil.
	Fields []string
	// Exclude are paths or globs never read as fields; never nil.
	Exclude []string
	// NumericStrings are paths or globs whose string values are read as
	// numbers; never nil.
	NumericStrings []string
}

// SubInflux is the influx section of a subscription.
type SubInflux struct {
	// Precision is the unit of the lines' timestamps: ns, us, ms or s.
	Precision string
}

// SenML is the senml section of a subscription.
type SenML struct {
	// DeviceSeparator, when not empty, splits a resolved name at its last
	// occurrence into tag device and the field.
	DeviceSeparator string
}

// Value is the value section of a subscription.
type Value struct {
	// UnitSuffix is a regular expression removed from the end of the
	// payload, e.g. \s*°?C$.
	UnitSuffix string
}

// Batch is the batch section.
type Batch struct {
	Interval    time.Duration
	MaxReadings int
}

// Window is the window section. Size is a whole multiple of Slide.
type Window struct {
	Size            time.Duration
	Slide           time.Duration
	AllowedLateness time.Duration
	// Time is "event" or "arrival".
	Time string
	// LatePolicy is "drop" or "update".
	LatePolicy string
	Dedup      bool
	MaxFuture  time.Duration
	// Aggregates is a non-empty list of distinct aggregate names.
	Aggregates []string
}

// Uplink is the uplink section. At least one of Influx.URL and Stdout is set.
type Uplink struct {
	Influx         Influx
	Stdout         bool
	BatchSize      int
	FlushInterval  time.Duration
	MaxOutboxBytes int64
}

// Influx is the uplink.influx section. URL empty means no InfluxDB.
type Influx struct {
	URL string
	// API is "v1" or "v2"; with v2, Org, Bucket and Token are set.
	API             string
	Database        string
	RetentionPolicy string
	Username        string
	Password        Secret
	Org             string
	Bucket          string
	Token           Secret
	Gzip            bool
	Timeout         time.Duration
}

// Metrics is the metrics section. Listen empty disables the HTTP endpoints.
type Metrics struct {
	Listen string
}

// Log is the log section: Level is debug, info, warn or error; Format is
// text or json.
type Log struct {
	Level  string
	Format string
}

// Secret is a string that never prints: String, LogValue, MarshalYAML and
// MarshalJSON give "<secret>" for a non-empty value and "" for an empty one.
// Use string(s) to get the value itself.
type Secret string

const redacted = "<secret>"

// String returns "<secret>", or "" when s is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// LogValue implements slog.LogValuer: a Secret logs as "<secret>".
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalYAML writes "<secret>" in place of the value.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON writes "<secret>" in place of the value.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Error is one problem with a config: the key at fault (a dotted key path
// such as mqtt.subscriptions[0].topic, or an EDGEGW_ environment variable)
// and what is wrong, with what would be accepted. Load returns every problem
// found, joined with errors.Join; find them with errors.As.
type Error struct {
	Key     string
	Problem string
}

// Error returns "key: problem", or the problem alone when Key is empty.
func (e *Error) Error() string {
	if e.Key == "" {
		return e.Problem
	}
	return e.Key + ": " + e.Problem
}

// Load decodes a YAML config, applies EDGEGW_ environment overrides from
// the process environment, fills in defaults and validates the result. It
// is LoadEnv(data, os.Environ()).
func Load(data []byte) (*Config, error) {
	return LoadEnv(data, os.Environ())
}

// LoadFile reads the config file at path and loads it as Load does.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := load(data, os.Environ())
	var pe *parseError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("parse config %s: %w", path, pe.err)
	}
	return c, err
}

// LoadEnv is Load with the environment given as "NAME=value" strings, as
// os.Environ returns them. Only names starting with EDGEGW_ are looked at;
// EDGEGW_CONFIG is left to the caller. A YAML syntax error is returned
// alone; every other problem comes back at once, each as an *Error.
func LoadEnv(data []byte, environ []string) (*Config, error) {
	c, err := load(data, environ)
	var pe *parseError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("parse config: %w", pe.err)
	}
	return c, err
}

// parseError carries a YAML syntax error up to the function that knows
// whether a file name goes with it.
type parseError struct{ err error }

func (e *parseError) Error() string { return e.err.Error() }

func load(data []byte, environ []string) (*Config, error) {
	// Decoding into a value, unlike into a Node, rejects repeated keys and
	// excessive aliasing.
	var probe any
	if err := yaml.Unmarshal(data, &probe); err != nil {
		return nil, &parseError{err}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &parseError{err}
	}
	var errs []error
	top := &doc
	if top.Kind == yaml.DocumentNode && len(top.Content) > 0 {
		top = top.Content[0]
	}
	walk(top, rootSchema, "", &errs)
	if len(errs) > 0 && !isMapping(top) {
		return nil, errors.Join(errs...)
	}

	v := viper.New()
	v.SetConfigType("yaml")
	if isMapping(top) {
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, &parseError{err}
		}
	}
	reported := map[string]bool{} // keys walk found wrong: not decoded again
	for _, err := range errs {
		reported[err.(*Error).Key] = true
	}
	envOf, envErrs := applyEnv(v, environ)
	errs = append(errs, envErrs...)

	host, hostErr := os.Hostname()
	c := defaults(host)
	var subKeys []string
	for _, l := range leaves(c) {
		raw := v.Get(l.key)
		if raw == nil || reported[l.key] {
			continue
		}
		if p, ok := l.ptr.(*[]Subscription); ok {
			keys, subErrs := decodeSubscriptions(p, raw, reported)
			subKeys = keys
			errs = append(errs, subErrs...)
			continue
		}
		if problem := decode(l.ptr, raw, envOf[l.key]); problem != "" {
			errs = append(errs, &Error{Key: l.key, Problem: problem})
		}
	}
	if len(c.MQTT.Subscriptions) == 0 && len(subKeys) == 0 {
		c.MQTT.Subscriptions = []Subscription{defaultSubscription()}
		subKeys = []string{"mqtt.subscriptions[0]"}
	}
	if c.MQTT.ClientID == "" && c.Gateway.ID != "" {
		c.MQTT.ClientID = "edgegw-" + c.Gateway.ID
	}
	for _, err := range c.validate(subKeys, hostErr) {
		if !reported[err.(*Error).Key] { // a value not decoded fails again: say it once
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func isMapping(n *yaml.Node) bool {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n.Kind == yaml.MappingNode
}

// Redacted returns the effective config as YAML, in the order of the
// example, with every secret written as "<secret>". Loading the output
// again gives the same Config, secrets aside.
func (c *Config) Redacted() ([]byte, error) {
	root := &yaml.Node{Kind: yaml.MappingNode}
	for _, l := range leaves(c) {
		n, err := valueNode(l.ptr)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", l.key, err)
		}
		if strings.HasPrefix(l.key, "mqtt.tls.") {
			// The tls section is written on one line, as in the example.
			mappingAt(root, "mqtt.tls").Style = yaml.FlowStyle
		}
		putNode(root, l.key, n)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return buf.Bytes(), nil
}

// valueNode returns the YAML node of the field ptr points to.
func valueNode(ptr any) (*yaml.Node, error) {
	n := &yaml.Node{}
	var err error
	switch p := ptr.(type) {
	case *time.Duration:
		err = n.Encode(formatDuration(*p))
	case *[]string:
		list := *p
		if list == nil {
			list = []string{}
		}
		err = n.Encode(list)
		n.Style = yaml.FlowStyle
	case *[]Subscription:
		n.Kind = yaml.SequenceNode
		n.Tag = "!!seq"
		for i := range *p {
			item := &yaml.Node{Kind: yaml.MappingNode}
			for _, l := range subLeaves(&(*p)[i]) {
				v, err := valueNode(l.ptr)
				if err != nil {
					return nil, err
				}
				putNode(item, l.key, v)
			}
			n.Content = append(n.Content, item)
		}
	case *Secret:
		err = n.Encode(p.String())
	default:
		err = n.Encode(ptr) // *string, *int, *int64, *bool
	}
	return n, err
}

// putNode sets the dotted key in the mapping root to value, creating the
// mappings on its path.
func putNode(root *yaml.Node, key string, value *yaml.Node) {
	m := root
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		m = mappingAt(root, key[:i])
		key = key[i+1:]
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, value)
}

// mappingAt returns the mapping at the dotted path under root, creating it
// and its parents when missing.
func mappingAt(root *yaml.Node, path string) *yaml.Node {
	m := root
	for _, name := range strings.Split(path, ".") {
		var next *yaml.Node
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == name {
				next = m.Content[i+1]
				break
			}
		}
		if next == nil {
			next = &yaml.Node{Kind: yaml.MappingNode}
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, next)
		}
		m = next
	}
	return m
}

// formatDuration writes d as time.Duration.String does, without the zero
// minutes and seconds it appends ("1m" rather than "1m0s").
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
