package testenv

import (
	"net"
	"testing"
)

func TestServersStart(t *testing.T) {
	b := Mosquitto(t, MosquittoOptions{})
	c, err := net.Dial("tcp", b.URL()[len("tcp://"):])
	if err != nil {
		t.Fatalf("dial broker: %v", err)
	}
	c.Close()
	b.Stop()
	b.Start()

	db := Influx(t)
	db.CreateDatabase(t, "edge")
	rows := db.Query(t, "edge", "SHOW MEASUREMENTS")
	if len(rows) != 0 {
		t.Errorf("SHOW MEASUREMENTS on a new database = %v, want none", rows)
	}
}
