package engine

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/replicator/meta"
	"github.com/vigil-ha/vigil/replicator/wire"
)

// TestCompressed: with compression offered on both sides, replication,
// resync and verify work and move fewer bytes for compressible data.
func TestCompressed(t *testing.T) {
	gens := meta.Generations{Current: 0xabc}
	on := func(c *Config) { c.Compress = true }
	p := newNodeCfg(t, Primary, 1, gens, on)
	s := newNodeCfg(t, Secondary, 2, gens, on)
	mustConnect(t, p, s)
	ctx := context.Background()
	rng := mrand.New(mrand.NewPCG(171, 172))
	text := []byte("the quick brown fox jumps over the lazy dog; ")
	for i := range 40 {
		b := make([]byte, 64<<10)
		if i%2 == 0 {
			for k := 0; k < len(b); k += len(text) {
				copy(b[k:], text)
			}
		} else {
			copy(b, block(rng, uint64(i), 4096))
		}
		if err := p.e.Write(ctx, uint64(rng.IntN(volSize/len(b)))*uint64(len(b)), b, false); err != nil {
			t.Fatal(err)
		}
	}
	s.e.Disconnect()
	for i := range 8 {
		if err := p.e.Write(ctx, uint64(i)*2*gran, block(rng, uint64(100+i), 4096), false); err != nil {
			t.Fatal(err)
		}
	}
	mustConnect(t, p, s)
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, p.path, s.path)
	if res, err := p.e.Verify(ctx, VerifyOptions{}); err != nil || res.Mismatched != 0 {
		t.Fatalf("verify: %+v %v", res, err)
	}
}

// TestTLS: an engine connection inside mutually authenticated TLS 1.3
// (the daemon's TLS handshake first), and a peer without TLS refused.
func TestTLS(t *testing.T) {
	ca := newTestCA(t)
	clientCfg, _ := ca.load(t, "node1")
	_, serverCfg := ca.load(t, "node2")
	p, s := pair(t) // then reconnected over TLS
	ctx := context.Background()
	connectTLS := func(tlsServer, tlsClient bool) (perr, serr error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		done := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				done <- err
				return
			}
			if tlsServer {
				tc := tls.Server(c, serverCfg)
				if err := tc.HandshakeContext(ctx); err != nil {
					c.Close()
					done <- err
					return
				}
				c = tc
			}
			done <- s.e.Connect(ctx, c, false)
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if tlsClient {
			tc := tls.Client(c, clientCfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				t.Fatal(err)
			}
			c = tc
		}
		return p.e.Connect(ctx, c, true), <-done
	}
	if perr, serr := connectTLS(true, true); perr != nil || serr != nil {
		t.Fatalf("connect over TLS: %v / %v", perr, serr)
	}
	rng := mrand.New(mrand.NewPCG(181, 182))
	for i := range 20 {
		if err := p.e.Write(ctx, uint64(i)*4096, block(rng, uint64(i), 4096), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, p.path, s.path)
	if st := p.e.Status(); st.State != Connected || st.ReplicatedBytes != 20*4096 {
		t.Fatalf("over TLS: %+v", st)
	}
	// Without TLS on either side, the same engines connect too.
	if perr, serr := connectTLS(false, false); perr != nil || serr != nil {
		t.Fatalf("plain reconnect: %v / %v", perr, serr)
	}
	waitState(t, Connected, p, s)
	perr, serr := connectMixed(t, p, s, clientCfg, serverCfg)
	if perr == nil || serr == nil {
		t.Fatalf("TLS on one side only accepted: %v / %v", perr, serr)
	}
	t.Logf("TLS on one side only: dialler %v; listener %v", perr, serr)
	if !errors.Is(perr, wire.ErrTLSMismatch) || !errors.Is(serr, wire.ErrTLSMismatch) {
		t.Fatalf("mismatch not reported: %v / %v", perr, serr)
	}
}

// connectMixed runs the engine handshake inside TLS on the dialler but
// bare on the listener, through a relay that terminates the dialler's TLS:
// the engines must notice that one runs in TLS and the other does not.
func connectMixed(t *testing.T, p, s *node, clientCfg, serverCfg *tls.Config) (perr, serr error) {
	t.Helper()
	ctx := context.Background()
	lnRelay, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lnRelay.Close()
	a, b := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- s.e.Connect(ctx, b, false) }()
	relayed := make(chan struct{})
	go func() {
		defer close(relayed)
		c, err := lnRelay.Accept()
		if err != nil {
			return
		}
		tc := tls.Server(c, serverCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			a.Close()
			return
		}
		go func() { _, _ = copyClose(a, tc) }()
		_, _ = copyClose(tc, a)
	}()
	c, err := net.Dial("tcp", lnRelay.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, clientCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	perr = p.e.Connect(ctx, tc, true)
	serr = <-done
	a.Close()
	<-relayed
	return perr, serr
}

func copyClose(dst, src net.Conn) (int64, error) {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				src.Close()
				return n, werr
			}
			n += int64(k)
		}
		if err != nil {
			dst.Close()
			return n, err
		}
	}
}

// testCA issues the cluster CA and node certificates of TestTLS.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test cluster CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, dir: t.TempDir()}
}

// load issues a node certificate and loads it with wire.LoadTLS.
func (ca *testCA) load(t *testing.T, name string) (client, server *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(file string, typ string, b []byte) string {
		path := filepath.Join(ca.dir, name+"-"+file)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	client, server, err = wire.LoadTLS(wire.TLSFiles{
		Cert: write("cert.pem", "CERTIFICATE", der),
		Key:  write("key.pem", "PRIVATE KEY", kder),
		CA:   write("ca.pem", "CERTIFICATE", ca.cert.Raw),
	})
	if err != nil {
		t.Fatal(err)
	}
	return client, server
}
