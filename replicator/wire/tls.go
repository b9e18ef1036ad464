package wire

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// TLSFiles names the PEM files of a node's mirror connect TLS: its own
// certificate and key, and the cluster CA that signs every node's
// certificate.
type TLSFiles struct {
	// Cert holds this node's certificate, optionally followed by
	// intermediate CA certificates. The same certificate serves both ends
	// of the connection, so it must allow TLS server and client
	// authentication (extended key usages serverAuth and clientAuth, or
	// none).
	Cert string
	// Key holds the certificate's private key: PKCS #8, PKCS #1 (RSA) or
	// SEC 1 (EC), unencrypted.
	Key string
	// CA holds the cluster CA certificate(s). Only certificates chaining
	// to one of them are accepted from the peer; the system roots are
	// never consulted.
	CA string
}

// Errors about TLS files. Each error LoadTLS returns wraps one of them and
// names the file.
var (
	// ErrTLSFile reports a TLS file that cannot be read.
	ErrTLSFile = errors.New("mirror tls: cannot read file")
	// ErrBadPEM reports a file holding no usable PEM block of the expected
	// kind, or one that does not parse.
	ErrBadPEM = errors.New("mirror tls: bad PEM")
	// ErrKeyMismatch reports a private key that is not the certificate's.
	ErrKeyMismatch = errors.New("mirror tls: key does not match certificate")
	// ErrNotCA reports a CA file holding a certificate that is not a CA.
	ErrNotCA = errors.New("mirror tls: not a CA certificate")
	// ErrNotSignedByCA reports a node certificate that does not chain to
	// the cluster CA, has expired, or lacks a needed key usage.
	ErrNotSignedByCA = errors.New("mirror tls: certificate not valid under the cluster CA")
)

// tlsExporterLabel labels the keying material the handshake binds to the
// TLS connection (RFC 8446 section 7.5 exporter).
const tlsExporterLabel = "EXPORTER-vigil-mirror-v1"

// LoadTLS reads f and returns the TLS configurations of the two ends of a
// mirror connect: client for the node that dials, server for the node
// that listens. Both require TLS 1.3 and mutual authentication: each side
// presents the node certificate and accepts only a peer certificate that
// chains to the cluster CA, without checking host names (the peer is
// reached by address; the cluster-key handshake inside TLS proves the
// rest). Everything is checked now, so a bad file is reported at load
// time and not as a failed handshake later: a missing file, a file
// without the expected PEM block, a key that is not the certificate's, a
// CA file holding a non-CA certificate, a node certificate that the CA
// did not sign, that has expired or that cannot authenticate both ends.
func LoadTLS(f TLSFiles) (client, server *tls.Config, err error) {
	return loadTLS(f, time.Now())
}

func loadTLS(f TLSFiles, now time.Time) (client, server *tls.Config, err error) {
	certs, err := readCerts(f.Cert, "cert")
	if err != nil {
		return nil, nil, err
	}
	key, err := readKey(f.Key)
	if err != nil {
		return nil, nil, err
	}
	leaf := certs[0]
	if !publicKeyEqual(key.Public(), leaf.PublicKey) {
		return nil, nil, fmt.Errorf("%w: key %s is not the key of cert %s", ErrKeyMismatch, f.Key, f.Cert)
	}
	cas, err := readCerts(f.CA, "ca")
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	for i, ca := range cas {
		if !ca.BasicConstraintsValid || !ca.IsCA {
			return nil, nil, fmt.Errorf("%w: ca %s certificate %d (%s) has no CA basic constraint", ErrNotCA, f.CA, i+1, ca.Subject)
		}
		if ca.KeyUsage != 0 && ca.KeyUsage&x509.KeyUsageCertSign == 0 {
			return nil, nil, fmt.Errorf("%w: ca %s certificate %d (%s) may not sign certificates", ErrNotCA, f.CA, i+1, ca.Subject)
		}
		pool.AddCert(ca)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	for _, u := range []struct {
		usage x509.ExtKeyUsage
		name  string
	}{{x509.ExtKeyUsageServerAuth, "serverAuth"}, {x509.ExtKeyUsageClientAuth, "clientAuth"}} {
		opts := x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{u.usage}}
		if _, err := leaf.Verify(opts); err != nil {
			return nil, nil, fmt.Errorf("%w: cert %s for %s under ca %s: %w", ErrNotSignedByCA, f.Cert, u.name, f.CA, err)
		}
	}
	raw := make([][]byte, len(certs))
	for i, c := range certs {
		raw[i] = c.Raw
	}
	cert := tls.Certificate{Certificate: raw, PrivateKey: key, Leaf: leaf}
	client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// The server is reached by address and its certificate need not
		// name it: the standard verification (which checks the name) is
		// replaced by verifyServer, which checks the chain to the cluster
		// CA only.
		InsecureSkipVerify: true,
		VerifyConnection:   verifyServer(pool),
	}
	server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		// The dialler keeps no session cache: every connection is a full
		// handshake, so tickets would only cost bytes.
		SessionTicketsDisabled: true,
	}
	return client, server, nil
}

// verifyServer returns a VerifyConnection callback that accepts a TLS 1.3
// server certificate chaining to a CA in pool, for server authentication.
func verifyServer(pool *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("mirror tls: peer sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		opts := x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
			return fmt.Errorf("mirror tls: peer certificate %s: %w", cs.PeerCertificates[0].Subject, err)
		}
		return nil
	}
}

// TLSState returns the state of c's TLS connection if c is a *tls.Conn,
// and nil otherwise. Pass it as Config.TLS after the TLS handshake.
func TLSState(c net.Conn) *tls.ConnectionState {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	st := tc.ConnectionState()
	return &st
}

// tlsBinding checks that st is a completed, mutually authenticated TLS 1.3
// connection and returns its exporter value, which the handshake mixes
// into its transcript: proofs made over one TLS connection do not verify
// over another, so a relay that terminates TLS on both sides (even with
// certificates of the cluster CA) cannot splice two connections together.
func tlsBinding(st *tls.ConnectionState) ([]byte, error) {
	switch {
	case !st.HandshakeComplete:
		return nil, errors.New("handshake: TLS handshake not complete")
	case st.Version != tls.VersionTLS13:
		return nil, fmt.Errorf("handshake: TLS version %s, want TLS 1.3", tls.VersionName(st.Version))
	case len(st.PeerCertificates) == 0:
		return nil, errors.New("handshake: TLS peer sent no certificate (mutual authentication required)")
	}
	b, err := st.ExportKeyingMaterial(tlsExporterLabel, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("handshake: tls exporter: %w", err)
	}
	return b, nil
}

// readFile reads a TLS file, naming it and its role in errors.
func readFile(path, role string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: no %s file given", ErrTLSFile, role)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrTLSFile, role, err)
	}
	return b, nil
}

// readCerts returns every CERTIFICATE block of the file at path, in order.
func readCerts(path, role string) ([]*x509.Certificate, error) {
	b, err := readFile(path, role)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %s: certificate %d: %w", ErrBadPEM, role, path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: %s %s holds no CERTIFICATE block", ErrBadPEM, role, path)
	}
	return certs, nil
}

// readKey returns the first private key of the file at path.
func readKey(path string) (crypto.Signer, error) {
	b, err := readFile(path, "key")
	if err != nil {
		return nil, err
	}
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, fmt.Errorf("%w: key %s holds no PRIVATE KEY block", ErrBadPEM, path)
		}
		if !strings.HasSuffix(blk.Type, "PRIVATE KEY") {
			continue
		}
		if blk.Headers["Proc-Type"] != "" || blk.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, fmt.Errorf("%w: key %s is encrypted; give it unencrypted", ErrBadPEM, path)
		}
		k, err := parseKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: key %s: %w", ErrBadPEM, path, err)
		}
		return k, nil
	}
}

// parseKey parses a DER private key in PKCS #8, PKCS #1 or SEC 1 form.
func parseKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		switch k := k.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
			return k.(crypto.Signer), nil
		}
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("not a PKCS #8, PKCS #1 or SEC 1 private key")
}

// publicKeyEqual reports whether a and b are the same public key. Every
// key type parseKey returns has an Equal method.
func publicKeyEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}
