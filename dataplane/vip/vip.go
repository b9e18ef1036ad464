// Package vip binds floating addresses (VIPs) to local interfaces.
//
// The control layer computes which of a fixed, configured set of bindings
// must be present on this node and hands the whole answer down in one
// idempotent call, Binder.Set; Binder.CleanUp removes every binding of the
// set, whatever a crashed predecessor left behind. Addresses outside the
// managed set are never touched. Netlink is the real Binder, Fake the
// in-memory one for tests of the layers above.
package vip

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
)

// ErrLinkNotFound is wrapped by the error Set returns when a binding's
// interface does not exist.
var ErrLinkNotFound = errors.New("link not found")

// Binding is one address on one interface.
type Binding struct {
	// Interface is the interface's name, such as "eth0".
	Interface string
	// Prefix holds the address and its prefix length, such as
	// 198.18.100.10/24; the host bits are kept.
	Prefix netip.Prefix
	// Quiet binds without gratuitous ARP: where a VPC's route tables, not
	// ARP, decide who receives the address (aws_vip).
	Quiet bool
}

// String formats b as "198.18.100.10/24 on eth0".
func (b Binding) String() string { return b.Prefix.String() + " on " + b.Interface }

func (b Binding) validate() error {
	switch {
	case b.Interface == "":
		return fmt.Errorf("binding %s: no interface", b.Prefix)
	case len(b.Interface) > 15:
		return fmt.Errorf("binding %s: interface name longer than 15 bytes", b)
	case !b.Prefix.IsValid():
		return fmt.Errorf("binding on %s: invalid prefix", b.Interface)
	case b.Prefix.Addr().Is4In6():
		return fmt.Errorf("binding %s: IPv4-mapped IPv6 address, use the IPv4 form", b)
	case b.Prefix.Addr().Zone() != "":
		return fmt.Errorf("binding %s: address has a zone", b)
	}
	return nil
}

// Binder converges the managed bindings of this node.
type Binder interface {
	// Set makes exactly the desired bindings present among the managed
	// ones: a managed binding not in desired is removed; one in desired is
	// added if absent. It is idempotent and safe to call repeatedly.
	// Desired bindings outside the managed set are an error, and then
	// nothing is changed.
	Set(desired []Binding) error
	// CleanUp removes every managed binding (what a crashed predecessor
	// left behind).
	CleanUp() error
	// IsBound reports whether b is present on its interface now, as the
	// system sees it (a monitor's question, not the desired state).
	IsBound(b Binding) (bool, error)
}

// plan checks managed and desired and returns desired deduplicated, in
// order, with a set of it.
func plan(managed, desired []Binding) ([]Binding, map[Binding]bool, error) {
	isManaged := make(map[Binding]bool, len(managed))
	for _, b := range managed {
		if err := b.validate(); err != nil {
			return nil, nil, fmt.Errorf("managed %w", err)
		}
		isManaged[b] = true
	}
	want := make(map[Binding]bool, len(desired))
	var ordered []Binding
	for _, b := range desired {
		if err := b.validate(); err != nil {
			return nil, nil, fmt.Errorf("desired %w", err)
		}
		if !isManaged[b] {
			return nil, nil, fmt.Errorf("desired binding %s is not managed", b)
		}
		if !want[b] {
			want[b] = true
			ordered = append(ordered, b)
		}
	}
	return ordered, want, nil
}

// dedup returns bs without repeats, in order.
func dedup(bs []Binding) []Binding {
	seen := make(map[Binding]bool, len(bs))
	out := make([]Binding, 0, len(bs))
	for _, b := range bs {
		if !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	return out
}

func compareBindings(a, b Binding) int {
	if c := cmp.Compare(a.Interface, b.Interface); c != 0 {
		return c
	}
	if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits())
}

// Fake is an in-memory Binder. It validates its input as Netlink does and
// records what is bound. Its methods are safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	managed []Binding
	bound   map[Binding]bool
	err     error
	sets    int
}

// NewFake returns a Fake that manages the given bindings, none bound.
func NewFake(managed []Binding) *Fake {
	return &Fake{managed: dedup(managed), bound: make(map[Binding]bool)}
}

// Set implements Binder.
func (f *Fake) Set(desired []Binding) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets++
	if f.err != nil {
		return f.err
	}
	_, want, err := plan(f.managed, desired)
	if err != nil {
		return fmt.Errorf("set: %w", err)
	}
	for _, b := range f.managed {
		if want[b] {
			f.bound[b] = true
		} else {
			delete(f.bound, b)
		}
	}
	return nil
}

// IsBound implements Binder.
func (f *Fake) IsBound(b Binding) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bound[b], f.err
}

// CleanUp implements Binder.
func (f *Fake) CleanUp() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	for _, b := range f.managed {
		delete(f.bound, b)
	}
	return nil
}

// Bound returns what is bound, managed or preloaded, sorted by interface
// and address.
func (f *Fake) Bound() []Binding {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Binding, 0, len(f.bound))
	for b := range f.bound {
		out = append(out, b)
	}
	slices.SortFunc(out, compareBindings)
	return out
}

// Preload makes bs bound as if a predecessor (or the administrator) had
// bound them; CleanUp then removes the managed ones among them.
func (f *Fake) Preload(bs ...Binding) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range bs {
		f.bound[b] = true
	}
}

// SetError makes Set and CleanUp fail with err, changing nothing, until it
// is called again with nil.
func (f *Fake) SetError(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// Sets returns how many times Set was called.
func (f *Fake) Sets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sets
}
