package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgegw/edgegw/config"
	"github.com/edgegw/edgegw/store"
	"github.com/edgegw/edgegw/window"
	"github.com/spf13/cobra"
)

func newStateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Look into a gateway's data_dir",
	}
	inspect := &cobra.Command{
		Use:   "inspect -c FILE | --data-dir DIR",
		Short: "Print the open windows, watermark, outbox and dead letters of a stopped gateway",
		Long: `Print what a stopped gateway's data_dir holds: the open window panes
(count, and per series its fields, panes, readings and time span), the
watermark as of the last commit, the outbox (rollups waiting for the
upstream) and the dead letters (rollups the upstream refused).

With --dead-letters it prints the dead letters instead, as line protocol,
each after a comment line giving when and why it was refused; the output
can be written to InfluxDB once the cause is fixed.

The file is opened read-only. While a gateway runs on the data_dir the
command refuses, with exit 1: stop the gateway first.`,
		Args: cobra.NoArgs,
		RunE: runStateInspect,
	}
	addConfigFlag(inspect)
	inspect.Flags().String("data-dir", "", "data directory to inspect (default: gateway.data_dir of the config)")
	inspect.Flags().Bool("dead-letters", false, "print the dead letters as line protocol")
	cmd.AddCommand(inspect)
	return cmd
}

func runStateInspect(cmd *cobra.Command, args []string) error {
	dir, _ := cmd.Flags().GetString("data-dir")
	deadOnly, _ := cmd.Flags().GetBool("dead-letters")
	var cfg *config.Config
	cfgGiven := cmd.Flags().Changed("config") || os.Getenv("EDGEGW_CONFIG") != ""
	if !cfgGiven && dir == "" {
		return usageError{errors.New("nothing to inspect: give -c FILE (--config), set EDGEGW_CONFIG, or give --data-dir DIR")}
	}
	if cfgGiven {
		var err error
		if cfg, err = loadConfig(cmd); err != nil {
			return err
		}
	} else {
		// Only --data-dir: the defaults stand in for the config.
		var err error
		if cfg, err = config.Load(nil); err != nil {
			return fmt.Errorf("load default config: %w", err)
		}
	}
	if dir == "" {
		dir = cfg.Gateway.DataDir
	}
	out := cmd.OutOrStdout()
	err := store.Inspect(dir, nil, func(v *store.View) error {
		if deadOnly {
			return printDeadLetters(out, v)
		}
		cp, err := window.Inspect(v.Meta(), v.State())
		if err != nil {
			return fmt.Errorf("read window state in %s: %w", dir, err)
		}
		return printState(out, dir, cfg, cfgGiven, cp, v)
	})
	switch {
	case errors.Is(err, store.ErrInUse):
		return fmt.Errorf("data_dir %s is in use by a running edgegw; stop it first", dir)
	case errors.Is(err, store.ErrNoFile):
		return fmt.Errorf("data_dir %s holds no %s: no gateway has run with it (check gateway.data_dir or --data-dir)", dir, store.FileName)
	}
	return err
}

// timeNS formats an event time in ns as RFC 3339 and ns.
func timeNS(ns int64) string {
	return fmt.Sprintf("%s (%d)", time.Unix(0, ns).UTC().Format(time.RFC3339Nano), ns)
}

func printState(w io.Writer, dir string, cfg *config.Config, cfgGiven bool, cp *window.Checkpoint, v *store.View) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "data_dir:\t%s\n", dir)
	lateness := cfg.Window.AllowedLateness
	latenessFrom := "window.allowed_lateness " + lateness.String()
	if !cfgGiven {
		latenessFrom += ", the default; -c FILE gives the configured one"
	}
	if cp.Size == 0 {
		fmt.Fprintf(tw, "window:\tno window state yet\n")
	} else {
		fmt.Fprintf(tw, "window:\tsize %s, slide %s\n", cp.Size, cp.Slide)
		if cfgGiven && (cp.Size != cfg.Window.Size || cp.Slide != cfg.Window.Slide) {
			fmt.Fprintf(tw, "warning:\tthe config says window.size %s and window.slide %s: the gateway will refuse this state\n", cfg.Window.Size, cfg.Window.Slide)
		}
	}
	if wm, ok := cp.Watermark(lateness); ok {
		fmt.Fprintf(tw, "event clock:\t%s\n", timeNS(cp.Clock))
		fmt.Fprintf(tw, "watermark:\t%s, as of the last commit (%s)\n", timeNS(wm), latenessFrom)
		fmt.Fprintf(tw, "closed before:\t%s: every window starting earlier was emitted\n", timeNS(cp.ClosedBefore))
	} else {
		fmt.Fprintf(tw, "watermark:\tnone: no reading committed yet\n")
	}
	fmt.Fprintf(tw, "open panes:\t%d in %d series\n", cp.Panes, len(cp.Series))
	n, size := v.Outbox()
	fmt.Fprintf(tw, "outbox:\t%d rollups, %d bytes\n", n, size)
	dn, dsize := v.DeadLetters()
	fmt.Fprintf(tw, "dead letters:\t%d, %d bytes", dn, dsize)
	if dn > 0 {
		fmt.Fprintf(tw, " (--dead-letters prints them)")
	}
	fmt.Fprintln(tw)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(cp.Series) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIES\tFIELDS\tPANES\tREADINGS\tFROM\tTO")
	for _, s := range cp.Series {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", s.Key, strings.Join(s.Fields, ","), s.Panes, s.Readings,
			time.Unix(0, s.First).UTC().Format(time.RFC3339Nano), time.Unix(0, s.Last).UTC().Format(time.RFC3339Nano))
	}
	return tw.Flush()
}

func printDeadLetters(w io.Writer, v *store.View) error {
	for dl, err := range v.ListDeadLetters() {
		if err != nil {
			return fmt.Errorf("read dead letters: %w", err)
		}
		reason := strings.ReplaceAll(dl.Reason, "\n", " ")
		if _, err := fmt.Fprintf(w, "# refused %s: %s\n%s\n", dl.At.UTC().Format(time.RFC3339), reason, dl.Line); err != nil {
			return err
		}
	}
	return nil
}
