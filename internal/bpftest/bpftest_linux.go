package bpftest

import (
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

//go:generate go tool bpf2go -tags linux -target bpfel testdrop ../../bpf/testdrop.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror

// links closes a set of links and the programs behind them.
type links struct {
	links []link.Link
	progs []*ebpf.Program
}

// Close detaches and frees everything; it may be called more than once.
func (l *links) Close() error {
	var errs []error
	for _, k := range l.links {
		if err := k.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range l.progs {
		if err := p.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	l.links, l.progs = nil, nil
	return errors.Join(errs...)
}

// DropAll drops every packet iface sends or receives, with a TC program on
// its tcx egress and ingress hooks, until the returned Closer is closed. It
// runs in the calling thread's network namespace.
//
// XDP runs before tcx ingress and XDP_TX bypasses tcx egress, so on an
// interface with an XDP program the frames that program handles are not
// dropped: cut the link on the other end, or on both.
func DropAll(iface string) (io.Closer, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("drop all on %s: %w", iface, err)
	}
	var objs testdropObjects
	if err := loadTestdropObjects(&objs, nil); err != nil {
		return nil, fmt.Errorf("drop all on %s: load: %w", iface, err)
	}
	l := &links{progs: []*ebpf.Program{objs.BpftestDrop}}
	for _, at := range []ebpf.AttachType{ebpf.AttachTCXEgress, ebpf.AttachTCXIngress} {
		k, err := link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: objs.BpftestDrop, Attach: at})
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("drop all on %s: attach tcx %s: %w", iface, at, err)
		}
		l.links = append(l.links, k)
	}
	return l, nil
}

// XDPPassProgram returns a new XDP program named "bpftest_pass" that passes
// every packet.
func XDPPassProgram() (*ebpf.Program, error) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "bpftest_pass",
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}, // XDP_PASS
	})
	if err != nil {
		return nil, fmt.Errorf("load xdp pass: %w", err)
	}
	return p, nil
}

// XDPPass attaches an XDP program that passes every packet to iface in
// native mode. On a veth end this enables the NAPI instance that native
// XDP_TX from the other end needs; without it the kernel drops those frames.
func XDPPass(iface string) (io.Closer, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("xdp pass on %s: %w", iface, err)
	}
	p, err := XDPPassProgram()
	if err != nil {
		return nil, fmt.Errorf("xdp pass on %s: %w", iface, err)
	}
	k, err := link.AttachXDP(link.XDPOptions{Program: p, Interface: ifi.Index, Flags: link.XDPDriverMode})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("xdp pass on %s: attach: %w", iface, err)
	}
	return &links{links: []link.Link{k}, progs: []*ebpf.Program{p}}, nil
}
