//go:build tools

package edgegw

import (
	_ "github.com/DataDog/sketches-go/ddsketch"
	_ "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/influxdata/line-protocol/v2/lineprotocol"
	_ "github.com/mochi-mqtt/server/v2"
	_ "github.com/mochi-mqtt/server/v2/hooks/auth"
	_ "github.com/mochi-mqtt/server/v2/listeners"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/collectors"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "github.com/spf13/cobra"
	_ "github.com/spf13/viper"
	_ "go.etcd.io/bbolt"
	_ "go.uber.org/goleak"
	_ "golang.org/x/sync/errgroup"
	_ "go.yaml.in/yaml/v3"
	_ "github.com/go-viper/mapstructure/v2"
)
