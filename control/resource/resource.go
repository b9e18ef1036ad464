// Package resource implements the group resources a node starts and stops:
// exec scripts, floating IP addresses, the AWS resources (aws.go) and mirror
// disks (mirror.go).
package resource

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/control/config"
	"github.com/vigil-ha/vigil/control/monitor"
	"github.com/vigil-ha/vigil/control/script"
	"github.com/vigil-ha/vigil/dataplane/vip"
	"github.com/vigil-ha/vigil/replicator/mirror"
)

// Resource is one group resource on this node.
type Resource interface {
	// Start brings the resource up. Already active is success.
	Start(ctx context.Context) error
	// Stop takes the resource down. Already inactive is success.
	Stop(ctx context.Context) error
}

// Event says why a resource is started or stopped; exec scripts see it as
// VIGIL_EVENT.
type Event string

// Events.
const (
	EventStart    Event = "start"    // cluster start or operator start
	EventFailover Event = "failover" // taken over from a lost or failed server
	EventMove     Event = "move"     // operator move
	EventRecover  Event = "recover"  // reactivation by a monitor's recovery
	EventStop     Event = "stop"
)

type eventKey struct{}

// WithEvent returns a context that tells resources why they are acted on.
func WithEvent(ctx context.Context, ev Event) context.Context {
	return context.WithValue(ctx, eventKey{}, ev)
}

// EventOf returns the event carried by ctx, EventStart by default.
func EventOf(ctx context.Context) Event {
	if ev, ok := ctx.Value(eventKey{}).(Event); ok {
		return ev
	}
	return EventStart
}

// Env describes where a resource runs, for scripts' environment.
type Env struct {
	Cluster string
	Server  string
	Group   string
}

// Factory builds the node's resources.
type Factory struct {
	Env    Env
	Runner script.Runner
	Addrs  *AddrSet
	// AWS reaches AWS for the aws_* kinds; nil refuses them.
	AWS *AWSEnv
	// DefaultInterface is where an aws_vip without an interface binds its
	// VIP: the interface of the default route.
	DefaultInterface string
	// Prepare makes New start an aws_vip's Prepare in the background,
	// bounded by PrepareTimeout, so that a failover finds its checks done.
	Prepare        bool
	PrepareTimeout time.Duration
	// Mirrors are the node's mirror disks by resource name, opened for
	// the daemon's life; a mirror_disk resource not among them is refused.
	Mirrors map[string]*mirror.Disk
}

// New builds the resource r of group as seen from server.
func (f *Factory) New(group string, r *config.Resource) (Resource, error) {
	env := f.Env
	env.Group = group
	switch r.Type {
	case config.KindExec:
		return &Exec{Name: r.Name, Spec: *r.Exec, Env: env, Runner: f.Runner}, nil
	case config.KindFloatingIP:
		b, err := FloatingBinding(r.FloatingIP)
		if err != nil {
			return nil, fmt.Errorf("resource %s: %w", r.Name, err)
		}
		return &FloatingIP{Binding: b, Addrs: f.Addrs}, nil
	case config.KindAWSVIP, config.KindAWSEIP, config.KindAWSDNS:
		if f.AWS == nil {
			return nil, fmt.Errorf("resource %s: type %s needs AWS settings", r.Name, r.Type)
		}
		return f.newAWS(r)
	case config.KindMirrorDisk:
		d := f.Mirrors[r.Name]
		if d == nil {
			return nil, fmt.Errorf("resource %s: mirror disk not opened on this node", r.Name)
		}
		return &MirrorDisk{Disk: d}, nil
	default:
		return nil, fmt.Errorf("resource %s: type %s is not supported by this build", r.Name, r.Type)
	}
}

func (f *Factory) newAWS(r *config.Resource) (Resource, error) {
	switch r.Type {
	case config.KindAWSVIP:
		iface := r.AWSVIP.Interface
		if iface == "" {
			iface = f.DefaultInterface
		}
		if iface == "" {
			return nil, fmt.Errorf("resource %s: no interface for the VIP and no default route", r.Name)
		}
		v, err := NewAWSVIP(r, iface, f.Addrs, f.AWS)
		if err == nil && f.Prepare {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), f.PrepareTimeout)
				defer cancel()
				v.Prepare(ctx)
			}()
		}
		return v, err
	case config.KindAWSEIP:
		return &AWSEIP{Name: r.Name, AllocationID: r.AWSEIP.AllocationID, ENIID: r.AWSEIP.ENIID, AWS: f.AWS}, nil
	default:
		d := r.AWSDNS
		return &AWSDNS{Name: r.Name, ZoneID: d.HostedZoneID, RecordName: d.RecordName, IP: d.IP, TTL: d.TTL,
			DeleteOnStop: d.DeleteOnStop, WaitInSync: d.WaitInSync, CheckResolution: d.CheckResolution, AWS: f.AWS}, nil
	}
}

// Checker builds the checker of a monitor added automatically with its
// resource (aws_vip, aws_eip, aws_dns): the resource, as server sees it,
// checking itself.
func (f *Factory) Checker(c *config.Config, m *config.Monitor, server string) (monitor.Checker, error) {
	_, r := c.Resource(m.Resource)
	if r == nil {
		return nil, fmt.Errorf("monitor %s: no resource %q", m.Name, m.Resource)
	}
	res, err := f.New("", r.For(server))
	if err != nil {
		return nil, err
	}
	ch, ok := res.(monitor.Checker)
	if !ok {
		return nil, fmt.Errorf("monitor %s: resource %s of type %s has no check", m.Name, r.Name, r.Type)
	}
	return ch, nil
}

// FloatingBinding turns a floating_ip resource into the binding it makes.
func FloatingBinding(f *config.FloatingIP) (vip.Binding, error) {
	p, err := netip.ParsePrefix(f.Address)
	if err != nil {
		return vip.Binding{}, fmt.Errorf("floating ip address %q: %w", f.Address, err)
	}
	return vip.Binding{Interface: f.Interface, Prefix: p, Quiet: !f.GratuitousARP}, nil
}

// Exec runs the start and stop scripts of an application.
type Exec struct {
	Name   string
	Spec   config.Exec
	Env    Env
	Runner script.Runner
}

// Start runs the start script.
func (e *Exec) Start(ctx context.Context) error { return e.run(ctx, e.Spec.Start, EventOf(ctx)) }

// Stop runs the stop script, if any.
func (e *Exec) Stop(ctx context.Context) error {
	if e.Spec.Stop == "" {
		return nil
	}
	return e.run(ctx, e.Spec.Stop, EventStop)
}

func (e *Exec) run(ctx context.Context, path string, ev Event) error {
	env := []string{
		"VIGIL_CLUSTER=" + e.Env.Cluster,
		"VIGIL_SERVER=" + e.Env.Server,
		"VIGIL_GROUP=" + e.Env.Group,
		"VIGIL_RESOURCE=" + e.Name,
		"VIGIL_EVENT=" + string(ev),
	}
	keys := make([]string, 0, len(e.Spec.Env))
	for k := range e.Spec.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, k+"="+e.Spec.Env[k])
	}
	spec := script.Spec{Path: path, Env: env}
	if dl, ok := ctx.Deadline(); ok {
		spec.Timeout = timeUntil(dl)
	}
	if _, err := e.Runner.Run(ctx, spec); err != nil {
		return fmt.Errorf("exec %s: %w", e.Name, err)
	}
	return nil
}

// AddrSet is the set of floating addresses this node wants bound; every
// change hands the whole desired set to the binder in one idempotent call.
type AddrSet struct {
	mu      sync.Mutex
	binder  vip.Binder
	desired []vip.Binding
	// OnBound, when set before use, is called after each binding this set
	// newly binds (the daemon arms the VIP's traffic accounting there).
	OnBound func(vip.Binding)
}

// NewAddrSet returns an empty set over binder.
func NewAddrSet(b vip.Binder) *AddrSet { return &AddrSet{binder: b} }

func (s *AddrSet) change(b vip.Binding, want bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := slices.DeleteFunc(slices.Clone(s.desired), func(x vip.Binding) bool { return x == b })
	if want {
		next = append(next, b)
	}
	if err := s.binder.Set(next); err != nil {
		return err
	}
	added := want && !slices.Contains(s.desired, b)
	s.desired = next
	if added && s.OnBound != nil {
		s.OnBound(b)
	}
	return nil
}

// FloatingIP is an address bound to an interface while the group runs here.
type FloatingIP struct {
	Binding vip.Binding
	Addrs   *AddrSet
}

// Start binds the address.
func (f *FloatingIP) Start(context.Context) error { return f.Addrs.change(f.Binding, true) }

// Stop unbinds the address.
func (f *FloatingIP) Stop(context.Context) error { return f.Addrs.change(f.Binding, false) }

// String names the binding for logs.
func (f *FloatingIP) String() string {
	return strings.Join([]string{f.Binding.Prefix.String(), f.Binding.Interface}, " on ")
}
