package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/edgegw/edgegw/batcher"
	"github.com/edgegw/edgegw/config"
	"github.com/edgegw/edgegw/metrics"
	"github.com/edgegw/edgegw/mqtt"
	"github.com/edgegw/edgegw/store"
	"github.com/edgegw/edgegw/uplink"
	"github.com/edgegw/edgegw/window"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

func newRunCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run -c FILE",
		Short: "Run the gateway until SIGINT or SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			logger := newLogger(cfg.Log, os.Stderr)
			return runGateway(cmd.Context(), cfg, logger, cmd.OutOrStdout())
		},
	}
	addConfigFlag(cmd)
	return cmd
}

// newLogger builds the process's logger from log.level and log.format.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// gatewayCounters are the window engine's counts, exported as metrics.
type gatewayCounters struct {
	late, duplicate, future, invalid prometheus.Counter
	open                             prometheus.Gauge
}

func newGatewayCounters(reg prometheus.Registerer) *gatewayCounters {
	c := &gatewayCounters{
		late:      prometheus.NewCounter(prometheus.CounterOpts{Name: "edgegw_readings_late_total", Help: "Readings later than the lateness bound, not aggregated."}),
		duplicate: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgegw_readings_duplicate_total", Help: "Repeats of a reading already counted (same series, field and event time), dropped."}),
		future:    prometheus.NewCounter(prometheus.CounterOpts{Name: "edgegw_readings_future_total", Help: "Readings stamped further ahead of the gateway clock than window.max_future, rejected."}),
		invalid:   prometheus.NewCounter(prometheus.CounterOpts{Name: "edgegw_readings_invalid_total", Help: "Readings with a value that is not a finite number, rejected."}),
		open:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgegw_window_panes_open", Help: "Window panes held in memory and in the checkpoint."}),
	}
	reg.MustRegister(c.late, c.duplicate, c.future, c.invalid, c.open)
	return c
}

// runGateway runs every stage until ctx is done, then shuts down in order:
// the batcher commits its open batch and acknowledges it while the MQTT
// connection is still up, the uplink gets up to gateway.shutdown_timeout to
// empty the outbox, and only then the connections close.
func runGateway(ctx context.Context, cfg *config.Config, logger *slog.Logger, stdout io.Writer) error {
	reg := prometheus.NewRegistry()
	metrics.RegisterRuntime(reg)

	if cfg.MQTT.Broker == "embedded" {
		addr, stopBroker, err := startBroker(cfg.MQTT.EmbeddedListen, filepath.Join(cfg.Gateway.DataDir, "broker.db"), logger.With("stage", "broker"))
		if err != nil {
			return err
		}
		defer stopBroker()
		cfg.MQTT.Broker = "tcp://" + addr
	}

	st, err := store.Open(cfg.Gateway.DataDir, &store.Options{MaxOutboxBytes: cfg.Uplink.MaxOutboxBytes}, logger.With("stage", "store"), reg)
	if err != nil {
		return err
	}
	defer st.Close()

	eng, err := window.New(windowOptions(cfg))
	if err != nil {
		return usageError{err}
	}
	if err := st.Restore(eng.Restore); err != nil {
		return fmt.Errorf("restore window state from %s: %w", cfg.Gateway.DataDir, err)
	}
	n, bytes := st.Outbox()
	logger.Info("gateway starting", "gateway_id", cfg.Gateway.ID, "data_dir", cfg.Gateway.DataDir,
		"open_panes", eng.Panes(), "outbox_rollups", n, "outbox_bytes", bytes, "version", versionString())

	counters := newGatewayCounters(reg)
	// The event clock moves with wall time only while the gateway can hear
	// its sensors. After a spell in which it could not (the process was
	// stopped, the broker was unreachable, commits to data_dir failed and the
	// broker held the messages back) it resumes where it stood, so readings
	// held back during the spell are not made late by it.
	var mc *mqtt.Client
	deaf := true // until the first commit: the process was not running
	commit := func(ctx context.Context, b *batcher.Batch) error {
		now := time.Now()
		if deaf || !mc.Ready() {
			eng.Resume(now)
		}
		deaf = false
		// The readings arrived up to batch.interval before this commit: the
		// event clock takes their arrival, not the commit's time, or the
		// older ones in the batch would be late by the batch's age.
		arrived := now
		if !b.Arrived.IsZero() && b.Arrived.Before(now) {
			arrived = b.Arrived
		}
		eng.Add(b.Readings, arrived)
		if b.Messages > 0 {
			// Nor does the time the batch held unacknowledged messages:
			// the broker may have been waiting for their acknowledgements
			// (its in-flight window) instead of sending what it holds.
			eng.Resume(now)
		}
		eng.Advance(now)
		rd := eng.Ready()
		if len(rd.State) > 0 || len(rd.Rollups) > 0 || len(b.Packets) > 0 {
			if err := st.Commit(rd, b.Packets...); err != nil {
				deaf = true
				return err
			}
		}
		eng.Done(rd)
		counters.late.Add(float64(rd.Late))
		counters.duplicate.Add(float64(rd.Duplicate))
		counters.future.Add(float64(rd.Future))
		counters.invalid.Add(float64(rd.Invalid))
		counters.open.Set(float64(eng.Panes()))
		return nil
	}
	bat, err := batcher.New(batcher.Options{
		Interval:    cfg.Batch.Interval,
		MaxReadings: cfg.Batch.MaxReadings,
		// Past Mosquitto's default window of 20 unacknowledged messages,
		// commit once the broker pauses (4 times the 90th percentile gap
		// between messages, at most 10ms): a broker held by its window
		// pauses at once, one with a wider window costs a commit per
		// interval instead of one per 20 messages (BENCHMARKS.md).
		FlowIdle: 10 * time.Millisecond,
	}, commit, logger.With("stage", "batcher"), reg)
	if err != nil {
		return usageError{err}
	}
	mopts := mqttOptions(cfg)
	if mopts.Committed, err = st.Packets(); err != nil {
		return fmt.Errorf("read committed MQTT packets from %s: %w", cfg.Gateway.DataDir, err)
	}
	mc, err = mqtt.New(mopts, bat, logger.With("stage", "mqtt"), reg)
	if err != nil {
		return usageError{err}
	}
	upOpts := uplinkOptions(cfg)
	if cfg.Uplink.Stdout {
		upOpts.Stdout = stdout
	}
	up, err := uplink.New(upOpts, st, logger.With("stage", "uplink"), reg)
	if err != nil {
		return usageError{err}
	}

	// The connections outlive the batcher: its last commit is acknowledged
	// over them, and the uplink drains the outbox after it.
	connCtx, stopConns := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConns()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return mc.Run(connCtx) })
	g.Go(func() error { return up.Run(connCtx) })
	if cfg.Metrics.Listen != "" {
		ms := metrics.New(metrics.Options{Listen: cfg.Metrics.Listen, Ready: func() (bool, string) {
			if err := bat.Err(); err != nil {
				return false, "store: cannot commit to data_dir " + cfg.Gateway.DataDir + ", messages stay unacknowledged at the broker: " + err.Error()
			}
			if !mc.Ready() {
				return false, "mqtt: not connected to " + cfg.MQTT.Broker + " or subscriptions not acknowledged"
			}
			return true, ""
		}}, reg, logger.With("stage", "metrics"))
		g.Go(func() error { return ms.Run(connCtx) })
	}
	g.Go(func() error {
		defer stopConns()
		err := bat.Run(gctx)
		drainOutbox(st, cfg.Gateway.ShutdownTimeout, logger)
		return err
	})
	err = g.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	logger.Info("gateway stopped")
	return nil
}

// drainOutbox waits up to timeout for the uplink to empty the outbox.
func drainOutbox(st *store.Store, timeout time.Duration, logger *slog.Logger) {
	n, _ := st.Outbox()
	if n == 0 {
		return
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if n, _ = st.Outbox(); n == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	logger.Warn("rollups still wait for the upstream at shutdown; they are sent at the next start",
		"outbox_rollups", n, "shutdown_timeout", timeout)
}

func windowOptions(cfg *config.Config) window.Options {
	return window.Options{
		Size:            cfg.Window.Size,
		Slide:           cfg.Window.Slide,
		AllowedLateness: cfg.Window.AllowedLateness,
		MaxFuture:       cfg.Window.MaxFuture,
		LatePolicy:      window.LatePolicy(cfg.Window.LatePolicy),
		Dedup:           cfg.Window.Dedup,
		Aggregates:      cfg.Window.Aggregates,
	}
}

func mqttOptions(cfg *config.Config) mqtt.Options {
	m := cfg.MQTT
	o := mqtt.Options{
		Broker:       m.Broker,
		ClientID:     m.ClientID,
		Username:     m.Username,
		Password:     string(m.Password),
		TLS:          mqtt.TLSOptions{CAFile: m.TLS.CAFile, CertFile: m.TLS.CertFile, KeyFile: m.TLS.KeyFile, InsecureSkipVerify: m.TLS.InsecureSkipVerify},
		QoS:          byte(m.QoS),
		CleanSession: m.CleanSession,
		Keepalive:    m.Keepalive,
		ShareGroup:   m.ShareGroup,
		ArrivalTime:  cfg.Window.Time == "arrival",

		MaxPayloadBytes:       m.MaxPayloadBytes,
		MaxReadingsPerMessage: m.MaxReadingsPerMessage,
	}
	for _, s := range m.Subscriptions {
		j := s.JSON
		o.Subscriptions = append(o.Subscriptions, mqtt.Subscription{
			Topic:       s.Topic,
			Format:      s.Format,
			Measurement: s.Measurement,
			Booleans:    s.Booleans,
			JSON: mqtt.JSONOptions{TimeKey: j.TimeKey, TimeUnit: j.TimeUnit, TimeFormat: j.TimeFormat, TimeZone: j.TimeZone,
				ValueKey: j.ValueKey, TagKeys: j.TagKeys, Fields: j.Fields, Exclude: j.Exclude, NumericStrings: j.NumericStrings},
			Influx: mqtt.InfluxOptions{Precision: s.Influx.Precision},
			SenML:  mqtt.SenMLOptions{DeviceSeparator: s.SenML.DeviceSeparator},
			Value:  mqtt.ValueOptions{UnitSuffix: s.Value.UnitSuffix},
		})
	}
	return o
}

func uplinkOptions(cfg *config.Config) uplink.Options {
	u := cfg.Uplink
	return uplink.Options{
		URL:             u.Influx.URL,
		API:             u.Influx.API,
		Database:        u.Influx.Database,
		RetentionPolicy: u.Influx.RetentionPolicy,
		Username:        u.Influx.Username,
		Password:        string(u.Influx.Password),
		Org:             u.Influx.Org,
		Bucket:          u.Influx.Bucket,
		Token:           string(u.Influx.Token),
		Gzip:            u.Influx.Gzip,
		Timeout:         u.Influx.Timeout,
		BatchSize:       u.BatchSize,
		FlushInterval:   u.FlushInterval,
	}
}
