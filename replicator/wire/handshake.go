package wire

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
)

// Capabilities (Hello bytes 88-91). A capability is used only if both
// peers advertise it; the capability words travel in the authenticated
// transcript, so a man in the middle cannot strip one.
const (
	// CapEncrypt asks for AES-GCM encryption of every session payload, on
	// top of the authentication every session frame always has.
	CapEncrypt uint32 = 1 << 0
	// CapCompress asks for s2 compression of the data of Write and
	// ResyncData frames, frame by frame where it saves space (Config.Compress).
	CapCompress uint32 = 1 << 1
	// CapTLS says the sender runs the mirror connect inside TLS 1.3
	// (Config.TLS). Unlike the others it must match: a side with TLS
	// refuses a peer without it and the reverse (ErrTLSMismatch), and with
	// it the transcript is bound to the TLS connection.
	CapTLS uint32 = 1 << 2

	// supportedCaps are the capabilities this version can use.
	supportedCaps = CapEncrypt | CapCompress | CapTLS
)

// Roles (Hello byte 97).
const (
	RoleSecondary uint8 = 0
	RolePrimary   uint8 = 1
)

// Handshake payload sizes.
const (
	// NonceSize is the size of a handshake nonce.
	NonceSize = 32
	// HelloSize is the payload size of a Hello.
	HelloSize = 132
	// ProofSize is the size of a handshake proof (HMAC-SHA256).
	ProofSize = 32
	// HelloAckSize is the payload size of a HelloAck: a Hello and the
	// server's proof.
	HelloAckSize = HelloSize + ProofSize
	// AuthSize is the payload size of an Auth: the client's proof.
	AuthSize = ProofSize
	// MinMaxPayload is the smallest maximum payload a peer may announce.
	MinMaxPayload = 4096 + 64
)

// keyLabel derives the mirror subkey from the cluster key.
const keyLabel = "vigil mirror v1"

// Generations are a disk's generation identifiers as the handshake carries
// them (replicator/meta owns their meaning).
type Generations struct {
	Current uint64
	Bitmap  uint64
	History [2]uint64
}

// Hello is what each peer tells the other in the handshake: who it is,
// which volume it holds and in what state, and what it can do. Nonce is
// filled by the handshake.
type Hello struct {
	Nonce       [NonceSize]byte
	ConfigHash  [16]byte
	VolumeUUID  [16]byte
	Incarnation uint64
	Size        uint64 // bytes
	BlockSize   uint32 // bytes, a power of two in [512, 65536]
	MaxPayload  uint32 // largest payload the sender accepts
	Caps        uint32
	DiskFlags   uint32 // replicator/meta superblock flags
	Node        uint8  // server index in the cluster configuration
	Role        uint8
	Gens        Generations
}

// Put writes h into b (HelloSize bytes) and returns b[:HelloSize].
func (h *Hello) Put(b []byte) []byte {
	b = b[:HelloSize]
	copy(b[0:], h.Nonce[:])
	copy(b[32:], h.ConfigHash[:])
	copy(b[48:], h.VolumeUUID[:])
	be.PutUint64(b[64:], h.Incarnation)
	be.PutUint64(b[72:], h.Size)
	be.PutUint32(b[80:], h.BlockSize)
	be.PutUint32(b[84:], h.MaxPayload)
	be.PutUint32(b[88:], h.Caps)
	be.PutUint32(b[92:], h.DiskFlags)
	b[96] = h.Node
	b[97] = h.Role
	be.PutUint16(b[98:], 0)
	be.PutUint64(b[100:], h.Gens.Current)
	be.PutUint64(b[108:], h.Gens.Bitmap)
	be.PutUint64(b[116:], h.Gens.History[0])
	be.PutUint64(b[124:], h.Gens.History[1])
	return b
}

// ParseHello parses a Hello payload.
func ParseHello(p []byte) (Hello, error) {
	if len(p) != HelloSize {
		return Hello{}, malformed(TypeHello, "bad size")
	}
	return parseHello(TypeHello, p)
}

func parseHello(t Type, p []byte) (Hello, error) {
	var h Hello
	copy(h.Nonce[:], p[0:])
	copy(h.ConfigHash[:], p[32:])
	copy(h.VolumeUUID[:], p[48:])
	h.Incarnation = be.Uint64(p[64:])
	h.Size = be.Uint64(p[72:])
	h.BlockSize = be.Uint32(p[80:])
	h.MaxPayload = be.Uint32(p[84:])
	h.Caps = be.Uint32(p[88:])
	h.DiskFlags = be.Uint32(p[92:])
	h.Node = p[96]
	h.Role = p[97]
	h.Gens = Generations{
		Current: be.Uint64(p[100:]),
		Bitmap:  be.Uint64(p[108:]),
		History: [2]uint64{be.Uint64(p[116:]), be.Uint64(p[124:])},
	}
	switch {
	case be.Uint16(p[98:]) != 0:
		return Hello{}, malformed(t, "reserved bytes set")
	case h.Nonce == [NonceSize]byte{}:
		return Hello{}, malformed(t, "zero nonce")
	case h.Incarnation == 0:
		return Hello{}, malformed(t, "zero incarnation")
	case h.Role > RolePrimary:
		return Hello{}, malformed(t, "bad role")
	case h.BlockSize < 512 || h.BlockSize > 65536 || h.BlockSize&(h.BlockSize-1) != 0:
		return Hello{}, malformed(t, "bad block size")
	case h.Size%uint64(h.BlockSize) != 0:
		return Hello{}, malformed(t, "size not a multiple of the block size")
	case h.MaxPayload < MinMaxPayload || h.MaxPayload > MaxPayload:
		return Hello{}, malformed(t, "bad max payload")
	}
	return h, nil
}

// ParseHelloAck parses a HelloAck payload: the server's Hello and proof.
func ParseHelloAck(p []byte) (Hello, [ProofSize]byte, error) {
	var proof [ProofSize]byte
	if len(p) != HelloAckSize {
		return Hello{}, proof, malformed(TypeHelloAck, "bad size")
	}
	h, err := parseHello(TypeHelloAck, p[:HelloSize])
	if err != nil {
		return Hello{}, proof, err
	}
	copy(proof[:], p[HelloSize:])
	return h, proof, nil
}

// ParseAuth parses an Auth payload: the client's proof.
func ParseAuth(p []byte) ([ProofSize]byte, error) {
	var proof [ProofSize]byte
	if len(p) != AuthSize {
		return proof, malformed(TypeAuth, "bad size")
	}
	copy(proof[:], p)
	return proof, nil
}

// DeriveKey returns the mirror subkey HMAC-SHA256(clusterKey, "vigil
// mirror v1"). The handshake keys every proof and session key with it.
func DeriveKey(clusterKey []byte) [32]byte {
	m := hmac.New(sha256.New, clusterKey)
	m.Write([]byte(keyLabel))
	var k [32]byte
	m.Sum(k[:0])
	return k
}

// keyed returns HMAC-SHA256(key, label || th).
func keyed(key *[32]byte, label string, th *[32]byte) [32]byte {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(label))
	m.Write(th[:])
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// transcript returns SHA-256 over the label, the client's Hello payload,
// the server's Hello payload (the HelloAck without its proof) and, when
// both run in TLS, the TLS connection's exporter value.
func transcript(client, server, binding []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(keyLabel + " transcript"))
	h.Write(client)
	h.Write(server)
	h.Write(binding)
	var th [32]byte
	h.Sum(th[:0])
	return th
}

// Config configures one side of a handshake.
type Config struct {
	// ClusterKey is the cluster's shared secret from the configuration.
	ClusterKey []byte
	// Local is what this node announces. The handshake fills its Nonce,
	// and clamps MaxPayload (0 means MaxPayload).
	Local Hello
	// Rand is the source of the nonce; nil means crypto/rand.
	Rand io.Reader
	// Compress advertises CapCompress: Write and ResyncData data is
	// compressed if the peer advertises it too.
	Compress bool
	// TLS is the state of the TLS connection the handshake runs in
	// (TLSState of the connection, after its TLS handshake), or nil if it
	// does not run in TLS. It must be a completed, mutually authenticated
	// TLS 1.3 connection. The handshake advertises CapTLS exactly when TLS
	// is set, refuses a peer that disagrees, and binds its transcript to
	// the TLS connection's exporter.
	TLS *tls.ConnectionState
}

// Result is a completed handshake.
type Result struct {
	// Peer is what the peer announced, authenticated.
	Peer Hello
	// Caps are the capabilities both peers advertised and this version
	// supports: CapEncrypt, CapCompress and CapTLS.
	Caps uint32
}

// Client runs the client side of the handshake on r and w (the same
// connection; the caller sets deadlines): send Hello, read and verify
// HelloAck, send Auth. On success r and w authenticate every later frame
// with fresh per-direction session keys. The caller then compares
// Result.Peer with its own state (config hash, volume, generations) and
// sends Close if it refuses the peer.
func Client(r *Reader, w *Writer, cfg Config) (Result, error) {
	local, binding, err := prepare(cfg)
	if err != nil {
		return Result{}, err
	}
	var hb [HelloAckSize]byte
	helloC := local.Put(hb[:HelloSize])
	if _, err := w.WriteFrame(TypeHello, helloC, nil); err != nil {
		return Result{}, fmt.Errorf("send hello: %w", err)
	}
	if err := w.Flush(); err != nil {
		return Result{}, fmt.Errorf("send hello: %w", err)
	}
	f, err := r.ReadFrame()
	if err != nil {
		return Result{}, fmt.Errorf("read hello ack: %w", err)
	}
	if f.Type != TypeHelloAck {
		return Result{}, r.peerRefusedClient(f, local)
	}
	peer, proofS, err := ParseHelloAck(f.Payload)
	if err != nil {
		return Result{}, r.reject(ReasonMalformed, f.Seq)
	}
	if peer.Nonce == local.Nonce || peer.Node == local.Node {
		r.counters.add(ReasonAuth)
		return Result{}, fmt.Errorf("hello ack: %w", ErrReflected)
	}
	if err := checkTLS(w, local, peer); err != nil {
		return Result{}, err
	}
	key := DeriveKey(cfg.ClusterKey)
	th := transcript(helloC, f.Payload[:HelloSize], binding)
	want := keyed(&key, "server proof", &th)
	if !hmac.Equal(want[:], proofS[:]) {
		r.counters.add(ReasonAuth)
		return Result{}, fmt.Errorf("hello ack: %w", ErrAuth)
	}
	proofC := keyed(&key, "client proof", &th)
	if _, err := w.WriteFrame(TypeAuth, proofC[:], nil); err != nil {
		return Result{}, fmt.Errorf("send auth: %w", err)
	}
	if err := w.Flush(); err != nil {
		return Result{}, fmt.Errorf("send auth: %w", err)
	}
	return finish(r, w, &key, &th, local, peer, false)
}

// Server runs the server side of the handshake on r and w: read Hello,
// send HelloAck with this node's proof, read and verify Auth. On success
// r and w authenticate every later frame with per-direction session keys.
func Server(r *Reader, w *Writer, cfg Config) (Result, error) {
	local, binding, err := prepare(cfg)
	if err != nil {
		return Result{}, err
	}
	f, err := r.ReadFrame()
	if err != nil {
		return Result{}, fmt.Errorf("read hello: %w", err)
	}
	if f.Type != TypeHello {
		return Result{}, r.peerRefused(f)
	}
	peer, err := ParseHello(f.Payload)
	if err != nil {
		return Result{}, r.reject(ReasonMalformed, f.Seq)
	}
	if peer.Nonce == local.Nonce || peer.Node == local.Node {
		r.counters.add(ReasonAuth)
		return Result{}, fmt.Errorf("hello: %w", ErrReflected)
	}
	if err := checkTLS(w, local, peer); err != nil {
		return Result{}, err
	}
	var helloC [HelloSize]byte
	copy(helloC[:], f.Payload)
	key := DeriveKey(cfg.ClusterKey)
	var ab [HelloAckSize]byte
	helloS := local.Put(ab[:HelloSize])
	th := transcript(helloC[:], helloS, binding)
	proofS := keyed(&key, "server proof", &th)
	copy(ab[HelloSize:], proofS[:])
	if _, err := w.WriteFrame(TypeHelloAck, ab[:], nil); err != nil {
		return Result{}, fmt.Errorf("send hello ack: %w", err)
	}
	if err := w.Flush(); err != nil {
		return Result{}, fmt.Errorf("send hello ack: %w", err)
	}
	f, err = r.ReadFrame()
	if err != nil {
		return Result{}, fmt.Errorf("read auth: %w", err)
	}
	if f.Type != TypeAuth {
		return Result{}, r.peerRefused(f)
	}
	proofC, err := ParseAuth(f.Payload)
	if err != nil {
		return Result{}, r.reject(ReasonMalformed, f.Seq)
	}
	want := keyed(&key, "client proof", &th)
	if !hmac.Equal(want[:], proofC[:]) {
		r.counters.add(ReasonAuth)
		return Result{}, fmt.Errorf("auth: %w", ErrAuth)
	}
	return finish(r, w, &key, &th, local, peer, true)
}

// PeerError reports an Error or Close frame received instead of the next
// handshake message.
type PeerError struct {
	Type    Type
	Code    uint32
	Message string
}

func (e *PeerError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("peer sent %s, code %d", e.Type, e.Code)
	}
	return fmt.Sprintf("peer sent %s, code %d: %s", e.Type, e.Code, e.Message)
}

// peerRefusedClient is peerRefused for the client's first answer: a
// server that refused it for a TLS mismatch (Error with code CloseTLS)
// gives an ErrTLSMismatch that says which side has TLS off.
func (r *Reader) peerRefusedClient(f Frame, local Hello) error {
	err := r.peerRefused(f)
	if pe, ok := err.(*PeerError); ok && pe.Type == TypeError && pe.Code == CloseTLS {
		mine := local.Caps&CapTLS != 0
		return fmt.Errorf("%w: this node (%d) has TLS %s, the peer has it %s: %w", ErrTLSMismatch, local.Node, onOff(mine), onOff(!mine), pe)
	}
	return err
}

// peerRefused turns an out-of-order handshake frame into an error: a
// PeerError for Error and Close, an ErrUnexpected rejection otherwise.
func (r *Reader) peerRefused(f Frame) error {
	switch f.Type {
	case TypeError:
		m, _ := ParseError(f.Payload)
		return &PeerError{Type: f.Type, Code: m.Code, Message: m.Message}
	case TypeClose:
		c, _ := ParseClose(f.Payload)
		return &PeerError{Type: f.Type, Code: c.Code}
	}
	return r.reject(ReasonUnexpected, f.Seq)
}

// prepare returns the Hello this node sends and, when it runs in TLS, the
// TLS binding of the transcript.
func prepare(cfg Config) (Hello, []byte, error) {
	if len(cfg.ClusterKey) == 0 {
		return Hello{}, nil, fmt.Errorf("handshake: empty cluster key")
	}
	local := cfg.Local
	if local.MaxPayload == 0 {
		local.MaxPayload = MaxPayload
	}
	local.MaxPayload = min(max(local.MaxPayload, MinMaxPayload), MaxPayload)
	if cfg.Compress {
		local.Caps |= CapCompress
	}
	var binding []byte
	switch {
	case cfg.TLS != nil:
		var err error
		if binding, err = tlsBinding(cfg.TLS); err != nil {
			return Hello{}, nil, err
		}
		local.Caps |= CapTLS
	case local.Caps&CapTLS != 0:
		return Hello{}, nil, fmt.Errorf("handshake: CapTLS set without a TLS connection (Config.TLS)")
	}
	rnd := cfg.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	if _, err := io.ReadFull(rnd, local.Nonce[:]); err != nil {
		return Hello{}, nil, fmt.Errorf("handshake nonce: %w", err)
	}
	// Validate our own Hello as the peer will.
	var b [HelloSize]byte
	if _, err := ParseHello(local.Put(b[:])); err != nil {
		return Hello{}, nil, fmt.Errorf("handshake local hello: %w", err)
	}
	return local, binding, nil
}

// onOff names a TLS setting in mismatch errors.
func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// checkTLS refuses a peer whose Hello disagrees with this node's about
// TLS: it tells the peer with an Error frame (code CloseTLS) and returns
// an ErrTLSMismatch that says which side has TLS off. A side running in
// TLS thus never goes on with a peer that does not, whatever sits between
// them.
func checkTLS(w *Writer, local, peer Hello) error {
	mine, theirs := local.Caps&CapTLS != 0, peer.Caps&CapTLS != 0
	if mine == theirs {
		return nil
	}
	msg := fmt.Sprintf("TLS mismatch: node %d has TLS %s, node %d has it %s", local.Node, onOff(mine), peer.Node, onOff(theirs))
	if _, err := w.WriteFrame(TypeError, ErrorMsg{Code: CloseTLS, Message: msg}.Append(nil), nil); err == nil {
		_ = w.Flush()
	}
	return fmt.Errorf("%w: this node (%d) has TLS %s, peer node %d has it %s", ErrTLSMismatch, local.Node, onOff(mine), peer.Node, onOff(theirs))
}

// finish derives the per-direction session keys from the transcript and
// switches r and w to authenticated frames.
func finish(r *Reader, w *Writer, key, th *[32]byte, local, peer Hello, server bool) (Result, error) {
	caps := local.Caps & peer.Caps & supportedCaps
	encrypt := caps&CapEncrypt != 0
	compress := caps&CapCompress != 0
	c2s := keyed(key, "client to server key", th)
	s2c := keyed(key, "server to client key", th)
	rk, wk := s2c, c2s
	if server {
		rk, wk = c2s, s2c
	}
	rs, err := newSession(rk[:], encrypt)
	if err != nil {
		return Result{}, err
	}
	ws, err := newSession(wk[:], encrypt)
	if err != nil {
		return Result{}, err
	}
	r.sess, w.sess = rs, ws
	r.compress, w.compress = compress, compress
	r.SetMaxPayload(int(local.MaxPayload))
	w.SetMaxPayload(int(peer.MaxPayload))
	return Result{Peer: peer, Caps: caps}, nil
}
