package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/edgegw/edgegw/config"
	"github.com/edgegw/edgegw/mqtt"
	"github.com/spf13/cobra"
)

// configPath returns the --config flag, or EDGEGW_CONFIG when the flag is
// not given.
func configPath(cmd *cobra.Command) (string, error) {
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		path = os.Getenv("EDGEGW_CONFIG")
	}
	if path == "" {
		return "", usageError{errors.New("no config file: give -c FILE (--config) or set EDGEGW_CONFIG; `edgegw config example` prints one")}
	}
	return path, nil
}

// loadConfig loads the config named by the command's flags; a bad config is
// a usage error (exit 2).
func loadConfig(cmd *cobra.Command) (*config.Config, error) {
	path, err := configPath(cmd)
	if err != nil {
		return nil, err
	}
	cfg, err := config.LoadFile(path)
	if err != nil {
		return nil, usageError{err}
	}
	if err := checkSubscriptions(cfg); err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

// checkSubscriptions checks what only the decoders know of
// mqtt.subscriptions (paths, templates that can never match), naming each
// problem by its key.
func checkSubscriptions(cfg *config.Config) error {
	err := mqtt.CheckSubscriptions(mqttOptions(cfg).Subscriptions, cfg.Window.Time == "arrival")
	if err == nil {
		return nil
	}
	var errs []error
	for _, e := range unjoin(err) {
		var se *mqtt.SubscriptionError
		if errors.As(e, &se) {
			e = &config.Error{Key: fmt.Sprintf("mqtt.subscriptions[%d]", se.Index), Problem: se.Err.Error()}
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// unjoin returns the errors joined in err by errors.Join, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func addConfigFlag(cmd *cobra.Command) {
	cmd.Flags().StringP("config", "c", "", "config file (YAML); default $EDGEGW_CONFIG")
}

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check a config or print an example",
	}
	check := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Validate a config and print the effective config, secrets redacted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			out, err := cfg.Redacted()
			if err != nil {
				return fmt.Errorf("print effective config: %w", err)
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	addConfigFlag(check)
	example := &cobra.Command{
		Use:   "example",
		Short: "Print a complete, commented example config",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := cmd.OutOrStdout().Write(config.Example)
			return err
		},
	}
	cmd.AddCommand(check, example)
	return cmd
}
