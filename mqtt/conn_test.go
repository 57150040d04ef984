package mqtt

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the writes that reach the network.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client *countingConn, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); server.Close() })
	return &countingConn{Conn: c}, server
}

// readAll reads from c until it has n bytes or d passes.
func readN(t *testing.T, c net.Conn, n int, d time.Duration) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, n)
	got, err := io.ReadFull(c, buf)
	if err != nil {
		t.Fatalf("read %d bytes within %s: got %d: %v", n, d, got, err)
	}
	return buf
}

func TestBufConnCoalescesWrites(t *testing.T) {
	raw, peer := tcpPair(t)
	c := newBufConn(raw, writeDelay)
	defer c.Close()
	var want []byte
	for i := range 100 {
		p := []byte{0x40, 0x02, 0x00, byte(i)} // a PUBACK
		want = append(want, p...)
		if n, err := c.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	got := readN(t, peer, len(want), 5*time.Second)
	if !bytes.Equal(got, want) {
		t.Fatalf("peer read %x; want %x", got, want)
	}
	if n := raw.writes.Load(); n > 10 {
		t.Errorf("100 small writes made %d network writes; want them coalesced into a few", n)
	}
}

func TestBufConnWritesWithinDelay(t *testing.T) {
	raw, peer := tcpPair(t)
	c := newBufConn(raw, writeDelay)
	defer c.Close()
	start := time.Now()
	c.Write([]byte("ack"))
	readN(t, peer, 3, 5*time.Second)
	// 1 ms of delay; the rest is slack for a loaded machine.
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("a held write reached the peer after %s; want about %s", d, writeDelay)
	}
}

// A connection whose timer never fires still writes once 16 KiB wait, and
// writes the rest on Close.
func TestBufConnFlushesWhenFullAndOnClose(t *testing.T) {
	raw, peer := tcpPair(t)
	c := newBufConn(raw, time.Hour)
	small := []byte("held until close")
	c.Write(small)
	if n := raw.writes.Load(); n != 0 {
		t.Fatalf("a small write reached the network at once (%d writes); want it held", n)
	}
	big := bytes.Repeat([]byte{'x'}, writeBufferSize)
	c.Write(big)
	got := readN(t, peer, writeBufferSize, 5*time.Second)
	if !bytes.Equal(got[:len(small)], small) {
		t.Fatalf("peer read %q first; want %q", got[:len(small)], small)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	rest, err := io.ReadAll(peer)
	if err != nil || len(rest) != len(small) {
		t.Errorf("after Close the peer read %d more bytes, %v; want the %d still held, then EOF", len(rest), err, len(small))
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close = %v; want net.ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
}

// Close returns even while a flush is blocked on a peer that stopped
// reading, and the blocked write fails.
func TestBufConnCloseEndsBlockedFlush(t *testing.T) {
	raw, _ := tcpPair(t) // the peer never reads
	c := newBufConn(raw, writeDelay)
	writeErr := make(chan error, 1)
	go func() {
		chunk := make([]byte, 1<<20)
		for {
			if _, err := c.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // the socket buffers fill and the writer blocks
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > closeFlushTimeout+2*time.Second {
		t.Errorf("Close took %s behind a blocked write; want at most about %s", d, closeFlushTimeout)
	}
	select {
	case err := <-writeErr:
		if err == nil {
			t.Error("blocked Write returned nil after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked Write did not return after Close")
	}
}

func TestBufConnReads(t *testing.T) {
	raw, peer := tcpPair(t)
	c := newBufConn(raw, writeDelay)
	defer c.Close()
	peer.Write([]byte("connack"))
	got := readN(t, c, 7, 5*time.Second)
	if string(got) != "connack" {
		t.Errorf("Read %q; want connack", got)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T, dir string) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// TestOpenConnTLS dials a TLS server that requires a client certificate,
// trusting it through ca_file, and exchanges bytes both ways.
func TestOpenConnTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := writeCert(t, dir)
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	echoed := make(chan error, 1)
	go func() {
		s, err := l.Accept()
		if err != nil {
			echoed <- err
			return
		}
		defer s.Close()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(s, buf); err != nil {
			echoed <- err
			return
		}
		_, err = s.Write(buf)
		echoed <- err
		// Answer the handshake of the second, untrusting, client.
		if s2, err := l.Accept(); err == nil {
			s2.(*tls.Conn).Handshake()
			s2.Close()
		}
	}()

	cfg, err := loadTLS(TLSOptions{CAFile: certFile, CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatalf("loadTLS: %v", err)
	}
	u, _ := url.Parse("ssl://" + l.Addr().String())
	c, err := openConn(context.Background(), u, cfg, 5*time.Second, nil, nil)
	if err != nil {
		t.Fatalf("openConn(%s): %v", u, err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	if got := readN(t, c, 5, 5*time.Second); string(got) != "hello" {
		t.Errorf("read %q back; want hello", got)
	}
	if err := <-echoed; err != nil {
		t.Errorf("server: %v", err)
	}

	// Without the CA the broker's certificate is refused.
	u2, _ := url.Parse("ssl://" + l.Addr().String())
	c2, err := openConn(context.Background(), u2, &tls.Config{}, 5*time.Second, nil, nil)
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Errorf("openConn without ca_file = %v; want a certificate verification error", err)
	}
	if c2 != nil {
		c2.Close()
	}
}

func TestOpenConnEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	u, _ := url.Parse("tcp://127.0.0.1:1")
	if c, err := openConn(ctx, u, nil, 5*time.Second, nil, nil); err == nil {
		c.Close()
		t.Errorf("openConn with a cancelled context succeeded")
	}
}

func TestLoadTLSErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	if _, err := loadTLS(TLSOptions{CAFile: notPEM}); err == nil || !bytes.Contains([]byte(err.Error()), []byte("no PEM certificate")) {
		t.Errorf("loadTLS(bad ca_file) = %v; want an error saying no PEM certificate", err)
	}
	if cfg, err := loadTLS(TLSOptions{}); cfg != nil || err != nil {
		t.Errorf("loadTLS(zero) = %v, %v; want nil, nil", cfg, err)
	}
	if cfg, err := loadTLS(TLSOptions{InsecureSkipVerify: true}); err != nil || !cfg.InsecureSkipVerify {
		t.Errorf("loadTLS(insecure) = %v, %v; want InsecureSkipVerify", cfg, err)
	}
}
