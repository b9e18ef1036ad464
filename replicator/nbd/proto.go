package nbd

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Magic numbers of the transmission phase.
const (
	// RequestMagic starts every request.
	RequestMagic = 0x25609513
	// ReplyMagic starts every simple reply.
	ReplyMagic = 0x67446698
)

// Sizes of the fixed parts of requests and replies.
const (
	// RequestSize is the size of a request header; a WRITE's data follows.
	RequestSize = 28
	// ReplySize is the size of a simple reply header; a successful READ's
	// data follows.
	ReplySize = 16
)

// Command is a request's type.
type Command uint16

// Commands. The kernel's nbd driver sends READ, WRITE, FLUSH, TRIM and DISC
// (WRITE_ZEROES from 6.x kernels newer than 6.1); CACHE and BLOCK_STATUS
// exist in the protocol but are never sent without a negotiation the kernel
// does not do.
const (
	CmdRead        Command = 0
	CmdWrite       Command = 1
	CmdDisc        Command = 2
	CmdFlush       Command = 3
	CmdTrim        Command = 4
	CmdCache       Command = 5
	CmdWriteZeroes Command = 6
	CmdBlockStatus Command = 7
)

var cmdNames = [...]string{"read", "write", "disc", "flush", "trim", "cache", "write_zeroes", "block_status"}

func (c Command) String() string {
	if int(c) < len(cmdNames) {
		return cmdNames[c]
	}
	return fmt.Sprintf("command(%d)", uint16(c))
}

// known reports whether c is a command of the protocol.
func (c Command) known() bool { return c <= CmdBlockStatus }

// Command flags.
const (
	// FlagFUA asks that the request's data be durable before the reply.
	FlagFUA uint16 = 1 << 0
	// FlagNoHole lets a WRITE_ZEROES not punch a hole.
	FlagNoHole uint16 = 1 << 1
	// FlagDF, FlagReqOne and FlagFastZero belong to negotiated extensions
	// the kernel does not use; they are rejected.
	FlagDF       uint16 = 1 << 2
	FlagReqOne   uint16 = 1 << 3
	FlagFastZero uint16 = 1 << 4
)

// Server ("transmission") flags, as handed to the kernel at connect.
const (
	serverHasFlags        = 1 << 0
	serverReadOnly        = 1 << 1
	serverSendFlush       = 1 << 2
	serverSendFUA         = 1 << 3
	serverSendTrim        = 1 << 5
	serverSendWriteZeroes = 1 << 6
	serverCanMultiConn    = 1 << 8
)

// Error values of replies: errno numbers, as the protocol defines them.
const (
	ErrnoPerm     uint32 = 1
	ErrnoIO       uint32 = 5
	ErrnoNoMem    uint32 = 12
	ErrnoInval    uint32 = 22
	ErrnoNoSpc    uint32 = 28
	ErrnoOverflow uint32 = 75
	ErrnoNotSup   uint32 = 95
	ErrnoShutdown uint32 = 108
)

// Protocol errors that end a connection.
var (
	// ErrBadMagic is a request that does not start with RequestMagic: the
	// stream is out of step and the connection ends.
	ErrBadMagic = errors.New("nbd: bad request magic")
	// ErrUnknownCommand is a request type the protocol does not define: its
	// length cannot be trusted, so the connection ends.
	ErrUnknownCommand = errors.New("nbd: unknown command")
)

// Request is a request header.
type Request struct {
	Magic  uint32
	Flags  uint16
	Type   Command
	Cookie uint64
	Offset uint64
	Length uint32
}

// ParseRequest decodes a request header from b, which holds at least
// RequestSize bytes. It checks the magic and that the type is one the
// protocol defines; the rest is the server's to check against its device.
func ParseRequest(b []byte) (Request, error) {
	if len(b) < RequestSize {
		return Request{}, fmt.Errorf("nbd: short request: %d bytes", len(b))
	}
	r := Request{
		Magic:  binary.BigEndian.Uint32(b[0:]),
		Flags:  binary.BigEndian.Uint16(b[4:]),
		Type:   Command(binary.BigEndian.Uint16(b[6:])),
		Cookie: binary.BigEndian.Uint64(b[8:]),
		Offset: binary.BigEndian.Uint64(b[16:]),
		Length: binary.BigEndian.Uint32(b[24:]),
	}
	if r.Magic != RequestMagic {
		return r, fmt.Errorf("%w %#08x", ErrBadMagic, r.Magic)
	}
	if !r.Type.known() {
		return r, fmt.Errorf("%w %d", ErrUnknownCommand, uint16(r.Type))
	}
	return r, nil
}

// AppendRequest appends r's wire form to b.
func AppendRequest(b []byte, r Request) []byte {
	b = binary.BigEndian.AppendUint32(b, r.Magic)
	b = binary.BigEndian.AppendUint16(b, r.Flags)
	b = binary.BigEndian.AppendUint16(b, uint16(r.Type))
	b = binary.BigEndian.AppendUint64(b, r.Cookie)
	b = binary.BigEndian.AppendUint64(b, r.Offset)
	return binary.BigEndian.AppendUint32(b, r.Length)
}

// Reply is a simple reply header.
type Reply struct {
	Magic  uint32
	Error  uint32
	Cookie uint64
}

// ParseReply decodes a simple reply header from b (at least ReplySize
// bytes).
func ParseReply(b []byte) (Reply, error) {
	if len(b) < ReplySize {
		return Reply{}, fmt.Errorf("nbd: short reply: %d bytes", len(b))
	}
	r := Reply{
		Magic:  binary.BigEndian.Uint32(b[0:]),
		Error:  binary.BigEndian.Uint32(b[4:]),
		Cookie: binary.BigEndian.Uint64(b[8:]),
	}
	if r.Magic != ReplyMagic {
		return r, fmt.Errorf("nbd: bad reply magic %#08x", r.Magic)
	}
	return r, nil
}

// putReply writes a simple reply header into b (ReplySize bytes).
func putReply(b []byte, errno uint32, cookie uint64) {
	binary.BigEndian.PutUint32(b[0:], ReplyMagic)
	binary.BigEndian.PutUint32(b[4:], errno)
	binary.BigEndian.PutUint64(b[8:], cookie)
}

// AppendReply appends r's wire form to b.
func AppendReply(b []byte, r Reply) []byte {
	var h [ReplySize]byte
	binary.BigEndian.PutUint32(h[0:], r.Magic)
	binary.BigEndian.PutUint32(h[4:], r.Error)
	binary.BigEndian.PutUint64(h[8:], r.Cookie)
	return append(b, h[:]...)
}
