package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/edgegw/edgegw/config"
	"github.com/edgegw/edgegw/simulator"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

func newDemoCmd() *cobra.Command {
	var listen, influxURL, influxDB string
	var duration time.Duration
	var devices int
	var rate float64
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a built-in broker, the simulator and the gateway in one process",
		Long: `Runs the built-in MQTT broker, the sensor simulator and the gateway in one
process with the default config. Rollups are printed as line protocol on
standard output (or written to --influx-url). Windows are 10 s long and close
5 s after their end, so the first rollups appear within about 15 s.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			cfg, err := config.Load(nil)
			if err != nil {
				return fmt.Errorf("built-in defaults: %w", err)
			}
			logger := newLogger(cfg.Log, cmd.ErrOrStderr())

			addr, stopBroker, err := startBroker(listen, "", logger.With("stage", "broker"))
			if errors.Is(err, errAddrInUse) && !cmd.Flags().Changed("listen") {
				logger.Warn("the default MQTT port is taken, the built-in broker uses a free one instead", "wanted", listen)
				addr, stopBroker, err = startBroker("127.0.0.1:0", "", logger.With("stage", "broker"))
			}
			if err != nil {
				return err
			}
			defer stopBroker()

			dataDir, err := os.MkdirTemp("", "edgegw-demo-")
			if err != nil {
				return fmt.Errorf("make demo data_dir: %w", err)
			}
			defer os.RemoveAll(dataDir)
			cfg.Gateway.DataDir = dataDir
			cfg.MQTT.Broker = "tcp://" + addr
			cfg.Metrics.Listen = ""
			cfg.Uplink.Influx.URL = influxURL
			cfg.Uplink.Influx.Database = influxDB
			cfg.Uplink.Stdout = influxURL == ""

			g, gctx := errgroup.WithContext(ctx)
			g.Go(func() error { return runGateway(gctx, cfg, logger, cmd.OutOrStdout()) })
			g.Go(func() error {
				_, err := simulator.Run(gctx, simulator.Options{
					Broker: "tcp://" + addr, ClientID: "edgegw-demo-simulator",
					Devices: devices, Sites: 2, Rate: rate, Format: "json", QoS: 1, Seed: 1,
					TopicPrefix: "sensors", OutOfOrder: 0.05, Duplicates: 0.02, Lateness: cfg.Window.AllowedLateness,
				}, logger.With("stage", "simulator"))
				return err
			})
			if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:1883", "address of the built-in MQTT broker")
	f.StringVar(&influxURL, "influx-url", "", "write rollups to this InfluxDB (v1 API) instead of standard output")
	f.StringVar(&influxDB, "influx-db", "edge", "InfluxDB database for --influx-url")
	f.DurationVar(&duration, "duration", 0, "stop after this long (0 = until Ctrl-C)")
	f.IntVar(&devices, "devices", 5, "simulated devices")
	f.Float64Var(&rate, "rate", 20, "simulated messages per second")
	return cmd
}
