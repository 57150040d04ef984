package mqtt

import "fmt"

// newInfluxDecoder returns the decoder of format influx.
func newInfluxDecoder(sub Subscription, arrivalTime bool) (decoder, error) {
	return nil, fmt.Errorf("format influx is not supported yet")
}
