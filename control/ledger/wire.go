package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Service is a node's cluster service state as it travels in its payload.
type Service uint8

// Service states.
const (
	ServiceStarting Service = iota
	ServiceRunning
	ServiceStopped
	ServiceRefused
	ServiceIsolated
	numServices
)

var serviceNames = [...]string{"starting", "running", "stopped", "refused", "isolated"}

// String returns the service state's name as status shows it.
func (s Service) String() string {
	if s < numServices {
		return serviceNames[s]
	}
	return fmt.Sprintf("service(%d)", uint8(s))
}

// GroupView is what a node says of one group: the record as it knows it and
// whether it runs any of the group's resources itself.
type GroupView struct {
	Record Record
	// Active is set while the node has the group starting, online, stopping
	// or failed to stop: resources may be in place there.
	Active bool
}

// Payload is a node's state, carried in its heartbeat probes.
type Payload struct {
	Service Service
	Groups  []GroupView
}

const (
	payloadVersion = 1
	headerLen      = 3
	groupLen       = 4 + 4 + 1 + 1 + 1 + 1 + 8
	// MaxGroups is the most groups a payload carries.
	MaxGroups = 48

	flagStopped = 1 << 0
	flagActive  = 1 << 1
	knownFlags  = flagStopped | flagActive
)

// ErrMalformed is returned for a payload that cannot be decoded.
var ErrMalformed = errors.New("malformed payload")

// AppendEncode appends the payload's wire form to b.
func (p Payload) AppendEncode(b []byte) ([]byte, error) {
	if len(p.Groups) > MaxGroups {
		return b, fmt.Errorf("encode payload: %d groups, at most %d", len(p.Groups), MaxGroups)
	}
	b = append(b, payloadVersion, byte(p.Service), byte(len(p.Groups)))
	for _, g := range p.Groups {
		r := g.Record
		b = binary.BigEndian.AppendUint32(b, r.Gen)
		b = binary.BigEndian.AppendUint32(b, r.Seq)
		b = append(b, r.Owner, byte(r.State))
		var flags byte
		if r.Stopped {
			flags |= flagStopped
		}
		if g.Active {
			flags |= flagActive
		}
		b = append(b, flags, byte(r.Cause))
		b = binary.BigEndian.AppendUint64(b, r.FailedMask)
	}
	return b, nil
}

// Decode parses a payload received from the network.
func Decode(b []byte) (Payload, error) {
	if len(b) < headerLen {
		return Payload{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if b[0] != payloadVersion {
		return Payload{}, fmt.Errorf("%w: version %d", ErrMalformed, b[0])
	}
	svc := Service(b[1])
	if svc >= numServices {
		return Payload{}, fmt.Errorf("%w: service %d", ErrMalformed, b[1])
	}
	n := int(b[2])
	if n > MaxGroups || len(b) != headerLen+n*groupLen {
		return Payload{}, fmt.Errorf("%w: %d groups in %d bytes", ErrMalformed, n, len(b))
	}
	p := Payload{Service: svc, Groups: make([]GroupView, n)}
	for i := range n {
		g := b[headerLen+i*groupLen:]
		r := Record{
			Gen:        binary.BigEndian.Uint32(g[0:]),
			Seq:        binary.BigEndian.Uint32(g[4:]),
			Owner:      g[8],
			State:      State(g[9]),
			Cause:      Cause(g[11]),
			FailedMask: binary.BigEndian.Uint64(g[12:]),
		}
		flags := g[10]
		if r.State >= numStates {
			return Payload{}, fmt.Errorf("%w: group %d state %d", ErrMalformed, i, g[9])
		}
		if r.Cause >= numCauses {
			return Payload{}, fmt.Errorf("%w: group %d cause %d", ErrMalformed, i, g[11])
		}
		if flags&^knownFlags != 0 {
			return Payload{}, fmt.Errorf("%w: group %d flags %#x", ErrMalformed, i, flags)
		}
		if r.Owner != NoOwner && r.Owner >= MaxServers {
			return Payload{}, fmt.Errorf("%w: group %d owner %d", ErrMalformed, i, r.Owner)
		}
		r.Stopped = flags&flagStopped != 0
		p.Groups[i] = GroupView{Record: r, Active: flags&flagActive != 0}
	}
	return p, nil
}
