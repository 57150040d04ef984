// Command edgegw is an IoT edge gateway: it subscribes to MQTT sensor
// topics, aggregates the readings in event-time windows with crash-safe
// checkpoints, and forwards the rollups to InfluxDB.
//
// This package holds the commands and wires the stages together; the work
// is done by the packages mqtt, batcher, window, store and uplink.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes, as the contract gives them.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// usageError marks an error as bad usage or bad config: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(execute(ctx, os.Args[1:]))
}

// execute runs the command line args and returns the exit code.
func execute(ctx context.Context, args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "edgegw:", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return exitUsage
	}
	return exitRuntime
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "edgegw",
		Short:         "IoT edge gateway: MQTT sensor readings to windowed rollups in InfluxDB",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	root.AddCommand(newRunCmd(), newDemoCmd(), newSimulateCmd(), newConfigCmd(), newStateCmd(), newVersionCmd())
	return root
}

// isCobraUsage reports errors cobra returns for unknown commands and wrong
// argument counts.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "unknown flag", "unknown shorthand"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
