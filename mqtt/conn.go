package mqtt

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

const (
	// readBufferSize is the size of a connection's read buffer.
	readBufferSize = 64 << 10
	// writeBufferSize is the most a connection holds before it writes.
	writeBufferSize = 16 << 10
	// writeDelay is the longest a connection holds a write.
	writeDelay = time.Millisecond
	// closeFlushTimeout bounds the last flush of a closing connection.
	closeFlushTimeout = time.Second
)

// bufConn is a network connection that buffers reads and coalesces writes:
// a write is held at most delay (or until writeBufferSize bytes wait, or
// until Close) so that the PUBACKs of a burst leave in one syscall instead
// of one each. Holding an acknowledgement delays it; it never sends one early.
//
// Read may be called concurrently with Write and Close; Write and Close are
// safe for concurrent use.
type bufConn struct {
	net.Conn
	r     *bufio.Reader
	delay time.Duration

	mu     sync.Mutex
	w      *bufio.Writer
	timer  *time.Timer // flushes what Write left in w
	armed  bool        // timer is pending
	closed bool
	err    error // the first write error; every later Write returns it
}

func newBufConn(c net.Conn, delay time.Duration) *bufConn {
	bc := &bufConn{
		Conn:  c,
		r:     bufio.NewReaderSize(c, readBufferSize),
		w:     bufio.NewWriterSize(c, writeBufferSize),
		delay: delay,
	}
	bc.timer = time.AfterFunc(time.Hour, bc.flushLater)
	bc.timer.Stop()
	return bc
}

// Read reads through a 64 KiB buffer.
func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Write buffers p; it is written within delay, at once when the buffer
// fills, or on Close.
func (c *bufConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	if err != nil {
		c.err = err
		return n, err
	}
	if c.w.Buffered() > 0 && !c.armed {
		c.armed = true
		c.timer.Reset(c.delay)
	}
	return n, nil
}

func (c *bufConn) flushLater() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = false
	if c.closed || c.err != nil {
		return
	}
	if err := c.w.Flush(); err != nil {
		c.err = err
	}
}

// Close writes what is buffered, waiting at most closeFlushTimeout for a
// peer that stopped reading, and closes the connection. Later calls return
// nil.
func (c *bufConn) Close() error {
	// A flush already blocked on a peer that stopped reading holds mu; the
	// deadline ends it.
	_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.timer.Stop()
	var flushErr error
	if c.err == nil {
		flushErr = c.w.Flush()
	}
	c.mu.Unlock()
	if err := c.Conn.Close(); err != nil {
		return err
	}
	if flushErr != nil {
		return fmt.Errorf("flush on close: %w", flushErr)
	}
	return nil
}

// openConn opens the network connection to a broker: buffered for tcp and
// TLS, paho's own for websockets. The dial and the TLS handshake end when
// ctx is done.
func openConn(ctx context.Context, u *url.URL, tlsConfig *tls.Config, timeout time.Duration, headers http.Header, ws *paho.WebsocketOptions) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	switch u.Scheme {
	case "tcp", "mqtt":
		nc, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return nil, err
		}
		return newBufConn(nc, writeDelay), nil
	case "ssl", "tls", "mqtts":
		nc, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return nil, err
		}
		cfg := &tls.Config{}
		if tlsConfig != nil {
			cfg = tlsConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		tc := tls.Client(nc, cfg)
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err = tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", u.Host, err)
		}
		return newBufConn(tc, writeDelay), nil
	case "ws", "wss":
		du := *u
		du.User = nil
		return paho.NewWebsocket(du.String(), tlsConfig, timeout, headers, ws)
	}
	return nil, fmt.Errorf("broker scheme %q is not supported", u.Scheme)
}

// loadTLS builds the TLS configuration of o; nil when o asks for nothing.
func loadTLS(o TLSOptions) (*tls.Config, error) {
	if o == (TLSOptions{}) {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read tls ca_file %s: no PEM certificate in it; expected a file of -----BEGIN CERTIFICATE----- blocks", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load tls cert_file %s and key_file %s: %w", o.CertFile, o.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case o.CertFile != "" || o.KeyFile != "":
		return nil, fmt.Errorf("tls cert_file and key_file must be set together (cert_file %q, key_file %q)", o.CertFile, o.KeyFile)
	}
	return cfg, nil
}
