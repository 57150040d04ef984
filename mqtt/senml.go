package mqtt

import "fmt"

// newSenMLDecoder returns the decoder of format senml.
func newSenMLDecoder(sub Subscription, arrivalTime bool) (decoder, error) {
	return nil, fmt.Errorf("format senml is not supported yet")
}
