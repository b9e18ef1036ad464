package heartbeat

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// Wire constants. doc.go describes the layout byte by byte.
const (
	// Magic is the first four bytes of every heartbeat packet.
	Magic = "VGHB"
	// Version is the wire format version this package speaks.
	Version uint8 = 1

	// HeaderSize is the size of the header common to probes and replies.
	HeaderSize = 66
	// TagSize is the size of the truncated HMAC-SHA256 tag that ends every
	// packet.
	TagSize = 16
	// MaxPayload is the largest payload a probe may carry.
	MaxPayload = 1024
	// NonceSize is the size of a probe's nonce.
	NonceSize = 16

	// ProbeMinSize is the size of a probe with an empty payload.
	ProbeMinSize = HeaderSize + 2 + TagSize
	// ProbeMaxSize is the size of a probe with a MaxPayload-byte payload.
	ProbeMaxSize = ProbeMinSize + MaxPayload
	// ReplySize is the size of every reply.
	ReplySize = HeaderSize + 24 + TagSize
	// MaxPacketSize is the largest valid heartbeat packet.
	MaxPacketSize = ProbeMaxSize

	// FlagKernelReply marks a reply produced by the kernel (XDP) fast path
	// rather than by the daemon. The userspace engine never sets it; Decode
	// carries every flag bit through unchanged.
	FlagKernelReply uint16 = 1 << 0

	// keyLabel is the HMAC message that derives the heartbeat subkey from
	// the cluster key.
	keyLabel = "vigil heartbeat v1"
)

// Field offsets, shared by the encoder and the decoder.
const (
	offMagic       = 0
	offVersion     = 4
	offType        = 5
	offSender      = 6
	offLane        = 7
	offFlags       = 8
	offConfigHash  = 10
	offIncarnation = 26
	offNonce       = 34
	offSeq         = 50
	offSentAt      = 58

	offPayloadLen = HeaderSize     // probe
	offPayload    = HeaderSize + 2 // probe
	offEchoSentAt = HeaderSize     // reply
	offReceivedAt = HeaderSize + 8 // reply
	offEpoch      = HeaderSize + 16
)

// Decode and encode errors. Every structural error wraps ErrMalformed, so
// errors.Is(err, ErrMalformed) tells a malformed packet from an oversize or
// forged one.
var (
	// ErrMalformed is wrapped by every error about a packet's structure.
	ErrMalformed = errors.New("heartbeat: malformed packet")
	// ErrShort reports a packet shorter than its type requires.
	ErrShort = fmt.Errorf("%w: too short", ErrMalformed)
	// ErrMagic reports a packet that does not start with Magic.
	ErrMagic = fmt.Errorf("%w: bad magic", ErrMalformed)
	// ErrVersion reports an unsupported wire version.
	ErrVersion = fmt.Errorf("%w: unsupported version", ErrMalformed)
	// ErrType reports an unknown packet type.
	ErrType = fmt.Errorf("%w: unknown type", ErrMalformed)
	// ErrLength reports a packet longer than its type and payload length say.
	ErrLength = fmt.Errorf("%w: trailing bytes", ErrMalformed)
	// ErrOversize reports a datagram larger than MaxPacketSize, or a payload
	// (declared or given to Append) larger than MaxPayload.
	ErrOversize = errors.New("heartbeat: oversize packet")
	// ErrBadMAC reports a packet whose tag does not verify with the key.
	ErrBadMAC = errors.New("heartbeat: bad MAC")

	// ErrInvalidConfig is wrapped by every error New returns.
	ErrInvalidConfig = errors.New("heartbeat config")
	// ErrAlreadyRun is returned by a second call to Engine.Run.
	ErrAlreadyRun = errors.New("heartbeat: engine already ran")
)

// Type is a packet type.
type Type uint8

// Packet types.
const (
	// TypeProbe is a probe: "are you there", carrying the sender's payload.
	TypeProbe Type = 1
	// TypeReply answers one probe, echoing its nonce and sequence number.
	TypeReply Type = 2
)

// String returns "probe", "reply" or the number of an unknown type.
func (t Type) String() string {
	switch t {
	case TypeProbe:
		return "probe"
	case TypeReply:
		return "reply"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Packet is a decoded probe or reply. Fields that one type does not carry are
// zero in a decoded packet and ignored by Append.
type Packet struct {
	// Type is TypeProbe or TypeReply.
	Type Type
	// Sender is the sending server's index.
	Sender uint8
	// Lane is the lane index the packet was sent on.
	Lane uint8
	// Flags are the header flags (FlagKernelReply).
	Flags uint16
	// ConfigHash is the first half of the SHA-256 of the sender's
	// configuration.
	ConfigHash [16]byte
	// Incarnation is random per daemon start of the sender.
	Incarnation uint64
	// Nonce is random per probe; a reply echoes its probe's nonce.
	Nonce [NonceSize]byte
	// Seq increases with every probe round of the sender on the lane; a
	// reply echoes its probe's sequence number.
	Seq uint64
	// SentAt is the sender's wall clock at sending, in Unix nanoseconds.
	SentAt int64

	// Payload is the probe's opaque payload. In a decoded packet it aliases
	// the buffer given to Decode.
	Payload []byte

	// EchoSentAt is the SentAt of the probe a reply answers.
	EchoSentAt int64
	// ReceivedAt is the responder's wall clock when the probe arrived, in
	// Unix nanoseconds.
	ReceivedAt int64
	// Epoch is the responder's liveness epoch.
	Epoch uint64
}

// DeriveKey returns the heartbeat MAC key derived from the cluster key:
// HMAC-SHA256(clusterKey, "vigil heartbeat v1").
func DeriveKey(clusterKey []byte) [sha256.Size]byte {
	m := hmac.New(sha256.New, clusterKey)
	m.Write([]byte(keyLabel))
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

// Codec encodes and decodes heartbeat packets under one cluster key. It keeps
// its HMAC state between calls, so it does not allocate in steady state, and
// is not safe for concurrent use: give each goroutine its own.
type Codec struct {
	mac hash.Hash
	sum [sha256.Size]byte
}

// NewCodec returns a Codec that authenticates packets with the subkey
// DeriveKey derives from clusterKey.
func NewCodec(clusterKey []byte) *Codec {
	k := DeriveKey(clusterKey)
	return &Codec{mac: hmac.New(sha256.New, k[:])}
}

// tag returns the first TagSize bytes of the HMAC of b. The result aliases
// the Codec and is valid until the next call.
func (c *Codec) tag(b []byte) []byte {
	c.mac.Reset()
	c.mac.Write(b)
	return c.mac.Sum(c.sum[:0])[:TagSize]
}

// Append appends the encoding of p, tag included, to dst and returns the
// extended buffer. It fails with ErrType for an unknown type and with
// ErrOversize for a probe payload larger than MaxPayload; dst is then
// returned unchanged.
func (c *Codec) Append(dst []byte, p *Packet) ([]byte, error) {
	switch p.Type {
	case TypeProbe:
		if len(p.Payload) > MaxPayload {
			return dst, fmt.Errorf("%w: payload of %d bytes", ErrOversize, len(p.Payload))
		}
	case TypeReply:
	default:
		return dst, ErrType
	}
	start := len(dst)
	dst = append(dst, Magic...)
	dst = append(dst, Version, byte(p.Type), p.Sender, p.Lane)
	dst = binary.BigEndian.AppendUint16(dst, p.Flags)
	dst = append(dst, p.ConfigHash[:]...)
	dst = binary.BigEndian.AppendUint64(dst, p.Incarnation)
	dst = append(dst, p.Nonce[:]...)
	dst = binary.BigEndian.AppendUint64(dst, p.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(p.SentAt))
	if p.Type == TypeProbe {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(p.Payload)))
		dst = append(dst, p.Payload...)
	} else {
		dst = binary.BigEndian.AppendUint64(dst, uint64(p.EchoSentAt))
		dst = binary.BigEndian.AppendUint64(dst, uint64(p.ReceivedAt))
		dst = binary.BigEndian.AppendUint64(dst, p.Epoch)
	}
	return append(dst, c.tag(dst[start:])...), nil
}

// Decode validates b (length, magic, version, type, payload length, then the
// tag, compared in constant time) and returns the packet it holds. The
// returned Payload aliases b. Structural errors wrap ErrMalformed; the others
// are ErrOversize and ErrBadMAC.
func (c *Codec) Decode(b []byte) (Packet, error) {
	if len(b) > MaxPacketSize {
		return Packet{}, ErrOversize
	}
	if len(b) < HeaderSize+TagSize {
		return Packet{}, ErrShort
	}
	if string(b[offMagic:offMagic+4]) != Magic {
		return Packet{}, ErrMagic
	}
	if b[offVersion] != Version {
		return Packet{}, ErrVersion
	}
	typ := Type(b[offType])
	switch typ {
	case TypeProbe:
		if len(b) < ProbeMinSize {
			return Packet{}, ErrShort
		}
		n := int(binary.BigEndian.Uint16(b[offPayloadLen:]))
		if n > MaxPayload {
			return Packet{}, ErrOversize
		}
		if len(b) < ProbeMinSize+n {
			return Packet{}, ErrShort
		}
		if len(b) > ProbeMinSize+n {
			return Packet{}, ErrLength
		}
	case TypeReply:
		if len(b) < ReplySize {
			return Packet{}, ErrShort
		}
		if len(b) > ReplySize {
			return Packet{}, ErrLength
		}
	default:
		return Packet{}, ErrType
	}
	body := b[:len(b)-TagSize]
	if !hmac.Equal(b[len(body):], c.tag(body)) {
		return Packet{}, ErrBadMAC
	}

	p := Packet{
		Type:        typ,
		Sender:      b[offSender],
		Lane:        b[offLane],
		Flags:       binary.BigEndian.Uint16(b[offFlags:]),
		Incarnation: binary.BigEndian.Uint64(b[offIncarnation:]),
		Seq:         binary.BigEndian.Uint64(b[offSeq:]),
		SentAt:      int64(binary.BigEndian.Uint64(b[offSentAt:])),
	}
	copy(p.ConfigHash[:], b[offConfigHash:])
	copy(p.Nonce[:], b[offNonce:])
	if typ == TypeProbe {
		if n := len(body) - offPayload; n > 0 {
			p.Payload = body[offPayload:len(body):len(body)]
		}
	} else {
		p.EchoSentAt = int64(binary.BigEndian.Uint64(b[offEchoSentAt:]))
		p.ReceivedAt = int64(binary.BigEndian.Uint64(b[offReceivedAt:]))
		p.Epoch = binary.BigEndian.Uint64(b[offEpoch:])
	}
	return p, nil
}
