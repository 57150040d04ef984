package simulator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Errors returned by Run.
var (
	// ErrOptions is wrapped by the error Run returns for Options it cannot
	// use; the message lists every problem, each naming its option.
	ErrOptions = errors.New("invalid simulator options")
)

// Defaults applied by Run to zero-valued Options fields.
const (
	DefaultBroker      = "tcp://127.0.0.1:1883"
	DefaultDevices     = 10
	DefaultSites       = 1
	DefaultFormat      = "json"
	DefaultTopicPrefix = "sensors"
	DefaultLateness    = 5 * time.Second
	DefaultMaxInflight = 500
	DefaultBatch       = 1
	// MaxBatch bounds Options.Batch: a message of MaxBatch readings stays
	// well under the gateway's default mqtt.max_payload_bytes (256 KiB) and
	// mqtt.max_readings_per_message (10000) in every format.
	MaxBatch = 1000
)

const (
	// measurement is the measurement of every line of the truth file; the
	// gateway's default subscription gives the same one.
	measurement = "sensors"
	// maxDevices bounds Devices so that a typo cannot exhaust memory.
	maxDevices = 1_000_000
	// ackGrace is how long Run waits for outstanding acknowledgements once
	// its context is cancelled.
	ackGrace = 5 * time.Second
	// tick is how often the progress line and the truth file are refreshed.
	tick = time.Second
	// connectTimeout bounds the MQTT connect.
	connectTimeout = 10 * time.Second
	// writeTimeout bounds how long a publish waits to be handed to the
	// connection; it is also how long a publish can hang when the
	// connection is lost under it.
	writeTimeout = 3 * time.Second
)

// Options configures Run. The zero value of a field means its default where
// one is given.
type Options struct {
	// Broker is the MQTT broker URL (tcp://, mqtt://, ssl://, tls://,
	// mqtts://, ws://, wss://); default DefaultBroker.
	Broker string
	// ClientID is the MQTT client id; default "edgegw-sim-" and 8 random
	// hex digits.
	ClientID string
	// Devices is the number of simulated devices, named dev1, dev2, ...;
	// default 10. Each device reports temperature and humidity.
	Devices int
	// Sites is the number of sites, named site1, site2, ...; device i
	// (from 0) is on site (i % Sites)+1. Default 1; at most Devices.
	Sites int
	// Rate is the number of messages per second in total; 0 publishes as
	// fast as the in-flight window allows.
	Rate float64
	// Count stops the run after this many messages; 0 means no limit.
	Count int64
	// Duration stops the run after this long; 0 means no limit. With
	// neither Count nor Duration the run ends when its context is
	// cancelled.
	Duration time.Duration
	// Format is the payload format: "value" (the bare number, e.g.
	// "23.45"), "json" ({"value":23.45,"ts":1700000000000}, ts in ms; an
	// array of objects with Batch > 1; see JSONNested), "influx" (InfluxDB
	// line protocol, ns precision) or "senml" (a SenML JSON pack); default
	// "json". The package documentation shows each payload and the gateway
	// subscription that reads it.
	Format string
	// Batch is the number of readings per message, all of one device;
	// default 1, at most MaxBatch. Format value takes only 1.
	Batch int
	// JSONNested (format json only) wraps the readings of a message in
	// {"readings":[...]}, one object per event time; the gateway reads it
	// with json.time_key "readings.*.ts".
	JSONNested bool
	// QoS is the MQTT QoS of every publish, 0 or 1. The zero value is QoS 0;
	// the edgegw simulate flag defaults to 1.
	QoS byte
	// Seed makes runs repeatable: the same seed gives the same readings
	// (values, and which ones are out of order, late or duplicated).
	Seed int64
	// TopicPrefix is the first topic level; topics are
	// <prefix>/<site>/<device>/<field> for formats value and json with one
	// flat reading per message, and <prefix>/<site>/<device> otherwise.
	// Default "sensors".
	TopicPrefix string
	// OutOfOrder is the fraction of messages held back for a random delay
	// in (0, Lateness/2], and with event times (formats json, influx and
	// senml) at most until the newest event time published is Lateness/2
	// past their earliest: out of order, but within the lateness bound.
	OutOfOrder float64
	// Late is the fraction of messages whose readings are stamped an hour
	// beyond the lateness bound. It needs event times: not format value.
	Late float64
	// Duplicates is the fraction of messages that repeat one of the last
	// 1024 messages exactly (topic and payload).
	Duplicates float64
	// Lateness is the gateway's allowed lateness the fractions refer to;
	// default DefaultLateness.
	Lateness time.Duration
	// MaxInflight bounds the publishes not yet acknowledged (QoS 1) or not
	// yet written (QoS 0); default DefaultMaxInflight, at most 65535.
	MaxInflight int
	// Truth, when not nil, receives every distinct reading once, as it is
	// first published, as InfluxDB line protocol with the event time in ns.
	// A late reading's line follows the comment line "# late".
	Truth io.Writer
	// Progress, when not nil, receives a progress line rewritten about once
	// a second (starting with "\r") and a final summary line.
	Progress io.Writer
}

// Stats counts what a run published.
type Stats struct {
	// Messages is the number of MQTT messages published.
	Messages int64
	// Readings is the number of distinct readings published: the lines of
	// the truth file. Messages = Readings/Batch + Duplicates.
	Readings int64
	// OutOfOrder and Late count the readings published out of order and
	// late (they are also counted in Readings); Duplicates counts the
	// messages published again (each repeats Batch readings).
	OutOfOrder, Late, Duplicates int64
	// Elapsed is the time from the connection to the last acknowledgement.
	Elapsed time.Duration
}

// Run connects to opts.Broker and publishes simulated readings until
// opts.Count messages were published, opts.Duration passed or ctx is
// cancelled, waits for the outstanding acknowledgements (after a
// cancellation, for at most 5 s), disconnects and returns what it published.
// Cancellation is a clean stop: Run then returns a nil error. Options Run
// cannot use give an error wrapping ErrOptions, before any connection is
// made. A nil logger discards the log.
func Run(ctx context.Context, opts Options, logger *slog.Logger) (Stats, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o, err := opts.normalize()
	if err != nil {
		return Stats{}, err
	}
	r := &runner{
		o:    o,
		log:  logger.With("stage", "simulator"),
		rng:  rand.New(rand.NewPCG(uint64(o.Seed), 0x5eed_ed9e_0000_0001)),
		aux:  rand.New(rand.NewPCG(uint64(o.Seed), 0x5eed_ed9e_0000_0002)),
		lost: make(chan struct{}),
		held: newHeldQueue(),
		pend: queue{buf: make([]pending, o.MaxInflight)},
	}
	r.devices = newDevices(r.rng, o.TopicPrefix, o.Devices, o.Sites)
	r.grid = 2
	if o.Format == "senml" {
		r.grid = 8
	}
	if o.Truth != nil {
		r.truth = bufio.NewWriterSize(o.Truth, 64<<10)
	}
	return r.run(ctx)
}

// normalize applies the defaults and checks every field.
func (o Options) normalize() (Options, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if o.Broker == "" {
		o.Broker = DefaultBroker
	}
	if u, err := url.Parse(o.Broker); err != nil || u.Host == "" || !validScheme(u.Scheme) {
		bad("broker %q: want a URL such as tcp://127.0.0.1:1883 (schemes tcp, mqtt, ssl, tls, mqtts, ws, wss)", o.Broker)
	}
	if o.ClientID == "" {
		o.ClientID = fmt.Sprintf("edgegw-sim-%08x", rand.Uint32())
	}
	if o.Devices == 0 {
		o.Devices = DefaultDevices
	}
	if o.Devices < 1 || o.Devices > maxDevices {
		bad("devices %d: must be between 1 and %d", o.Devices, maxDevices)
	}
	if o.Sites == 0 {
		o.Sites = DefaultSites
	}
	if o.Sites < 1 || (o.Devices >= 1 && o.Sites > o.Devices) {
		bad("sites %d: must be between 1 and the number of devices (%d)", o.Sites, o.Devices)
	}
	if math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) || o.Rate < 0 {
		bad("rate %v: must be 0 (as fast as possible) or a number of messages per second", o.Rate)
	}
	if o.Count < 0 {
		bad("count %d: must be 0 (no limit) or more", o.Count)
	}
	if o.Duration < 0 {
		bad("duration %s: must be 0 (no limit) or more", o.Duration)
	}
	if o.Format == "" {
		o.Format = DefaultFormat
	}
	switch o.Format {
	case "value", "json", "influx", "senml":
	default:
		bad("format %q: must be value, json, influx or senml", o.Format)
	}
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	switch {
	case o.Batch < 1 || o.Batch > MaxBatch:
		bad("batch %d: must be between 1 and %d readings per message", o.Batch, MaxBatch)
	case o.Batch > 1 && o.Format == "value":
		bad("batch %d: format value carries one reading per message; use batch 1, or format json, influx or senml", o.Batch)
	}
	if o.JSONNested && o.Format != "json" {
		bad("json-nested: shapes json payloads, but the format is %s; use format json", o.Format)
	}
	if o.QoS > 1 {
		bad("qos %d: must be 0 or 1", o.QoS)
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = DefaultTopicPrefix
	}
	o.TopicPrefix = strings.TrimSuffix(o.TopicPrefix, "/")
	if o.TopicPrefix == "" || strings.ContainsAny(o.TopicPrefix, "+#\x00") {
		bad("topic-prefix %q: must be a non-empty topic without the wildcards + and #", o.TopicPrefix)
	}
	fractions := []struct {
		name string
		v    float64
	}{{"out-of-order", o.OutOfOrder}, {"late", o.Late}, {"duplicates", o.Duplicates}}
	sum, sumOK := 0.0, true
	for _, f := range fractions {
		if math.IsNaN(f.v) || f.v < 0 || f.v > 1 {
			bad("%s %v: must be a fraction between 0 and 1", f.name, f.v)
			sumOK = false
		}
		sum += f.v
	}
	if sumOK && sum > 1 {
		bad("out-of-order + late + duplicates = %v: must be at most 1", sum)
	}
	if o.Late > 0 && o.Format == "value" {
		bad("late %v: format value carries no event time, so late readings need format json, influx or senml", o.Late)
	}
	if o.Lateness == 0 {
		o.Lateness = DefaultLateness
	}
	if o.Lateness < 0 {
		bad("lateness %s: must be positive", o.Lateness)
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = DefaultMaxInflight
	}
	if o.MaxInflight < 1 || o.MaxInflight > 65535 {
		bad("max-inflight %d: must be between 1 and 65535", o.MaxInflight)
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("%w: %w", ErrOptions, errors.Join(errs...))
	}
	return o, nil
}

func validScheme(s string) bool {
	switch s {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
		return true
	}
	return false
}

// pending is a publish awaiting its acknowledgement.
type pending struct {
	tok   paho.Token
	topic string
}

// queue is a fixed-size FIFO of pending publishes.
type queue struct {
	buf     []pending
	head, n int
}

func (q *queue) push(p pending) { q.buf[(q.head+q.n)%len(q.buf)] = p; q.n++ }
func (q *queue) front() pending { return q.buf[q.head] }
func (q *queue) pop() {
	q.buf[q.head] = pending{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
}

// runner is the state of one Run; it is used by one goroutine.
type runner struct {
	o   Options
	log *slog.Logger

	client   paho.Client
	lost     chan struct{} // closed when the connection is lost
	lostOnce sync.Once
	lostErr  error // set before lost is closed

	rng     *rand.Rand // draws that make the readings: repeatable
	aux     *rand.Rand // draws whose outcome depends on timing
	devices []*device
	dev     int    // index of the device whose turn it is
	field   int    // index of its field that comes next
	grid    int64  // event times: normal ones multiples of grid ms, late ones grid/2 past
	buf     []byte // scratch for payloads

	held       heldQueue
	seq        int64
	recent     recent
	pend       queue
	newest     int64 // newest event time published, ms
	haveNormal bool  // a normal reading was published

	truth *bufio.Writer
	stats Stats
	start time.Time

	lastTick     time.Time
	lastMessages int64
}

// errStop ends the loop when the run is over.
var errStop = errors.New("run over")

func (r *runner) run(ctx context.Context) (Stats, error) {
	if err := r.connect(ctx); err != nil {
		if ctx.Err() != nil {
			return Stats{}, nil
		}
		return Stats{}, err
	}
	defer r.client.Disconnect(250)
	r.log.Info("publishing", "broker", r.o.Broker, "client_id", r.o.ClientID,
		"devices", r.o.Devices, "sites", r.o.Sites, "format", r.o.Format, "batch", r.o.Batch, "json_nested", r.o.JSONNested, "qos", r.o.QoS,
		"rate", r.o.Rate, "count", r.o.Count, "duration", r.o.Duration, "seed", r.o.Seed)

	r.start = time.Now()
	r.lastTick = r.start
	err := r.loop(ctx)
	if errors.Is(err, errStop) {
		// Count or Duration reached: publish the held readings now.
		err = nil
		for h := r.held.popDue(); err == nil && h != nil; h = r.held.popDue() {
			err = r.publishBatch(ctx, h.b, time.Now())
		}
		if err == nil {
			err = r.drain(ctx)
		}
	}
	cancelled := ctx.Err() != nil && (err == nil || errors.Is(err, ctx.Err()))
	if cancelled {
		if n := r.held.Len(); n > 0 {
			r.log.Debug("held messages not published", "count", n)
		}
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackGrace)
		err = r.drain(gctx)
		cancel()
		if err != nil && gctx.Err() != nil {
			r.log.Warn("publishes not acknowledged before disconnecting", "count", r.pend.n, "waited", ackGrace)
			err = nil
		}
	}
	r.stats.Elapsed = time.Since(r.start)
	if r.truth != nil {
		if ferr := r.truth.Flush(); ferr != nil && err == nil {
			err = fmt.Errorf("write truth: %w", ferr)
		}
	}
	r.summary()
	r.log.Info("published", "messages", r.stats.Messages, "readings", r.stats.Readings,
		"out_of_order", r.stats.OutOfOrder, "late", r.stats.Late, "duplicates", r.stats.Duplicates,
		"elapsed", r.stats.Elapsed)
	return r.stats, err
}

func (r *runner) connect(ctx context.Context) error {
	po := paho.NewClientOptions().
		AddBroker(r.o.Broker).
		SetClientID(r.o.ClientID).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(connectTimeout).
		SetKeepAlive(30 * time.Second).
		SetWriteTimeout(writeTimeout).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			r.lostOnce.Do(func() { r.lostErr = err; close(r.lost) })
		})
	c := paho.NewClient(po)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		tok.WaitTimeout(connectTimeout)
		if c.IsConnected() {
			c.Disconnect(0)
		}
		return ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("connect to broker %s: %w", r.o.Broker, err)
	}
	r.client = c
	return nil
}

// loop publishes message slots until Count or Duration is reached (errStop),
// ctx is cancelled (its error) or a publish fails. Slot i is due at
// start + i/Rate; held readings are released as they fall due.
func (r *runner) loop(ctx context.Context) error {
	var end time.Time
	if r.o.Duration > 0 {
		end = r.start.Add(r.o.Duration)
	}
	maxLag := (r.o.Lateness / 2).Milliseconds()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for slot := int64(0); ; {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := time.Now()
		for h := r.held.release(now, r.newest, maxLag); h != nil; h = r.held.release(now, r.newest, maxLag) {
			if err := r.publishBatch(ctx, h.b, now); err != nil {
				return err
			}
		}
		if now.Sub(r.lastTick) >= tick {
			if err := r.tick(now); err != nil {
				return err
			}
		}
		if (r.o.Count > 0 && slot >= r.o.Count) || (!end.IsZero() && !now.Before(end)) {
			return errStop
		}
		due := now
		if r.o.Rate > 0 {
			due = r.start.Add(time.Duration(float64(slot) / r.o.Rate * float64(time.Second)))
		}
		if !now.Before(due) {
			if err := r.slot(ctx, now); err != nil {
				return err
			}
			slot++
			continue
		}
		wake := due
		if d, ok := r.held.nextDue(); ok && d.Before(wake) {
			wake = d
		}
		if t := r.lastTick.Add(tick); t.Before(wake) {
			wake = t
		}
		if !end.IsZero() && end.Before(wake) {
			wake = end
		}
		timer.Reset(wake.Sub(now))
		select {
		case <-ctx.Done():
		case <-timer.C:
		case <-r.lost:
			return r.lostError()
		}
	}
}

// slot publishes, or holds back, the message of one slot.
func (r *runner) slot(ctx context.Context, now time.Time) error {
	k := normal
	switch u := r.rng.Float64(); {
	case u < r.o.Duplicates:
		k = duplicate
	case u < r.o.Duplicates+r.o.Late:
		k = late
	case u < r.o.Duplicates+r.o.Late+r.o.OutOfOrder:
		k = outOfOrder
	}
	if !r.haveNormal && (k == duplicate || k == late) {
		k = normal
	}
	if k == duplicate {
		if err := r.publish(ctx, r.recent.pick(r.aux)); err != nil {
			return err
		}
		r.stats.Duplicates++
		return nil
	}
	b := r.take()
	switch k {
	case late:
		b.late = true
		lateness := int64((r.o.Lateness + time.Millisecond - 1) / time.Millisecond)
		for i := range b.rs {
			s := b.rs[i].s
			b.rs[i].ts = s.stampLate(r.newest, lateness, r.grid)
			// It takes the place of a normal reading: when event time runs
			// ahead of the clock, every series then advances alike, and
			// none falls behind the stream for its late readings.
			s.stamp(now, r.grid)
		}
	case outOfOrder:
		b.held = true
		if r.o.Format != "value" {
			for i := range b.rs {
				b.rs[i].ts = b.rs[i].s.stamp(now, r.grid)
			}
		}
		delay := time.Duration((1 - r.rng.Float64()) * float64(r.o.Lateness/2))
		r.seq++
		r.held.push(&heldBatch{due: now.Add(delay), seq: r.seq, ts: b.earliest(), b: b})
		return nil
	default:
		for i := range b.rs {
			b.rs[i].ts = b.rs[i].s.stamp(now, r.grid)
		}
		r.haveNormal = true
	}
	return r.publishBatch(ctx, b, now)
}

// take returns the readings of the next message, values drawn, not yet
// stamped: the next Batch readings of the device whose turn it is, its
// fields in turn. A device's turn ends with a message that ends with its
// last field, so that a turn gives each of its fields equally often; with
// Batch 1 the series take turns one by one.
func (r *runner) take() *batch {
	d := r.devices[r.dev]
	b := &batch{dev: d, rs: make([]reading, r.o.Batch)}
	for i := range b.rs {
		s := d.series[r.field]
		b.rs[i] = reading{s: s, value: s.next(r.rng)}
		r.field = (r.field + 1) % len(d.series)
	}
	if r.field == 0 {
		r.dev = (r.dev + 1) % len(r.devices)
	}
	return b
}

// publishBatch writes the readings of b to the truth file and publishes
// them in one message.
func (r *runner) publishBatch(ctx context.Context, b *batch, now time.Time) error {
	if b.held && r.o.Format == "value" {
		// The gateway stamps a bare value on arrival: its time is now.
		for i := range b.rs {
			b.rs[i].ts = b.rs[i].s.stamp(now, r.grid)
		}
	}
	topic, payload := r.encode(b)
	if r.truth != nil {
		var num [24]byte
		for _, rd := range b.rs {
			if b.late {
				r.truth.WriteString("# late\n")
			}
			r.truth.WriteString(rd.s.line)
			r.truth.WriteString(rd.value)
			r.truth.WriteByte(' ')
			r.truth.Write(strconv.AppendInt(num[:0], rd.ts*int64(time.Millisecond), 10))
			r.truth.WriteByte('\n')
		}
	}
	m := message{topic: topic, payload: payload}
	if err := r.publish(ctx, m); err != nil {
		return err
	}
	r.recent.add(m)
	n := int64(len(b.rs))
	r.stats.Readings += n
	switch {
	case b.late:
		r.stats.Late += n
	case b.held:
		r.stats.OutOfOrder += n
	}
	if !b.late {
		for _, rd := range b.rs {
			r.newest = max(r.newest, rd.ts)
		}
	}
	return nil
}

// publish publishes m once fewer than MaxInflight publishes are pending.
func (r *runner) publish(ctx context.Context, m message) error {
	for r.pend.n >= len(r.pend.buf) {
		if err := r.waitFront(ctx); err != nil {
			return err
		}
	}
	for r.pend.n > 0 && isDone(r.pend.front().tok) {
		if err := r.waitFront(ctx); err != nil {
			return err
		}
	}
	select {
	case <-r.lost:
		return r.lostError()
	default:
	}
	r.pend.push(pending{tok: r.client.Publish(m.topic, r.o.QoS, false, m.payload), topic: m.topic})
	r.stats.Messages++
	return nil
}

func isDone(t paho.Token) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}

// waitFront waits for the oldest pending publish to complete.
func (r *runner) waitFront(ctx context.Context) error {
	p := r.pend.front()
	select {
	case <-p.tok.Done():
	case <-r.lost:
		return r.lostError()
	case <-ctx.Done():
		return ctx.Err()
	}
	r.pend.pop()
	if err := p.tok.Error(); err != nil {
		return fmt.Errorf("publish to %s: %w", p.topic, err)
	}
	return nil
}

// drain waits for every pending publish to complete.
func (r *runner) drain(ctx context.Context) error {
	for r.pend.n > 0 {
		if err := r.waitFront(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) lostError() error {
	return fmt.Errorf("publish to broker %s: connection lost: %w", r.o.Broker, r.lostErr)
}

// tick flushes the truth file and rewrites the progress line.
func (r *runner) tick(now time.Time) error {
	if r.truth != nil {
		if err := r.truth.Flush(); err != nil {
			return fmt.Errorf("write truth: %w", err)
		}
	}
	if r.o.Progress != nil {
		rate := float64(r.stats.Messages-r.lastMessages) / now.Sub(r.lastTick).Seconds()
		fmt.Fprintf(r.o.Progress, "\rsent %d messages  %.0f/s  elapsed %s      ",
			r.stats.Messages, rate, now.Sub(r.start).Truncate(time.Second))
	}
	r.lastTick, r.lastMessages = now, r.stats.Messages
	return nil
}

// summary writes the final progress line.
func (r *runner) summary() {
	if r.o.Progress == nil {
		return
	}
	s := r.stats
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Messages) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(r.o.Progress, "\rsent %d messages (%d readings: %d out of order, %d late; %d duplicates) in %s, %.0f/s\n",
		s.Messages, s.Readings, s.OutOfOrder, s.Late, s.Duplicates, s.Elapsed.Round(time.Millisecond), rate)
}
