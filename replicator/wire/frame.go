package wire

import (
	"errors"
	"fmt"
	"hash/crc32"
)

// Wire constants. doc.go describes the layout byte by byte.
const (
	// Magic is the first four bytes of every frame.
	Magic = "VGMR"
	// Version is the wire format version this package speaks.
	Version uint8 = 1

	// HeaderSize is the size of the fixed frame header.
	HeaderSize = 24
	// TagSize is the size of the AES-GCM tag that follows the payload of
	// every frame sent after the handshake.
	TagSize = 16
	// MaxData is the largest data block a Write or ResyncData frame carries.
	MaxData = 1 << 20
	// MaxPayload is the largest payload of any frame: MaxData plus room for
	// a message's own header.
	MaxPayload = MaxData + 64
	// MaxFrameSize is the largest frame on the wire.
	MaxFrameSize = HeaderSize + MaxPayload + TagSize
)

// Header field offsets.
const (
	offMagic   = 0
	offCRC     = 4
	offVersion = 8
	offType    = 9
	offFlags   = 10
	offLength  = 12
	offSeq     = 16
)

// Frame flags (header bytes 10-11).
const (
	// FlagMAC marks a frame followed by a TagSize-byte tag. Every frame
	// after the handshake has it; no handshake frame has it.
	FlagMAC uint16 = 1 << 0
	// FlagEncrypted marks a payload encrypted with the session's AES-GCM
	// key. Set exactly when both peers advertised CapEncrypt.
	FlagEncrypted uint16 = 1 << 1
	// FlagCompressed marks a Write or ResyncData whose data (the payload
	// after its 16-byte header) is one s2 block. Allowed only when both
	// peers advertised CapCompress; set per frame, when it saves space.
	FlagCompressed uint16 = 1 << 2

	knownFlags = FlagMAC | FlagEncrypted | FlagCompressed
)

// Type is a frame type (header byte 9).
type Type uint8

// Frame types. doc.go describes each payload.
const (
	TypeHello         Type = 1
	TypeHelloAck      Type = 2
	TypeAuth          Type = 3
	TypeWrite         Type = 4
	TypeWriteAck      Type = 5
	TypeFlush         Type = 6
	TypeFlushAck      Type = 7
	TypeBitmapChunk   Type = 8
	TypeResyncRequest Type = 9
	TypeResyncData    Type = 10
	TypeVerifyRequest Type = 11
	TypeVerifyDigest  Type = 12
	TypePing          Type = 13
	TypePong          Type = 14
	TypeError         Type = 15
	TypeClose         Type = 16

	typeMax = TypeClose
)

var typeNames = [...]string{
	TypeHello:         "hello",
	TypeHelloAck:      "hello_ack",
	TypeAuth:          "auth",
	TypeWrite:         "write",
	TypeWriteAck:      "write_ack",
	TypeFlush:         "flush",
	TypeFlushAck:      "flush_ack",
	TypeBitmapChunk:   "bitmap_chunk",
	TypeResyncRequest: "resync_request",
	TypeResyncData:    "resync_data",
	TypeVerifyRequest: "verify_request",
	TypeVerifyDigest:  "verify_digest",
	TypePing:          "ping",
	TypePong:          "pong",
	TypeError:         "error",
	TypeClose:         "close",
}

// String returns the type's name, or "type(N)" for an unknown type.
func (t Type) String() string {
	if t.valid() {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

func (t Type) valid() bool { return t >= TypeHello && t <= typeMax }

// handshake reports whether t may be sent before authentication completes.
func (t Type) handshake() bool {
	switch t {
	case TypeHello, TypeHelloAck, TypeAuth, TypeError, TypeClose:
		return true
	}
	return false
}

// session reports whether t may be sent after authentication completes.
func (t Type) session() bool {
	return t.valid() && t != TypeHello && t != TypeHelloAck && t != TypeAuth
}

// Frame is one decoded frame. Payload aliases the Reader's buffer and is
// valid until the next call to ReadFrame.
type Frame struct {
	Type    Type
	Flags   uint16
	Seq     uint64
	Payload []byte
}

// Reason is why a frame was rejected; Reader counts rejections by reason.
type Reason uint8

// Rejection reasons, one per sentinel error.
const (
	ReasonBadMagic Reason = iota
	ReasonBadVersion
	ReasonBadFlags
	ReasonTooLarge
	ReasonTruncated
	ReasonBadCRC
	ReasonBadMAC
	ReasonReplay
	ReasonReorder
	ReasonBadType
	ReasonUnexpected
	ReasonMalformed
	ReasonAuth
	NumReasons
)

var reasonNames = [NumReasons]string{
	ReasonBadMagic:   "bad_magic",
	ReasonBadVersion: "bad_version",
	ReasonBadFlags:   "bad_flags",
	ReasonTooLarge:   "too_large",
	ReasonTruncated:  "truncated",
	ReasonBadCRC:     "bad_crc",
	ReasonBadMAC:     "bad_mac",
	ReasonReplay:     "replay",
	ReasonReorder:    "reorder",
	ReasonBadType:    "bad_type",
	ReasonUnexpected: "unexpected",
	ReasonMalformed:  "malformed",
	ReasonAuth:       "auth",
}

// String returns the reason as a metric label value.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Errors returned by Reader, Writer, the message parsers and the handshake.
// Every error about a received frame wraps ErrRejected.
var (
	// ErrRejected is wrapped by every error about a received frame.
	ErrRejected = errors.New("mirror frame rejected")
	// ErrBadMagic reports a frame that does not start with Magic.
	ErrBadMagic = fmt.Errorf("%w: bad magic", ErrRejected)
	// ErrBadVersion reports an unsupported wire version.
	ErrBadVersion = fmt.Errorf("%w: unsupported version", ErrRejected)
	// ErrBadFlags reports unknown flag bits, or flags that do not match the
	// connection's state (a tag before the handshake, no encryption when it
	// was negotiated, compression that was not).
	ErrBadFlags = fmt.Errorf("%w: bad flags", ErrRejected)
	// ErrTooLarge reports a frame longer than the negotiated maximum.
	ErrTooLarge = fmt.Errorf("%w: too large", ErrRejected)
	// ErrTruncated reports a stream that ended inside a frame.
	ErrTruncated = fmt.Errorf("%w: truncated", ErrRejected)
	// ErrBadCRC reports a CRC32C mismatch: corruption.
	ErrBadCRC = fmt.Errorf("%w: bad crc", ErrRejected)
	// ErrBadMAC reports a tag that does not verify, or a missing tag after
	// the handshake: forgery, or corruption the CRC missed.
	ErrBadMAC = fmt.Errorf("%w: bad mac", ErrRejected)
	// ErrReplay reports an authentic frame whose sequence number was
	// already seen.
	ErrReplay = fmt.Errorf("%w: replayed sequence", ErrRejected)
	// ErrReorder reports an authentic frame whose sequence number skips
	// ahead: a frame was dropped or reordered.
	ErrReorder = fmt.Errorf("%w: sequence gap", ErrRejected)
	// ErrBadType reports an unknown frame type.
	ErrBadType = fmt.Errorf("%w: unknown type", ErrRejected)
	// ErrUnexpected reports a known type not allowed in the connection's
	// state (session frames before authentication, handshake frames after).
	ErrUnexpected = fmt.Errorf("%w: unexpected type", ErrRejected)
	// ErrMalformed reports a payload that does not parse for its type.
	ErrMalformed = fmt.Errorf("%w: malformed payload", ErrRejected)
	// ErrAuth reports a handshake proof that does not verify: the peer does
	// not hold the cluster key, or the handshake was replayed.
	ErrAuth = fmt.Errorf("%w: authentication failed", ErrRejected)
	// ErrReflected reports a handshake whose peer echoes this node's own
	// nonce or identity.
	ErrReflected = fmt.Errorf("%w: reflected handshake", ErrAuth)

	// ErrBroken is returned by a Reader after it rejected a frame: the
	// stream is no longer in sync and the connection must be closed.
	ErrBroken = errors.New("mirror stream broken")
	// ErrPayloadTooLarge reports an attempt to send a payload larger than
	// the negotiated maximum.
	ErrPayloadTooLarge = errors.New("mirror payload too large")
	// ErrOutOfOrder reports a sealed frame written out of its sequence
	// order.
	ErrOutOfOrder = errors.New("mirror frame out of sequence order")
	// ErrTLSMismatch reports a handshake refused because one side runs
	// the mirror connect in TLS and the other does not; the error says
	// which.
	ErrTLSMismatch = errors.New("mirror TLS mismatch")
)

var reasonErrs = [NumReasons]error{
	ReasonBadMagic:   ErrBadMagic,
	ReasonBadVersion: ErrBadVersion,
	ReasonBadFlags:   ErrBadFlags,
	ReasonTooLarge:   ErrTooLarge,
	ReasonTruncated:  ErrTruncated,
	ReasonBadCRC:     ErrBadCRC,
	ReasonBadMAC:     ErrBadMAC,
	ReasonReplay:     ErrReplay,
	ReasonReorder:    ErrReorder,
	ReasonBadType:    ErrBadType,
	ReasonUnexpected: ErrUnexpected,
	ReasonMalformed:  ErrMalformed,
	ReasonAuth:       ErrAuth,
}

// ReasonOf returns the rejection reason of err, and false if err is not a
// frame rejection.
func ReasonOf(err error) (Reason, bool) {
	if errors.Is(err, ErrReflected) {
		return ReasonAuth, true
	}
	for r, e := range reasonErrs {
		if errors.Is(err, e) {
			return Reason(r), true
		}
	}
	return 0, false
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)
