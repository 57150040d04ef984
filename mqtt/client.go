package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw"
)

// Errors returned by Client.
var (
	// ErrRunning is returned by Run while another call to Run is running.
	ErrRunning = errors.New("mqtt client is already running")
)

const (
	defaultKeepalive = 30 * time.Second
	// connectTimeout bounds a connection attempt (dial, TLS, CONNECT).
	connectTimeout = 10 * time.Second
	// minBackoff and maxBackoff bound the wait between connection attempts.
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
	// quiesce is how long Run's disconnect waits for the DISCONNECT, and the
	// acknowledgements queued before it, to be written.
	quiesce = 250 // ms
	// stopTimeout bounds the wait for paho to stop after the disconnect.
	stopTimeout = 5000 // ms
	// logEvery is the least time between two log lines about rejected
	// messages of one reason.
	logEvery = 10 * time.Second
)

// Options configures a Client.
type Options struct {
	// Broker is the broker's URL: tcp:// or mqtt:// (port 1883 when none
	// is given), ssl://, tls:// or mqtts:// (port 8883), ws:// or wss://.
	Broker string
	// ClientID names the session at the broker; required when
	// CleanSession is false.
	ClientID string
	Username string
	Password string
	// TLS configures ssl://, tls://, mqtts:// and wss:// connections.
	TLS TLSOptions
	// QoS is the QoS of the subscriptions: 0 or 1. Only QoS 1 messages are
	// acknowledged after commit; the configuration's default is 1.
	QoS byte
	// CleanSession false keeps the session (subscriptions and messages not
	// yet acknowledged) at the broker across restarts.
	CleanSession bool
	// Keepalive is the MQTT keepalive; 0 means 30s. At least 1s.
	Keepalive time.Duration
	// ShareGroup, when not empty, subscribes as $share/<group>/<filter> so
	// that several gateways share the messages.
	ShareGroup string
	// Subscriptions are the topics to subscribe to. A message is decoded
	// by the first subscription whose template matches its topic.
	Subscriptions []Subscription
	// ArrivalTime stamps every reading with its arrival time, ignoring any
	// time in the payload.
	ArrivalTime bool
	// MaxPayloadBytes rejects larger messages (reason too_large); 0 means
	// 256 KiB.
	MaxPayloadBytes int
	// MaxReadingsPerMessage rejects a message that holds more readings
	// (reason too_many_readings); 0 means 10000.
	MaxReadingsPerMessage int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Committed are the packets of the QoS 1 messages committed before, as
	// the store kept them: a resend of one of them (DUP flag, same packet
	// identifier, topic and payload) reaches the sink without readings.
	Committed []edgegw.Packet
}

// TLSOptions configures TLS from files.
type TLSOptions struct {
	// CAFile holds the PEM certificates that verify the broker; empty
	// means the system's.
	CAFile string
	// CertFile and KeyFile hold the client's PEM certificate and key; both
	// or neither.
	CertFile, KeyFile string
	// InsecureSkipVerify accepts any broker certificate.
	InsecureSkipVerify bool
}

// Subscription is one topic template and how to decode its messages.
type Subscription struct {
	// Topic is a template such as "sensors/{site}/{device}/{field}": each
	// {name} level matches one level and becomes tag "name", except
	// {field}, which names the field, and {measurement}, which names the
	// measurement. '+' and a last '#' match without naming anything.
	Topic string
	// Format is the payload format: value, json, influx or senml.
	Format string
	// Measurement is used when neither the topic nor the payload names one.
	Measurement string
	// Booleans reads true and false (and ON and OFF in value payloads) as
	// 1 and 0; otherwise they are skipped.
	Booleans bool
	// JSON configures format json.
	JSON JSONOptions
	// Influx configures format influx.
	Influx InfluxOptions
	// SenML configures format senml.
	SenML SenMLOptions
	// Value configures format value.
	Value ValueOptions
}

// JSONOptions configures format json. Paths are member names joined with
// '.', from the root of the object (or of each element of a top-level
// array); array indices are path levels too, and '*' matches any one level.
type JSONOptions struct {
	// TimeKey is the path of the member holding the event time; empty, or
	// a missing member, means the arrival time.
	TimeKey string
	// TimeUnit is the unit of a numeric time: s, ms (when empty), us, ns,
	// or auto (told apart by magnitude). A string time is read as RFC 3339.
	TimeUnit string
	// TimeFormat is a Go layout for time strings that are not RFC 3339.
	TimeFormat string
	// TimeZone is the IANA zone of zone-less time strings; empty means
	// such readings take the arrival time, counted.
	TimeZone string
	// ValueKey is the path of the member holding the value when the topic
	// names the field; empty means "value".
	ValueKey string
	// TagKeys are the paths of members that become tags, named by their
	// last level.
	TagKeys []string
	// Fields, when not empty, are the paths or globs of the only members
	// read as fields.
	Fields []string
	// Exclude are paths or globs never read as fields.
	Exclude []string
	// NumericStrings are paths or globs whose string values are read as
	// numbers.
	NumericStrings []string
}

// InfluxOptions configures format influx.
type InfluxOptions struct {
	// Precision is the unit of the lines' timestamps: ns (when empty), us,
	// ms or s.
	Precision string
}

// SenMLOptions configures format senml.
type SenMLOptions struct {
	// DeviceSeparator, when not empty, splits each resolved name at its
	// last occurrence: the part before becomes tag device, the rest the
	// field.
	DeviceSeparator string
}

// ValueOptions configures format value.
type ValueOptions struct {
	// UnitSuffix is a regular expression removed from the end of the
	// payload before it is read, e.g. `\s*°?C$`.
	UnitSuffix string
}

// Sink takes the readings of each message, in order of arrival.
// *batcher.Batcher implements it.
type Sink interface {
	// Add takes the readings of one message (none for a message that was
	// rejected, or for a resend of one already handed over) and calls ack
	// once they are durable. pkt identifies a QoS 1 message; the sink
	// makes it durable with the readings, and Options.Committed gives it
	// back at the next start. It is the zero Packet when there is nothing
	// to remember. rs is reused once Add returns: Add copies what it
	// keeps. Add may block to slow the client down; it returns an error
	// once ctx is done.
	Add(ctx context.Context, rs []edgegw.Reading, ack func(), pkt edgegw.Packet) error
}

// Client subscribes to a broker and hands each message's readings to a Sink,
// acknowledging the message only when the sink says so.
//
// Run may be called again after it returns; Ready may be called at any time
// from any goroutine.
type Client struct {
	opts    Options
	broker  *url.URL
	tls     *tls.Config
	filters map[string]byte
	sink    Sink
	log     *slog.Logger
	now     func() time.Time
	m       metrics

	ready   atomic.Bool
	running atomic.Bool

	mu       sync.Mutex // serialises handle: it owns router, buf, throttle, skipLog and redeliv
	router   *router
	buf      []edgegw.Reading
	throttle throttle
	skipLog  throttle      // lines about skipped parts and assumed times, by reason
	redeliv  *redeliveries // nil unless QoS is 1
}

type metrics struct {
	messages   prometheus.Counter
	readings   prometheus.Counter
	rejected   *prometheus.CounterVec
	skipped    *prometheus.CounterVec
	assumed    *prometheus.CounterVec
	connected  prometheus.Gauge
	reconnects prometheus.Counter
	resends    prometheus.Counter
}

// New returns a Client for opts that delivers to sink. It checks every
// option and reports every problem at once. logger nil discards logs; reg
// nil registers no metrics.
func New(opts Options, sink Sink, logger *slog.Logger, reg prometheus.Registerer) (*Client, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{opts: opts, sink: sink, log: logger, now: opts.Now, filters: map[string]byte{}}
	if c.now == nil {
		c.now = time.Now
	}
	var errs []error
	if sink == nil {
		errs = append(errs, errors.New("sink is nil"))
	}
	u, err := parseBroker(opts.Broker)
	if err != nil {
		errs = append(errs, err)
	}
	c.broker = u
	if opts.QoS > 1 {
		errs = append(errs, fmt.Errorf("qos %d is not supported; accepted: 0, 1", opts.QoS))
	}
	if opts.ClientID == "" && !opts.CleanSession {
		errs = append(errs, errors.New("client_id is empty; a persistent session (clean_session: false) needs one"))
	}
	if opts.Keepalive < 0 || (opts.Keepalive > 0 && opts.Keepalive < time.Second) {
		errs = append(errs, fmt.Errorf("keepalive %s is too short; accepted: 1s or more, 0 for 30s", opts.Keepalive))
	}
	if opts.ShareGroup != "" && strings.ContainsAny(opts.ShareGroup, "/+#") {
		errs = append(errs, fmt.Errorf("share_group %q may not hold '/', '+' or '#'", opts.ShareGroup))
	}
	if c.tls, err = loadTLS(opts.TLS); err != nil {
		errs = append(errs, err)
	}
	if len(opts.Subscriptions) == 0 {
		errs = append(errs, errors.New("subscriptions is empty; add one like {topic: \"sensors/{site}/{device}/{field}\", format: value}"))
	}
	if len(opts.Subscriptions) > 0 {
		if c.router, err = newRouter(opts.Subscriptions, opts.ArrivalTime); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case opts.MaxPayloadBytes < 0:
		errs = append(errs, fmt.Errorf("max_payload_bytes %d is negative; accepted: 1 or more, 0 for %d", opts.MaxPayloadBytes, defaultMaxPayloadBytes))
	case opts.MaxPayloadBytes > 0 && c.router != nil:
		c.router.maxPayload = opts.MaxPayloadBytes
	}
	switch {
	case opts.MaxReadingsPerMessage < 0:
		errs = append(errs, fmt.Errorf("max_readings_per_message %d is negative; accepted: 1 or more, 0 for %d", opts.MaxReadingsPerMessage, defaultMaxReadingsPerMessage))
	case opts.MaxReadingsPerMessage > 0 && c.router != nil:
		c.router.maxReadings = opts.MaxReadingsPerMessage
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, rt := range c.router.routes {
		c.filters[rt.tmpl.filter(opts.ShareGroup)] = opts.QoS
	}
	if c.tls != nil && u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "mqtts" && u.Scheme != "wss" {
		logger.Warn("tls options are set but the broker URL is not a TLS one; they are ignored", "broker", opts.Broker)
	}
	c.throttle = throttle{every: logEvery}
	c.skipLog = throttle{every: logEvery}
	c.m = metrics{
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgegw_mqtt_messages_received_total", Help: "MQTT messages received.",
		}),
		readings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgegw_readings_received_total", Help: "Readings decoded from MQTT messages.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegw_readings_rejected_total", Help: "MQTT messages rejected by the decoders, by reason; each is acknowledged and skipped.",
		}, []string{"reason"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegw_readings_skipped_total", Help: "Parts of accepted MQTT messages not read as readings (a member, a line, a record, a state word), by reason.",
		}, []string{"reason"}),
		assumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegw_readings_time_assumed_total", Help: "Readings stamped with their arrival time although the payload gave a time, by reason (no_zone: a time without a zone, and no time_zone set).",
		}, []string{"reason"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgegw_mqtt_connected", Help: "1 while connected to the broker.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgegw_mqtt_reconnects_total", Help: "Connections to the broker made after the first.",
		}),
		resends: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgegw_mqtt_resends_skipped_total", Help: "QoS 1 resends (DUP) of messages already handed over, acknowledged without counting them again.",
		}),
	}
	if opts.QoS == 1 {
		c.redeliv = &redeliveries{}
		c.redeliv.seed(opts.Committed)
	}
	for _, r := range reasons {
		c.m.rejected.WithLabelValues(r)
	}
	for _, r := range skipReasons {
		c.m.skipped.WithLabelValues(r)
	}
	c.m.assumed.WithLabelValues(assumeNoZone)
	if reg != nil {
		for _, col := range []prometheus.Collector{c.m.messages, c.m.readings, c.m.rejected, c.m.skipped, c.m.assumed, c.m.connected, c.m.reconnects, c.m.resends} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("register mqtt metrics: %w", err)
			}
		}
	}
	return c, nil
}

func parseBroker(s string) (*url.URL, error) {
	const accepted = "tcp://, mqtt://, ssl://, tls://, mqtts://, ws:// or wss:// followed by host:port"
	if s == "" {
		return nil, fmt.Errorf("broker is empty; expected %s", accepted)
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("broker %q is not a URL; expected %s", s, accepted)
	}
	switch u.Scheme {
	case "tcp", "mqtt":
		if u.Port() == "" {
			u.Host = net.JoinHostPort(u.Hostname(), "1883")
		}
	case "ssl", "tls", "mqtts":
		if u.Port() == "" {
			u.Host = net.JoinHostPort(u.Hostname(), "8883")
		}
	case "ws", "wss":
	default:
		return nil, fmt.Errorf("broker %q: scheme %q is not supported; expected %s", s, u.Scheme, accepted)
	}
	return u, nil
}

// Ready reports whether the client is connected and the broker has granted
// every subscription. It is false while the client is disconnected.
func (c *Client) Ready() bool { return c.ready.Load() }

// Run connects to the broker, subscribes and delivers messages to the sink
// until ctx is done. It retries a failed connection with exponential backoff
// and reconnects and subscribes again after a lost one. When ctx is done it
// disconnects cleanly, giving acknowledgements already handed to the
// connection a moment to be written, and returns nil; every goroutine it
// started has ended by then.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer c.running.Store(false)

	lost := make(chan error, 1)
	po := paho.NewClientOptions()
	po.AddBroker(c.broker.String())
	po.SetClientID(c.opts.ClientID)
	po.SetUsername(c.opts.Username)
	po.SetPassword(c.opts.Password)
	po.SetTLSConfig(c.tls)
	po.SetProtocolVersion(4)
	po.SetCleanSession(c.opts.CleanSession)
	keepalive := c.opts.Keepalive
	if keepalive == 0 {
		keepalive = defaultKeepalive
	}
	po.SetKeepAlive(keepalive)
	po.SetConnectTimeout(connectTimeout)
	// Acknowledge only when the sink says so, in order, on one goroutine: a
	// sink that blocks stops the reading and the broker's flow control
	// holds the rest.
	po.SetAutoAckDisabled(true)
	po.SetOrderMatters(true)
	// Run reconnects and subscribes itself, so that a shutdown never waits
	// on paho's uninterruptible backoff.
	po.SetAutoReconnect(false)
	po.SetConnectRetry(false)
	po.SetResumeSubs(false)
	po.SetCustomOpenConnectionFn(func(u *url.URL, o paho.ClientOptions) (net.Conn, error) {
		return openConn(ctx, u, o.TLSConfig, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
	})
	// Every message goes to the default handler, exactly once, including
	// those a persistent session delivers before the subscriptions are
	// renewed; the subscriptions carry no handler of their own.
	po.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.handle(ctx, m) })
	po.SetConnectionLostHandler(func(_ paho.Client, err error) {
		c.ready.Store(false)
		select {
		case lost <- err:
		default:
		}
	})
	pc := paho.NewClient(po)

	connects := 0
	for {
		select {
		case <-lost: // left from an earlier connection
		default:
		}
		sessionPresent, ok := c.connect(ctx, pc)
		if !ok {
			break
		}
		connects++
		if !sessionPresent && c.redeliv != nil {
			// A new session redelivers nothing: no message can be a resend.
			c.mu.Lock()
			c.redeliv.reset()
			c.mu.Unlock()
		}
		if connects > 1 {
			c.m.reconnects.Inc()
			if !c.opts.CleanSession && !sessionPresent {
				c.log.Warn("the broker kept no session for this client_id; messages published while disconnected are lost", "client_id", c.opts.ClientID)
			}
		}
		c.m.connected.Set(1)
		lostErr, stop := c.subscribe(ctx, pc, lost)
		if !stop && lostErr == nil {
			select {
			case <-ctx.Done():
				stop = true
			case lostErr = <-lost:
			}
		}
		if stop {
			break
		}
		c.ready.Store(false)
		c.m.connected.Set(0)
		c.log.Warn("connection to the broker lost; reconnecting", "broker", c.broker.Redacted(), "err", lostErr)
	}
	c.ready.Store(false)
	pc.Disconnect(quiesce)
	// A second Disconnect returns once the first has finished (or after
	// stopTimeout): paho's goroutines, and the handler, have ended then.
	pc.Disconnect(stopTimeout)
	c.m.connected.Set(0)
	return nil
}

// connect connects pc, retrying with backoff, until it succeeds (ok) or ctx
// is done. The first failure of a series is logged, and any later one
// whose error differs.
func (c *Client) connect(ctx context.Context, pc paho.Client) (sessionPresent, ok bool) {
	delay := minBackoff
	failures := 0
	lastErr := ""
	started := time.Now()
	for {
		if ctx.Err() != nil {
			return false, false
		}
		tok := pc.Connect()
		<-tok.Done() // the dial ends with ctx; the handshake within connectTimeout
		err := tok.Error()
		if err == nil {
			if ctx.Err() != nil {
				return false, true // connected: Run disconnects
			}
			attrs := []any{"broker", c.broker.Redacted(), "client_id", c.opts.ClientID}
			if failures > 0 {
				attrs = append(attrs, "failed_attempts", failures, "down_for", time.Since(started).Round(time.Millisecond))
			}
			c.log.Info("connected to the broker", attrs...)
			return tok.(*paho.ConnectToken).SessionPresent(), true
		}
		if ctx.Err() != nil {
			return false, false
		}
		failures++
		if msg := err.Error(); failures == 1 || msg != lastErr {
			c.log.Warn("connect to the broker; retrying until it answers", "broker", c.broker.Redacted(), "err", err, "retry_in", delay)
			lastErr = msg
		}
		if !sleep(ctx, jitter(delay)) {
			return false, false
		}
		delay = min(delay*2, maxBackoff)
	}
}

// subscribe subscribes to every filter. It returns when the broker has
// answered (ready is set if it granted every one), when the connection is
// lost (lostErr), or when ctx is done (stop).
func (c *Client) subscribe(ctx context.Context, pc paho.Client, lost <-chan error) (lostErr error, stop bool) {
	delay := minBackoff
	for {
		tok := pc.SubscribeMultiple(c.filters, nil)
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return nil, true
		case err := <-lost:
			return err, false
		}
		if err := tok.Error(); err != nil {
			c.log.Warn("subscribe; retrying", "err", err, "retry_in", delay)
			t := time.NewTimer(jitter(delay))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, true
			case err := <-lost:
				t.Stop()
				return err, false
			}
			delay = min(delay*2, maxBackoff)
			continue
		}
		granted := tok.(*paho.SubscribeToken).Result()
		var refused, downgraded []string
		for f, q := range c.filters {
			g, ok := granted[f]
			switch {
			case !ok || g == 0x80:
				refused = append(refused, f)
			case g < q:
				downgraded = append(downgraded, f)
			}
		}
		slices.Sort(refused)
		slices.Sort(downgraded)
		if len(refused) > 0 {
			c.log.Error("the broker refused subscriptions (check its access control); not ready until the next connection", "filters", refused)
			return nil, false
		}
		if len(downgraded) > 0 {
			c.log.Warn("the broker granted QoS 0 only; those messages are not acknowledged and may be lost", "filters", downgraded)
		}
		c.ready.Store(true)
		c.log.Info("subscribed", "filters", slices.Sorted(maps.Keys(c.filters)), "qos", c.opts.QoS)
		return nil, false
	}
}

// handle decodes one message and hands it to the sink. paho calls it on one
// goroutine, in order; the mutex only documents that it owns c.buf.
func (c *Client) handle(ctx context.Context, m paho.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.messages.Inc()
	var pkt edgegw.Packet
	if c.redeliv != nil && m.Qos() == 1 && m.MessageID() != 0 {
		pkt = edgegw.Packet{ID: m.MessageID(), Hash: packetHash(m.Topic(), m.Payload())}
		if c.redeliv.resend(pkt.ID, m.Duplicate(), pkt.Hash) {
			// Already handed over, committed or about to be: acknowledge
			// it after the first copy, and count nothing.
			c.m.resends.Inc()
			c.add(ctx, nil, m.Ack, edgegw.Packet{}, c.now())
			return
		}
	}
	now := c.now()
	rs, err := c.router.decode(c.buf[:0], m.Topic(), m.Payload(), now.UnixNano())
	if err != nil {
		rs = rs[:0]
		reason := reasonBadPayload
		var re *RejectError
		if errors.As(err, &re) {
			reason = re.Reason
		}
		c.m.rejected.WithLabelValues(reason).Inc()
		if ok, suppressed := c.throttle.allow(reason, now); ok {
			c.log.Warn("message rejected", "reason", reason, "topic", m.Topic(), "err", err, "suppressed", suppressed)
		}
	}
	for _, k := range c.router.sk.list {
		if k.reason == assumeNoZone {
			c.m.assumed.WithLabelValues(k.reason).Add(float64(k.n))
			if ok, suppressed := c.skipLog.allow(k.reason, now); ok {
				c.log.Warn("readings stamped with their arrival time", "reason", k.reason, "topic", m.Topic(), "readings", k.n, "detail", k.detail, "suppressed", suppressed)
			}
			continue
		}
		c.m.skipped.WithLabelValues(k.reason).Add(float64(k.n))
		if ok, suppressed := c.skipLog.allow(k.reason, now); ok {
			c.log.Warn("parts of a message skipped", "reason", k.reason, "topic", m.Topic(), "parts", k.n, "detail", k.detail, "suppressed", suppressed)
		}
	}
	c.buf = rs
	c.m.readings.Add(float64(len(rs)))
	if c.add(ctx, rs, m.Ack, pkt, now) && c.redeliv != nil {
		c.redeliv.remember(pkt)
	}
}

// add hands one message to the sink and reports whether the sink took it.
// c.mu is held.
func (c *Client) add(ctx context.Context, rs []edgegw.Reading, ack func(), pkt edgegw.Packet, now time.Time) bool {
	err := c.sink.Add(ctx, rs, ack, pkt)
	if err != nil && ctx.Err() == nil {
		if ok, suppressed := c.throttle.allow("sink", now); ok {
			c.log.Error("the sink refused a message; it stays unacknowledged until the broker delivers it again", "err", err, "suppressed", suppressed)
		}
	}
	return err == nil
}

// throttle allows one log line per key per interval and counts the lines
// it held back.
type throttle struct {
	every      time.Duration
	last       map[string]time.Time
	suppressed map[string]int
}

// allow reports whether a line about key may be logged at now, and how many
// were held back since the last one.
func (t *throttle) allow(key string, now time.Time) (bool, int) {
	if t.last == nil {
		t.last, t.suppressed = map[string]time.Time{}, map[string]int{}
	}
	if last, ok := t.last[key]; ok && now.Sub(last) < t.every {
		t.suppressed[key]++
		return false, 0
	}
	n := t.suppressed[key]
	t.last[key] = now
	t.suppressed[key] = 0
	return true, n
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// jitter spreads d by ±20% so that gateways restarted together do not
// reconnect in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
