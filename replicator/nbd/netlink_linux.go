package nbd

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The kernel's nbd generic netlink family (include/uapi/linux/nbd-netlink.h).
const (
	genlName    = "nbd"
	genlVersion = 1

	cmdConnect    = 1
	cmdDisconnect = 2
	cmdStatus     = 5

	attrIndex          = 1
	attrSizeBytes      = 2
	attrBlockSizeBytes = 3
	attrTimeout        = 4
	attrServerFlags    = 5
	attrSockets        = 7
	attrDeviceList     = 9
	attrBackend        = 10

	sockItem = 1
	sockFD   = 1

	deviceItem      = 1
	deviceIndex     = 1
	deviceConnected = 2
)

// netlinkTimeout bounds one request's wait for the kernel's answer.
const netlinkTimeout = 30 * time.Second

// genl is a connection to the nbd family.
type genl struct {
	c   *genetlink.Conn
	fam genetlink.Family
}

// dialGenl connects to the kernel's nbd family; ErrNoDriver if the nbd
// module is not loaded. The family lives in the initial network namespace
// only (the kernel does not mark it netns-aware), while nbd devices are
// global: a process in another network namespace (a node under test, a
// daemon in a container sharing the host's devices) talks to it through a
// socket opened in PID 1's namespace.
func dialGenl() (*genl, error) {
	g, err := dialGenlIn(0)
	if !errors.Is(err, ErrNoDriver) {
		return g, err
	}
	initNS, oerr := os.Open("/proc/1/ns/net")
	if oerr != nil {
		return nil, err
	}
	defer initNS.Close()
	var own, initial unix.Stat_t
	if unix.Stat("/proc/thread-self/ns/net", &own) != nil || unix.Fstat(int(initNS.Fd()), &initial) != nil ||
		(own.Dev == initial.Dev && own.Ino == initial.Ino) {
		return nil, err
	}
	return dialGenlIn(int(initNS.Fd()))
}

// dialGenlIn connects to the nbd family through a socket in the network
// namespace netns (a file descriptor; 0 is the caller's).
func dialGenlIn(netns int) (*genl, error) {
	c, err := genetlink.Dial(&netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("dial generic netlink: %w", err)
	}
	fam, err := c.GetFamily(genlName)
	if err != nil {
		c.Close()
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) {
			return nil, ErrNoDriver
		}
		return nil, fmt.Errorf("generic netlink family %q: %w", genlName, err)
	}
	return &genl{c: c, fam: fam}, nil
}

func (g *genl) Close() error { return g.c.Close() }

// execute sends one command and returns the kernel's replies. With ack
// the kernel answers a success with an acknowledgement only (commands
// without a reply message); without it, with its reply message (errors
// come back either way). Asking for both would leave the acknowledgement
// behind the reply, to be read as the next command's answer.
func (g *genl) execute(cmd uint8, ae *netlink.AttributeEncoder, ack bool) ([]genetlink.Message, error) {
	data, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	flags := netlink.Request
	if ack {
		flags |= netlink.Acknowledge
	}
	if err := g.c.SetDeadline(time.Now().Add(netlinkTimeout)); err != nil {
		return nil, err
	}
	return g.c.Execute(genetlink.Message{
		Header: genetlink.Header{Command: cmd, Version: genlVersion},
		Data:   data,
	}, g.fam.ID, flags)
}

// connectConfig is an NBD_CMD_CONNECT.
type connectConfig struct {
	index     int // AnyIndex: the kernel picks
	size      int64
	blockSize int
	flags     uint64 // server flags
	timeout   time.Duration
	fds       []int
	backend   string
}

// connect configures a device with the sockets fds and returns its index.
func (g *genl) connect(cfg connectConfig) (int, error) {
	ae := netlink.NewAttributeEncoder()
	if cfg.index >= 0 {
		ae.Uint32(attrIndex, uint32(cfg.index))
	}
	ae.Uint64(attrSizeBytes, uint64(cfg.size))
	ae.Uint64(attrBlockSizeBytes, uint64(cfg.blockSize))
	ae.Uint64(attrServerFlags, cfg.flags)
	if cfg.timeout > 0 {
		ae.Uint64(attrTimeout, uint64((cfg.timeout+time.Second-1)/time.Second))
	}
	if cfg.backend != "" {
		ae.String(attrBackend, cfg.backend)
	}
	ae.Nested(attrSockets, func(nae *netlink.AttributeEncoder) error {
		for _, fd := range cfg.fds {
			nae.Nested(sockItem, func(s *netlink.AttributeEncoder) error {
				s.Uint32(sockFD, uint32(fd))
				return nil
			})
		}
		return nil
	})
	msgs, err := g.execute(cmdConnect, ae, false)
	if err != nil {
		return -1, err
	}
	for _, m := range msgs {
		ad, err := netlink.NewAttributeDecoder(m.Data)
		if err != nil {
			return -1, fmt.Errorf("connect reply: %w", err)
		}
		for ad.Next() {
			if ad.Type() == attrIndex {
				return int(ad.Uint32()), nil
			}
		}
		if err := ad.Err(); err != nil {
			return -1, fmt.Errorf("connect reply: %w", err)
		}
	}
	return -1, errors.New("connect reply: no device index")
}

// disconnect disconnects device index: the kernel sends DISC on each
// socket, shuts them down and fails the requests still in flight.
func (g *genl) disconnect(index int) error {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrIndex, uint32(index))
	_, err := g.execute(cmdDisconnect, ae, true)
	return err
}

// deviceStatus is one device of an NBD_CMD_STATUS reply.
type deviceStatus struct {
	index int
	inUse bool
}

// status returns the status of device index, or of every device for
// AnyIndex.
func (g *genl) status(index int) ([]deviceStatus, error) {
	ae := netlink.NewAttributeEncoder()
	if index >= 0 {
		ae.Uint32(attrIndex, uint32(index))
	}
	msgs, err := g.execute(cmdStatus, ae, false)
	if err != nil {
		return nil, err
	}
	var out []deviceStatus
	for _, m := range msgs {
		ad, err := netlink.NewAttributeDecoder(m.Data)
		if err != nil {
			return nil, fmt.Errorf("status reply: %w", err)
		}
		for ad.Next() {
			if ad.Type() != attrDeviceList {
				continue
			}
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					if list.Type() != deviceItem {
						continue
					}
					d := deviceStatus{index: -1}
					list.Nested(func(item *netlink.AttributeDecoder) error {
						for item.Next() {
							switch item.Type() {
							case deviceIndex:
								d.index = int(item.Uint32())
							case deviceConnected:
								d.inUse = item.Uint8() != 0
							}
						}
						return nil
					})
					if d.index >= 0 {
						out = append(out, d)
					}
				}
				return nil
			})
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("status reply: %w", err)
		}
	}
	return out, nil
}
