// Package config loads the edgegw config file (YAML): strict decoding, where
// an unknown key is an error, then environment overrides, defaults, and a
// validation that reports every problem at once, each naming its key and
// what would be accepted. The result is a plain Config of strings, numbers
// and durations; cmd/edgegw maps it to each stage's Options, and no stage
// imports this package.
//
// Example holds a complete, commented config with every key at its default;
// `edgegw config example` prints it and Load accepts it.
//
// # Usage
//
//	cfg, err := config.LoadFile(path)
//	if err != nil {
//		// One line per problem, "key: problem", e.g.
//		// batch.interval: "fast" is not a duration; use e.g. 100ms, 10s
//		return err
//	}
//	out, err := cfg.Redacted() // the effective config, secrets as <secret>
//
// A problem is an *Error (Key, Problem); the error returned joins them with
// errors.Join, so errors.As finds the first and Unwrap() []error gives all.
//
// Every key may be overridden by an environment variable: EDGEGW_ and the
// key path upper-cased with "." as "_", e.g. EDGEGW_MQTT_BROKER,
// EDGEGW_UPLINK_INFLUX_URL, EDGEGW_MQTT_TLS_CA_FILE. A value is written as in
// the file; a list (EDGEGW_WINDOW_AGGREGATES) is names separated by commas or
// spaces. A variable set to "" sets its key to "", which is not the same as
// unset: EDGEGW_UPLINK_INFLUX_URL= turns the InfluxDB uplink off. Load and
// LoadFile read the process environment; LoadEnv takes it as an argument.
//
// # Caveats
//
// mqtt.subscriptions, a list of mappings, is set in the file only: an
// EDGEGW_MQTT_SUBSCRIPTIONS variable is an error. So is any other EDGEGW_
// variable that names no key, except EDGEGW_CONFIG, which names the file
// and is left to the command line.
//
// Keys are lower case; "Gateway:" is an unknown key. A key written with no
// value (null) takes its default, as if absent; so does an empty list of
// subscriptions, which gives the one default subscription. Each member of a
// given subscription defaults on its own, except the topic, which is
// required.
//
// Durations carry a unit ("100ms", "1m30s"); a bare number is an error. Text
// written so that YAML reads a number or a boolean (id: 0123) is an error
// asking for quotes, rather than a silently changed value.
//
// Relative paths (gateway.data_dir, the mqtt.tls files) are taken from the
// working directory, not from the config file's directory. TLS files are
// checked to exist, not parsed; a bad certificate shows when connecting.
//
// Load checks each subscription's options on their own (formats, units,
// zones, regular expressions, path syntax); what only the decoders know
// (paths that must share one record, templates an earlier one shadows) is
// checked by mqtt.CheckSubscriptions, which `edgegw config check` and `run`
// also call.
package config
