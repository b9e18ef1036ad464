package vigiltest

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// CrossAZ is the link between two Availability Zones the VM suites
// emulate: each direction delays 1 ms ± 0.3 ms and loses 1 % of packets,
// as `tc qdisc add dev X root netem delay 1ms 0.3ms loss 1%` does.
var CrossAZ = netlink.NetemQdiscAttrs{Latency: 1000, Jitter: 300, Loss: 1}

// AddNetem puts a netem qdisc with attrs at the root of link name, in the
// caller's network namespace.
func AddNetem(name string, attrs netlink.NetemQdiscAttrs) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("netem on %s: %w", name, err)
	}
	q := netlink.NewNetem(netlink.QdiscAttrs{
		LinkIndex: l.Attrs().Index,
		Handle:    netlink.MakeHandle(1, 0),
		Parent:    netlink.HANDLE_ROOT,
	}, attrs)
	if err := netlink.QdiscAdd(q); err != nil {
		return fmt.Errorf("add netem qdisc on %s: %w", name, err)
	}
	return nil
}
