package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/edgegw/edgegw/simulator"
	"github.com/spf13/cobra"
)

func newSimulateCmd() *cobra.Command {
	var o simulator.Options
	var truth, format string
	var qos int
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Publish simulated sensor readings to an MQTT broker",
		Long: `Publishes simulated readings of temperature and humidity, --batch readings
of one device per message, in one of the formats:

  value   23.45 on <prefix>/<site>/<device>/<field> (batch 1 only)
  json    {"value":23.45,"ts":1700000000000} on <prefix>/<site>/<device>/<field>;
          with --batch over 1, [{"ts":...,"temperature":...,"humidity":...}, ...]
          on <prefix>/<site>/<device>; with --json-nested
          {"readings":[{"ts":...,"temperature":...}, ...]} on <prefix>/<site>/<device>
  influx  line protocol, ns timestamps, on <prefix>/<site>/<device>
  senml   a SenML pack, [{"bn":"dev3:","bt":...,"n":"temperature","v":...,"t":...}, ...],
          on <prefix>/<site>/<device>

With --truth it writes every distinct reading sent, once, as InfluxDB line
protocol with its event time, so the exact expected rollups can be computed from
it (late readings are preceded by a "# late" line). The simulator package
documentation (go doc github.com/edgegw/edgegw/simulator) gives the gateway
subscription that reads each format.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if qos < 0 || qos > 1 {
				return usageError{fmt.Errorf("--qos %d: use 0 or 1", qos)}
			}
			o.Format, o.QoS = format, byte(qos)
			if truth != "" {
				f, err := os.Create(truth)
				if err != nil {
					return usageError{fmt.Errorf("--truth %s: %w", truth, err)}
				}
				defer f.Close()
				o.Truth = f
			}
			o.Progress = cmd.ErrOrStderr()
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			_, err := simulator.Run(cmd.Context(), o, logger)
			if errors.Is(err, simulator.ErrOptions) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			if f, ok := o.Truth.(*os.File); ok {
				if err := f.Sync(); err != nil {
					return fmt.Errorf("write --truth %s: %w", truth, err)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Broker, "broker", "tcp://127.0.0.1:1883", "broker URL")
	f.IntVar(&o.Devices, "devices", 10, "number of devices")
	f.IntVar(&o.Sites, "sites", 1, "number of sites the devices are spread over")
	f.Float64Var(&o.Rate, "rate", 100, "messages per second in total; 0 = as fast as possible")
	f.Int64Var(&o.Count, "count", 0, "stop after this many messages (0 = no limit)")
	f.DurationVar(&o.Duration, "duration", 0, "stop after this long (0 = no limit)")
	f.StringVar(&format, "format", "json", "payload format: value | json | influx | senml")
	f.IntVar(&o.Batch, "batch", 1, "readings per message, all of one device (format value: 1 only)")
	f.BoolVar(&o.JSONNested, "json-nested", false, `format json: send {"readings":[...]} (read with json.time_key "readings.*.ts")`)
	f.IntVar(&qos, "qos", 1, "MQTT QoS: 0 | 1")
	f.Int64Var(&o.Seed, "seed", 1, "random seed; the same seed sends the same readings")
	f.StringVar(&o.TopicPrefix, "topic-prefix", "sensors", "first topic level")
	f.Float64Var(&o.OutOfOrder, "out-of-order", 0, "fraction of readings sent out of order, within the lateness bound")
	f.Float64Var(&o.Late, "late", 0, "fraction of readings sent later than the lateness bound")
	f.Float64Var(&o.Duplicates, "duplicates", 0, "fraction of readings sent twice")
	f.DurationVar(&o.Lateness, "lateness", 5*time.Second, "the gateway's window.allowed_lateness the fractions refer to")
	f.StringVar(&truth, "truth", "", "write every distinct reading sent to this file as line protocol")
	return cmd
}
