package mirror

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/replicator/engine"
	"github.com/vigil-ha/vigil/replicator/wire"
)

// writeCerts makes a cluster CA and one node certificate signed by it in
// dir, and returns their files.
func writeCerts(t *testing.T, dir string) wire.TLSFiles {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	now := time.Now()
	caKey := key()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vigil test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	nodeKey := key()
	node := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	nodeDER, err := x509.CreateCertificate(rand.Reader, node, caCert, &nodeKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	return wire.TLSFiles{
		CA:   write("ca.pem", "CERTIFICATE", caDER),
		Cert: write("node.pem", "CERTIFICATE", nodeDER),
		Key:  write("node.key", "PRIVATE KEY", keyDER),
	}
}

// TestTLSAndCompression: with TLS and compression on at both nodes, the
// pair connects inside TLS and replicates; a node without TLS is refused.
func TestTLSAndCompression(t *testing.T) {
	files := writeCerts(t, t.TempDir())
	client, server, err := wire.LoadTLS(files)
	if err != nil {
		t.Fatal(err)
	}
	secure := func(c *Config) {
		c.TLS = &TLSConfigs{Client: client, Server: server}
		c.Compress = true
	}
	port := freePort(t)
	a := startWith(t, t.TempDir(), 0, port, secure)
	b := startWith(t, t.TempDir(), 1, port, secure)
	defer b.stop(t)
	waitState(t, a, engine.Connected)
	if err := a.d.Promote(context.Background(), false, false); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, engine.Connected)
	text := bytes.Repeat([]byte("vigil mirror compresses text-like data "), 4096)[:128<<10]
	if err := a.front.dev.WriteAt(text, 2<<20, true); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(b.dir, "data"), 2<<20, len(text)); !bytes.Equal(got, text) {
		t.Fatal("the write did not reach b through TLS")
	}
	a.stop(t)

	// A node without TLS never connects to one with it.
	plain := startWith(t, t.TempDir(), 0, port, func(c *Config) { c.Compress = true })
	defer plain.stop(t)
	deadline := time.Now().Add(30 * time.Second)
	for plain.d.Status().ConnectError == "" || b.d.Status().ConnectError == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no refused attempt seen: plain %q, b %q", plain.d.Status().ConnectError, b.d.Status().ConnectError)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if plain.d.Status().Engine.State == engine.Connected || b.d.Status().Engine.State == engine.Connected {
		t.Fatal("a node without TLS connected to one with TLS")
	}
}
