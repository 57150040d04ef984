// Package mqtt subscribes to an MQTT broker, decodes each message into
// readings and hands them to a Sink, acknowledging a message to the broker
// only once the sink says its readings are durable.
//
// A subscription is a topic template and a payload format. In the template
// "sensors/{site}/{device}/{field}" each {name} level matches any one level
// and becomes the tag "name"; {field} names the field and {measurement} the
// measurement (otherwise Subscription.Measurement does); '+' and a last '#'
// match without naming anything. The client subscribes to the template with
// every placeholder turned into '+' ("$share/<group>/..." with a share
// group). A message is decoded by the first subscription whose template
// matches its topic.
//
// Formats:
//
//   - value: the payload is one number, like "23.45" (surrounding white
//     space is ignored); the topic must name the field; the time is the
//     arrival time.
//   - json: one object, or an array of objects, each element with its own
//     time and tags. Every numeric leaf is a field, at any depth: nested
//     member names are joined with "_" ({"AM2301":{"Temperature":24.6}}
//     gives AM2301_Temperature) and array elements by index
//     ({"Total":[2.8,0.2]} gives Total_0 and Total_1). Strings, null and
//     booleans are skipped silently, unless Subscription.Booleans reads
//     true and false as 1 and 0, or JSONOptions.NumericStrings names a
//     string holding a number. Paths in the options are member names and
//     array indices joined with dots, from the root of the reading set;
//     "*" is any one level; in Fields, Exclude and NumericStrings a level
//     may be a path.Match glob, and a path naming an object names the
//     leaves below it. The member at JSONOptions.TimeKey holds the
//     time: a number in JSONOptions.TimeUnit (s, ms, us, ns, or auto by
//     magnitude; fractions are kept to the nanosecond), an RFC 3339
//     string, or a string in JSONOptions.TimeFormat; a time without a zone
//     is read in JSONOptions.TimeZone, or, when none is set, the readings
//     take the arrival time and are counted in
//     edgegw_readings_time_assumed_total (no_zone); without a time member,
//     the arrival time. When the topic names the field, only the member
//     at JSONOptions.ValueKey ("value") is read. The members at
//     JSONOptions.TagKeys (strings, numbers or booleans) become tags named
//     by the path's last level, replacing a topic tag of the same name; a
//     path ending in * makes the matched member's name the tag value.
//     A * in TimeKey, ValueKey or TagKeys makes records: each object
//     matched by the path up to its last * (the same for all of them) is a
//     reading set of its own, its fields named and matched from the
//     record, with its own time and tags and the root's where it has none
//     (Tasmota's {"ZbReceived":{"0x6A8D":{"Device":"0x6A8D",...}}} with
//     TagKeys ZbReceived.*.Device). A member whose name InfluxDB cannot
//     take, a tag whose value it cannot take and a number beyond float64
//     are skipped and counted. A repeated member name, invalid JSON and
//     nesting deeper than 64 levels reject the message.
//   - influx: InfluxDB line protocol, any number of lines; comments and
//     blank lines are ignored. Each line's measurement and tags name its
//     series, with the topic's tags added (a line's tag replaces a topic
//     tag of the same name); the {measurement} and {field} levels and
//     Subscription.Measurement are not used. Each float, integer and
//     unsigned field is a reading (integers beyond 2^53 lose precision as
//     float64); boolean fields are read as 1 and 0 with
//     Subscription.Booleans, otherwise skipped, and string fields are
//     skipped. The timestamp is in InfluxOptions.Precision (ns, us, ms,
//     s); without one, the arrival time. A line that does not parse
//     (InfluxDB does not take a newline inside a string either), repeats a
//     tag key or has a timestamp beyond int64 nanoseconds is skipped; the
//     other lines are read.
//   - senml: SenML JSON (RFC 8428), an array of records resolved as its
//     section 4.6 says: the name is bn + n, the time bt + t in seconds
//     (exactly, to the nanosecond), relative to the arrival time below
//     2^28 s, the unit u or else bu, the value bv + v, the sum bs + s. A
//     record's value is a reading named by its name, its sum one named
//     <name>_sum; its unit is the tag unit. vs and vd are skipped, vb read
//     as 1 and 0 with Subscription.Booleans (otherwise skipped). With
//     SenMLOptions.DeviceSeparator the name is split at its last separator
//     into the tag device and the field. A record that does not resolve
//     (no name, no value, a time beyond int64 nanoseconds, a label of the
//     wrong type) is skipped. A single record object, a label ending in
//     '_' and a bver above 10 are rejected, as RFC 8428 asks.
//
// # Usage
//
//	c, err := mqtt.New(mqtt.Options{
//		Broker:   "tcp://127.0.0.1:1883",
//		ClientID: "edgegw-gw-01",
//		QoS:      1,
//		Subscriptions: []mqtt.Subscription{{
//			Topic: "sensors/{site}/{device}/{field}", Format: "value", Measurement: "sensors",
//		}},
//	}, batcher, logger.With("stage", "mqtt"), reg)
//	if err != nil {
//		return err // names every bad option
//	}
//	g.Go(func() error { return c.Run(ctx) })
//	// /readyz: c.Ready()
//
// # Caveats
//
// A message that cannot be decoded is rejected whole: it reaches the sink
// with no readings, so that acknowledgements stay in order, and is counted in
// edgegw_readings_rejected_total by reason (one count per message) and
// logged, with its topic, at most once per 10 s per reason. So is a message
// over Options.MaxPayloadBytes (too_large) or holding more than
// Options.MaxReadingsPerMessage readings (too_many_readings), and one whose
// topic has an empty placeholder level or one that is not a name (bad_topic:
// an empty {site} would otherwise merge its series with others). A part of a
// message that cannot be read (a member whose name InfluxDB cannot take, a
// string field, a line or record that does not parse, a state word such as
// "unavailable") is skipped and counted in edgegw_readings_skipped_total by
// reason, logged the same way, and the rest of the message is read. A
// reading stamped with its arrival time because its payload time has no zone
// is counted in edgegw_readings_time_assumed_total.
//
// A subscription listed after one whose template matches every topic it
// matches can never match: New refuses it (CheckSubscriptions says so
// beforehand).
//
// The handler runs on one goroutine, in order. While Sink.Add blocks, no
// message is read, and the broker's in-flight limit holds the rest; Add must
// not block longer than the keepalive, or the client misses the broker's
// ping responses and reconnects.
//
// Acknowledgements are written within a millisecond of the sink calling
// ack, together with any others due then. An ack called after the connection
// it came from was lost, or after Run returned, is dropped: the broker
// delivers that message again to the next session, as a resend.
//
// With QoS 1 each message handed to the sink carries its edgegw.Packet: the
// packet identifier and a hash of topic and payload. The sink commits it with
// the message's readings; Options.Committed gives the committed packets back
// at the next start. A message with the DUP flag whose identifier and hash
// match the last message handed over with that identifier (committed, or
// still pending in a batch) is a resend: it reaches the sink without
// readings, so that its acknowledgement still follows the first copy's
// commit, and is counted in edgegw_mqtt_resends_skipped_total. This is what
// keeps a reading stamped with its arrival time from being counted twice
// when the process dies, or the connection drops, between a commit and its
// acknowledgements; readings with an event time are also deduplicated by the
// window engine. Any other message replaces the entry of its identifier (the
// broker reuses an identifier only once it got the acknowledgement), so the
// table holds at most 65535 entries (512 KiB). A new session at the broker
// (session present 0) clears it. Two limits: a resend whose first copy never
// arrived, with the same identifier, topic and payload as the earlier
// committed message that held that identifier, is taken for a resend and
// lost; and a redelivery without the DUP flag (a broker restored from an old
// snapshot) is counted again unless the window engine deduplicates it.
//
// Run reconnects by itself, with backoff from 0.5 s to 30 s. A connection
// attempt that reached a broker that does not answer its CONNECT can delay
// Run's return by up to 10 s.
//
// With clean_session false the broker keeps the session's subscriptions,
// including those of an earlier configuration; their messages match no
// template and are rejected as bad_topic.
//
// Ready stays false after the broker refuses a subscription (SUBACK 0x80),
// until the next connection.
package mqtt
