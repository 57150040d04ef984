package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"go.etcd.io/bbolt"
)

// startBroker starts the built-in MQTT broker on listen (host:port) and
// returns the address it listens on and a function that stops it. With
// dbPath non-empty, the broker keeps sessions and queued messages in that
// file, so a persistent session survives a restart of the process.
func startBroker(listen, dbPath string, logger *slog.Logger) (string, func(), error) {
	srv := mochi.New(&mochi.Options{InlineClient: false, Logger: logger})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return "", nil, fmt.Errorf("start built-in broker: %w", err)
	}
	if dbPath != "" {
		if err := os.MkdirAll(filepath.Dir(dbPath), 0o750); err != nil {
			return "", nil, fmt.Errorf("start built-in broker: %w", err)
		}
		err := srv.AddHook(new(bolt.Hook), &bolt.Options{Path: dbPath, Options: &bbolt.Options{Timeout: 100 * time.Millisecond}})
		if err != nil {
			return "", nil, fmt.Errorf("open built-in broker's store %s: %w", dbPath, err)
		}
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: listen})
	if err := srv.AddListener(tcp); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return "", nil, usageError{fmt.Errorf("listen on %s: address in use (another MQTT broker?); choose another host:port: %w", listen, errAddrInUse)}
		}
		return "", nil, fmt.Errorf("built-in broker listen on %s: %w", listen, err)
	}
	if err := srv.Serve(); err != nil {
		return "", nil, fmt.Errorf("start built-in broker: %w", err)
	}
	logger.Info("built-in MQTT broker listening", "addr", tcp.Address())
	return tcp.Address(), func() { srv.Close() }, nil
}

// errAddrInUse marks a listen address that another process holds.
var errAddrInUse = errors.New("address in use")
