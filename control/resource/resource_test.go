package resource

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/vigil-ha/vigil/control/config"
	"github.com/vigil-ha/vigil/control/script"
	"github.com/vigil-ha/vigil/dataplane/vip"
)

func TestExecPassesEventAndEnvironment(t *testing.T) {
	f := &script.Fake{}
	e := &Exec{Name: "app1", Runner: f,
		Spec: config.Exec{Start: "/s/start", Stop: "/s/stop", Env: map[string]string{"B": "2", "A": "1"}},
		Env:  Env{Cluster: "c", Server: "n2", Group: "g1"}}
	if err := e.Start(WithEvent(context.Background(), EventFailover)); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	if len(calls) != 2 || calls[0].Path != "/s/start" || calls[1].Path != "/s/stop" {
		t.Fatalf("calls = %+v", calls)
	}
	want := []string{"VIGIL_CLUSTER=c", "VIGIL_SERVER=n2", "VIGIL_GROUP=g1", "VIGIL_RESOURCE=app1", "VIGIL_EVENT=failover", "A=1", "B=2"}
	if !slices.Equal(calls[0].Env, want) {
		t.Errorf("start env = %q, want %q", calls[0].Env, want)
	}
	if !slices.Contains(calls[1].Env, "VIGIL_EVENT=stop") {
		t.Errorf("stop env = %q, want VIGIL_EVENT=stop", calls[1].Env)
	}
}

func TestExecWithoutStopScript(t *testing.T) {
	f := &script.Fake{}
	e := &Exec{Name: "app1", Runner: f, Spec: config.Exec{Start: "/s/start"}}
	if err := e.Stop(context.Background()); err != nil || len(f.Calls()) != 0 {
		t.Fatalf("stop without a script: err %v, calls %v", err, f.Calls())
	}
}

func TestExecFailureNamesResource(t *testing.T) {
	f := &script.Fake{Func: func(context.Context, script.Spec) (script.Result, error) {
		return script.Result{ExitCode: 3}, nil
	}}
	e := &Exec{Name: "app1", Runner: f, Spec: config.Exec{Start: "/s/start"}}
	err := e.Start(context.Background())
	if err == nil || !errors.Is(err, script.ErrExit) {
		t.Fatalf("err = %v, want one wrapping script.ErrExit", err)
	}
}

func TestFloatingIPsShareOneDesiredSet(t *testing.T) {
	a := vip.Binding{Interface: "eth0", Prefix: netip.MustParsePrefix("198.18.0.100/24")}
	b := vip.Binding{Interface: "eth0", Prefix: netip.MustParsePrefix("198.18.0.101/24")}
	fake := vip.NewFake([]vip.Binding{a, b})
	set := NewAddrSet(fake)
	fa, fb := &FloatingIP{Binding: a, Addrs: set}, &FloatingIP{Binding: b, Addrs: set}
	ctx := context.Background()
	for _, step := range []struct {
		do   func(context.Context) error
		want []vip.Binding
	}{
		{fa.Start, []vip.Binding{a}},
		{fb.Start, []vip.Binding{a, b}},
		{fa.Start, []vip.Binding{a, b}}, // idempotent
		{fa.Stop, []vip.Binding{b}},
		{fa.Stop, []vip.Binding{b}},
		{fb.Stop, nil},
	} {
		if err := step.do(ctx); err != nil {
			t.Fatal(err)
		}
		if got := fake.Bound(); !slices.Equal(got, step.want) {
			t.Fatalf("bound = %v, want %v", got, step.want)
		}
	}
}

func TestFloatingIPErrorKeepsDesiredSet(t *testing.T) {
	a := vip.Binding{Interface: "eth0", Prefix: netip.MustParsePrefix("198.18.0.100/24")}
	fake := vip.NewFake([]vip.Binding{a})
	set := NewAddrSet(fake)
	fake.SetError(errors.New("netlink down"))
	if err := (&FloatingIP{Binding: a, Addrs: set}).Start(context.Background()); err == nil {
		t.Fatal("start succeeded while the binder fails")
	}
	if len(set.desired) != 0 {
		t.Fatalf("desired set changed by a failed start: %v", set.desired)
	}
}

func TestFactoryRejectsBadAddressAndUnknownKind(t *testing.T) {
	f := &Factory{Runner: &script.Fake{}, Addrs: NewAddrSet(vip.NewFake(nil))}
	if _, err := f.New("g", &config.Resource{Name: "f", Type: config.KindFloatingIP, FloatingIP: &config.FloatingIP{Address: "nope", Interface: "eth0"}}); err == nil {
		t.Error("bad address accepted")
	}
	if _, err := f.New("g", &config.Resource{Name: "v", Type: config.KindAWSVIP, AWSVIP: &config.AWSVIP{}}); err == nil {
		t.Error("a kind this build lacks was accepted")
	}
}
