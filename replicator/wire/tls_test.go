package wire

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testCA is a certificate authority a test makes for itself.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// serial numbers the test certificates.
var serial atomic.Int64

func nextSerial() *big.Int { return big.NewInt(serial.Add(1)) }

func newKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newCA makes a self-signed CA certificate.
func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// leafOpts varies a node certificate.
type leafOpts struct {
	key       crypto.Signer // nil: a fresh P-256 key
	usages    []x509.ExtKeyUsage
	notAfter  time.Time
	notBefore time.Time
}

// issue makes a node certificate signed by ca and returns it with its key.
func (ca *testCA) issue(t *testing.T, name string, o leafOpts) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key := o.key
	if key == nil {
		key = newKey(t)
	}
	if o.usages == nil {
		o.usages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(24 * time.Hour)
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  o.usages,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// nodeFiles writes a node certificate of ca, its key and ca's certificate
// to files and returns their names.
func nodeFiles(t *testing.T, ca *testCA, name string) TLSFiles {
	t.Helper()
	dir := t.TempDir()
	cert, key := ca.issue(t, name, leafOpts{})
	return TLSFiles{
		Cert: writeFile(t, dir, "node.pem", certPEM(cert)),
		Key:  writeFile(t, dir, "node.key", keyPEM(t, key)),
		CA:   writeFile(t, dir, "ca.pem", certPEM(ca.cert)),
	}
}

func mustLoad(t *testing.T, f TLSFiles) (client, server *tls.Config) {
	t.Helper()
	c, s, err := LoadTLS(f)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

// recordConn keeps every byte written through a net.Conn.
type recordConn struct {
	net.Conn
	mu   sync.Mutex
	sent bytes.Buffer
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.sent.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// tcpPair returns both ends of a loopback TCP connection, the dialler's
// first. The deadline only keeps a broken test from hanging.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	dl := time.Now().Add(2 * time.Minute)
	_ = client.SetDeadline(dl)
	_ = server.SetDeadline(dl)
	return client, server
}

// tlsPair runs a TLS handshake over a and b (a dials) and returns the TLS
// connections and each side's handshake error.
func tlsPair(a, b net.Conn, ccfg, scfg *tls.Config) (tc, ts *tls.Conn, cerr, serr error) {
	tc, ts = tls.Client(a, ccfg), tls.Server(b, scfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		serr = ts.Handshake()
		if serr != nil {
			b.Close()
		}
	}()
	cerr = tc.Handshake()
	if cerr != nil {
		a.Close()
	}
	<-done
	return tc, ts, cerr, serr
}

// wireHandshake runs the mirror handshake over a (client) and b (server)
// with the given configurations.
func wireHandshake(a, b net.Conn, ccfg, scfg Config) (c, s *side) {
	c = &side{r: NewReader(a, nil), w: NewWriter(a)}
	s = &side{r: NewReader(b, nil), w: NewWriter(b)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.res, s.err = Server(s.r, s.w, scfg)
		if s.err != nil {
			b.Close()
		}
	}()
	c.res, c.err = Client(c.r, c.w, ccfg)
	if c.err != nil {
		a.Close()
	}
	<-done
	return c, s
}

// TestTLSMirrorConnect runs the whole mirror connect over loopback TCP in
// mutually authenticated TLS 1.3 with certificates of a test CA: the TLS
// handshake, the cluster-key handshake inside it (TLS and compression
// negotiated), and data frames both ways. Nothing of the mirror protocol
// shows on the TCP stream.
func TestTLSMirrorConnect(t *testing.T) {
	ca := newCA(t, "cluster ca")
	c1, _ := mustLoad(t, nodeFiles(t, ca, "node1"))
	_, s2 := mustLoad(t, nodeFiles(t, ca, "node2"))
	a, b := tcpPair(t)
	rec := &recordConn{Conn: a}
	tc, ts, cerr, serr := tlsPair(rec, b, c1, s2)
	if cerr != nil || serr != nil {
		t.Fatalf("tls: client %v, server %v", cerr, serr)
	}
	if st := tc.ConnectionState(); st.Version != tls.VersionTLS13 || st.PeerCertificates[0].Subject.CommonName != "node2" {
		t.Fatalf("client sees %s, peer %s", tls.VersionName(st.Version), st.PeerCertificates[0].Subject)
	}
	if st := ts.ConnectionState(); len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "node1" {
		t.Fatal("server did not authenticate the client")
	}
	key := []byte("cluster secret")
	c, s := wireHandshake(tc, ts,
		Config{ClusterKey: key, Local: testHello(1), Compress: true, TLS: TLSState(tc)},
		Config{ClusterKey: key, Local: testHello(2), Compress: true, TLS: TLSState(ts)})
	if c.err != nil || s.err != nil {
		t.Fatalf("mirror handshake: client %v, server %v", c.err, s.err)
	}
	if want := CapTLS | CapCompress; c.res.Caps != want || s.res.Caps != want {
		t.Fatalf("caps %x / %x, want %x", c.res.Caps, s.res.Caps, want)
	}
	text, random := dataKind("text", 256<<10), dataKind("random", 64<<10)
	for _, dir := range [][2]*side{{c, s}, {s, c}} {
		if f := sendData(t, dir[0], dir[1], TypeWrite, text); f.Flags&FlagCompressed == 0 {
			t.Fatal("text not compressed")
		}
		if f := sendData(t, dir[0], dir[1], TypeResyncData, random); f.Flags&FlagCompressed != 0 {
			t.Fatal("random data compressed")
		}
	}
	rec.mu.Lock()
	sent := rec.sent.Bytes()
	leak := bytes.Contains(sent, []byte(Magic)) || bytes.Contains(sent, random[:64])
	rec.mu.Unlock()
	if leak {
		t.Fatal("mirror frames visible on the TCP stream")
	}
}

// TestTLSWrongCA presents certificates of another CA, on either side: the
// TLS handshake fails before any mirror byte is exchanged.
func TestTLSWrongCA(t *testing.T) {
	ca, other := newCA(t, "cluster ca"), newCA(t, "other ca")
	good := nodeFiles(t, ca, "node1")
	bad := nodeFiles(t, other, "intruder")
	gc, gs := mustLoad(t, good)
	bc, bs := mustLoad(t, bad)
	for _, c := range []struct {
		name     string
		ccfg     *tls.Config
		scfg     *tls.Config
		refuser  string
		contains string
	}{
		{"client of another CA", bc, gs, "server", "certificate"},
		{"server of another CA", gc, bs, "client", "unknown authority"},
	} {
		a, b := tcpPair(t)
		tc, _, cerr, serr := tlsPair(a, b, c.ccfg, c.scfg)
		if cerr == nil {
			// In TLS 1.3 the client finishes its handshake before the
			// server has checked the client's certificate: the refusal
			// arrives as an alert on the first read.
			_, cerr = tc.Read(make([]byte, 1))
		}
		if cerr == nil || serr == nil {
			t.Fatalf("%s: client %v, server %v; want both to fail", c.name, cerr, serr)
		}
		refusal := map[string]error{"client": cerr, "server": serr}[c.refuser]
		if !strings.Contains(refusal.Error(), c.contains) {
			t.Errorf("%s: %s says %v, want it to mention %q", c.name, c.refuser, refusal, c.contains)
		}
	}
}

// TestTLSRequiresTLS13 offers only TLS 1.2, and no client certificate:
// both refused.
func TestTLSRequiresTLS13(t *testing.T) {
	ca := newCA(t, "cluster ca")
	cc, sc := mustLoad(t, nodeFiles(t, ca, "node1"))
	old := cc.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	a, b := tcpPair(t)
	if _, _, cerr, serr := tlsPair(a, b, old, sc); cerr == nil || serr == nil {
		t.Fatalf("TLS 1.2: client %v, server %v", cerr, serr)
	}
	anon := cc.Clone()
	anon.Certificates = nil
	a, b = tcpPair(t)
	if _, _, _, serr := tlsPair(a, b, anon, sc); serr == nil || !strings.Contains(serr.Error(), "certificate") {
		t.Fatalf("client without certificate: server %v", serr)
	}
	// A TLS 1.2 state handed to the handshake is refused before it sends.
	st := &tls.ConnectionState{Version: tls.VersionTLS12, HandshakeComplete: true, PeerCertificates: []*x509.Certificate{ca.cert}}
	if _, err := Client(NewReader(nil, nil), NewWriter(io.Discard), Config{ClusterKey: []byte("k"), Local: testHello(1), TLS: st}); err == nil || !strings.Contains(err.Error(), "TLS 1.3") {
		t.Fatalf("TLS 1.2 state: %v", err)
	}
	st = &tls.ConnectionState{Version: tls.VersionTLS13}
	if _, err := Server(NewReader(nil, nil), NewWriter(io.Discard), Config{ClusterKey: []byte("k"), Local: testHello(1), TLS: st}); err == nil {
		t.Fatal("incomplete TLS state accepted")
	}
	h := testHello(1)
	h.Caps = CapTLS
	if _, err := Client(NewReader(nil, nil), NewWriter(io.Discard), Config{ClusterKey: []byte("k"), Local: h}); err == nil {
		t.Fatal("CapTLS without a TLS connection accepted")
	}
}

// TestTLSDowngradeRefused runs the mirror handshake inside TLS with one
// side not configured for it, each way round: both sides refuse, and each
// error says which side has TLS off.
func TestTLSDowngradeRefused(t *testing.T) {
	ca := newCA(t, "cluster ca")
	cc, _ := mustLoad(t, nodeFiles(t, ca, "node1"))
	_, sc := mustLoad(t, nodeFiles(t, ca, "node2"))
	key := []byte("k")
	for _, c := range []struct {
		name               string
		clientTLS          bool
		clientErr, servErr string
	}{
		{"client without TLS", false,
			"this node (1) has TLS off, the peer has it on",
			"this node (2) has TLS on, peer node 1 has it off"},
		{"server without TLS", true,
			"this node (1) has TLS on, the peer has it off",
			"this node (2) has TLS off, peer node 1 has it on"},
	} {
		a, b := tcpPair(t)
		tc, ts, cerr, serr := tlsPair(a, b, cc, sc)
		if cerr != nil || serr != nil {
			t.Fatalf("tls: %v %v", cerr, serr)
		}
		ccfg := Config{ClusterKey: key, Local: testHello(1)}
		scfg := Config{ClusterKey: key, Local: testHello(2)}
		if c.clientTLS {
			ccfg.TLS = TLSState(tc)
		} else {
			scfg.TLS = TLSState(ts)
		}
		cl, sv := wireHandshake(tc, ts, ccfg, scfg)
		if !errors.Is(cl.err, ErrTLSMismatch) || !strings.Contains(cl.err.Error(), c.clientErr) {
			t.Errorf("%s: client: %v, want ErrTLSMismatch saying %q", c.name, cl.err, c.clientErr)
		}
		if !errors.Is(sv.err, ErrTLSMismatch) || !strings.Contains(sv.err.Error(), c.servErr) {
			t.Errorf("%s: server: %v, want ErrTLSMismatch saying %q", c.name, sv.err, c.servErr)
		}
		if cl.r.Authenticated() || sv.r.Authenticated() {
			t.Errorf("%s: a side went on", c.name)
		}
	}
}

// TestTLSClientRefusesServerWithoutTLS plays a server that answers a TLS
// client's Hello with a HelloAck lacking CapTLS (as one that does not
// check would): the client refuses it before looking at the proof.
func TestTLSClientRefusesServerWithoutTLS(t *testing.T) {
	ca := newCA(t, "cluster ca")
	cc, sc := mustLoad(t, nodeFiles(t, ca, "node1"))
	a, b := tcpPair(t)
	tc, ts, cerr, serr := tlsPair(a, b, cc, sc)
	if cerr != nil || serr != nil {
		t.Fatalf("tls: %v %v", cerr, serr)
	}
	go func() {
		r, w := NewReader(ts, nil), NewWriter(ts)
		if _, err := r.ReadFrame(); err != nil {
			return
		}
		h := testHello(2)
		h.Nonce[0] = 9
		_, _ = w.WriteFrame(TypeHelloAck, append(h.Put(make([]byte, HelloSize)), make([]byte, ProofSize)...), nil)
		_ = w.Flush()
		_, _ = r.ReadFrame() // the client's Error
	}()
	_, err := Client(NewReader(tc, nil), NewWriter(tc), Config{ClusterKey: []byte("k"), Local: testHello(1), TLS: TLSState(tc)})
	if !errors.Is(err, ErrTLSMismatch) || !strings.Contains(err.Error(), "this node (1) has TLS on, peer node 2 has it off") {
		t.Fatalf("%v, want ErrTLSMismatch", err)
	}
}

// TestTLSRelayRefused puts a relay between the nodes that holds a valid
// certificate of the cluster CA (a stolen one): it terminates each node's
// TLS connection and copies the bytes between them. The cluster-key
// handshake inside is bound to each TLS connection, so the proofs do not
// verify across the relay. Without TLS on either node the same relay goes
// through, which shows the binding is what stops it.
func TestTLSRelayRefused(t *testing.T) {
	ca := newCA(t, "cluster ca")
	cc, _ := mustLoad(t, nodeFiles(t, ca, "node1"))
	_, sc := mustLoad(t, nodeFiles(t, ca, "node2"))
	mc, ms := mustLoad(t, nodeFiles(t, ca, "relay"))
	key := []byte("k")
	for _, bind := range []bool{true, false} {
		// node1 -> relay (as server), relay (as client) -> node2.
		a1, b1 := tcpPair(t)
		a2, b2 := tcpPair(t)
		n1, rs, cerr, serr := tlsPair(a1, b1, cc, ms)
		if cerr != nil || serr != nil {
			t.Fatalf("tls to relay: %v %v", cerr, serr)
		}
		rc, n2, cerr, serr := tlsPair(a2, b2, mc, sc)
		if cerr != nil || serr != nil {
			t.Fatalf("tls from relay: %v %v", cerr, serr)
		}
		var wg sync.WaitGroup
		for _, p := range [][2]net.Conn{{rs, rc}, {rc, rs}} {
			wg.Go(func() {
				_, _ = io.Copy(p[1], p[0])
				p[1].Close()
			})
		}
		ccfg := Config{ClusterKey: key, Local: testHello(1)}
		scfg := Config{ClusterKey: key, Local: testHello(2)}
		if bind {
			ccfg.TLS, scfg.TLS = TLSState(n1), TLSState(n2)
		}
		c, s := wireHandshake(n1, n2, ccfg, scfg)
		n1.Close()
		n2.Close()
		wg.Wait()
		if !bind {
			if c.err != nil || s.err != nil {
				t.Fatalf("relay without TLS binding: client %v, server %v", c.err, s.err)
			}
			continue
		}
		if !errors.Is(c.err, ErrAuth) {
			t.Fatalf("client across the relay: %v, want ErrAuth", c.err)
		}
		if s.err == nil {
			t.Fatal("server accepted a client across the relay")
		}
	}
}

func TestLoadTLSErrors(t *testing.T) {
	ca, other := newCA(t, "cluster ca"), newCA(t, "other ca")
	dir := t.TempDir()
	cert, key := ca.issue(t, "node1", leafOpts{})
	_, otherKey := ca.issue(t, "node2", leafOpts{})
	serverOnly, soKey := ca.issue(t, "server only", leafOpts{usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	expired, exKey := ca.issue(t, "expired", leafOpts{notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)})
	foreign, fKey := other.issue(t, "foreign", leafOpts{})
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edCert, _ := ca.issue(t, "ed25519", leafOpts{key: edKey})
	ecDER, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	f := func(name string, b []byte) string { return writeFile(t, dir, name, b) }
	certF, keyF, caF := f("cert.pem", certPEM(cert)), f("key.pem", keyPEM(t, key)), f("ca.pem", certPEM(ca.cert))
	good := TLSFiles{Cert: certF, Key: keyF, CA: caF}
	if _, _, err := LoadTLS(good); err != nil {
		t.Fatalf("good files: %v", err)
	}
	// Other accepted forms: a SEC 1 EC key, an Ed25519 key, a CA file
	// with two CAs, a cert file with the key in it.
	for name, files := range map[string]TLSFiles{
		"sec1 key": {Cert: certF, Key: f("sec1.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})), CA: caF},
		"ed25519":  {Cert: f("ed.pem", certPEM(edCert)), Key: f("ed.key", keyPEM(t, edKey)), CA: caF},
		"two cas":  {Cert: certF, Key: keyF, CA: f("cas.pem", append(certPEM(other.cert), certPEM(ca.cert)...))},
		"combined": {Cert: f("both.pem", append(keyPEM(t, key), certPEM(cert)...)), Key: keyF, CA: caF},
	} {
		if _, _, err := LoadTLS(files); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	missing := filepath.Join(dir, "missing.pem")
	garbage := f("garbage.pem", []byte("not a pem file\n"))
	badDER := f("baddie.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}))
	badKey := f("badkey.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}))
	encKey := f("enc.pem", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}}))
	cases := []struct {
		name   string
		files  TLSFiles
		want   error
		expect []string // in the message
	}{
		{"missing cert", TLSFiles{Cert: missing, Key: keyF, CA: caF}, ErrTLSFile, []string{"cert", missing, "no such file"}},
		{"missing key", TLSFiles{Cert: certF, Key: missing, CA: caF}, ErrTLSFile, []string{"key", missing}},
		{"missing ca", TLSFiles{Cert: certF, Key: keyF, CA: missing}, ErrTLSFile, []string{"ca", missing}},
		{"unset ca", TLSFiles{Cert: certF, Key: keyF}, ErrTLSFile, []string{"no ca file"}},
		{"cert not pem", TLSFiles{Cert: garbage, Key: keyF, CA: caF}, ErrBadPEM, []string{garbage, "no CERTIFICATE block"}},
		{"cert bad der", TLSFiles{Cert: badDER, Key: keyF, CA: caF}, ErrBadPEM, []string{badDER}},
		{"key not pem", TLSFiles{Cert: certF, Key: garbage, CA: caF}, ErrBadPEM, []string{garbage, "no PRIVATE KEY block"}},
		{"key is a cert", TLSFiles{Cert: certF, Key: certF, CA: caF}, ErrBadPEM, []string{certF}},
		{"key bad der", TLSFiles{Cert: certF, Key: badKey, CA: caF}, ErrBadPEM, []string{badKey}},
		{"key encrypted", TLSFiles{Cert: certF, Key: encKey, CA: caF}, ErrBadPEM, []string{"encrypted"}},
		{"ca not pem", TLSFiles{Cert: certF, Key: keyF, CA: garbage}, ErrBadPEM, []string{garbage}},
		{"key of another cert", TLSFiles{Cert: certF, Key: f("other.key", keyPEM(t, otherKey)), CA: caF}, ErrKeyMismatch, []string{certF}},
		{"ca is a leaf", TLSFiles{Cert: certF, Key: keyF, CA: certF}, ErrNotCA, []string{certF, "node1"}},
		{"cert of another ca", TLSFiles{Cert: f("foreign.pem", certPEM(foreign)), Key: f("foreign.key", keyPEM(t, fKey)), CA: caF}, ErrNotSignedByCA, []string{"unknown authority"}},
		{"cert for servers only", TLSFiles{Cert: f("so.pem", certPEM(serverOnly)), Key: f("so.key", keyPEM(t, soKey)), CA: caF}, ErrNotSignedByCA, []string{"clientAuth"}},
		{"cert expired", TLSFiles{Cert: f("exp.pem", certPEM(expired)), Key: f("exp.key", keyPEM(t, exKey)), CA: caF}, ErrNotSignedByCA, []string{"expired"}},
	}
	for _, c := range cases {
		cl, sv, err := LoadTLS(c.files)
		if !errors.Is(err, c.want) || cl != nil || sv != nil {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
			continue
		}
		for _, s := range c.expect {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not mention %q", c.name, err, s)
			}
		}
	}
}

// TestLoadTLSConfigs checks the settings LoadTLS returns.
func TestLoadTLSConfigs(t *testing.T) {
	ca := newCA(t, "cluster ca")
	c, s := mustLoad(t, nodeFiles(t, ca, "node1"))
	for name, cfg := range map[string]*tls.Config{"client": c, "server": s} {
		if cfg.MinVersion != tls.VersionTLS13 || cfg.MaxVersion != tls.VersionTLS13 || len(cfg.Certificates) != 1 {
			t.Errorf("%s: versions %x-%x, %d certificates", name, cfg.MinVersion, cfg.MaxVersion, len(cfg.Certificates))
		}
	}
	if s.ClientAuth != tls.RequireAndVerifyClientCert || s.ClientCAs == nil {
		t.Error("server does not require a client certificate of the CA")
	}
	if c.VerifyConnection == nil || c.RootCAs != nil {
		t.Error("client does not pin the server to the CA")
	}
}
