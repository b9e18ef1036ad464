package vip

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func bind(iface, prefix string) Binding {
	return Binding{Interface: iface, Prefix: netip.MustParsePrefix(prefix)}
}

var _ Binder = (*Fake)(nil)

func TestFakeConverges(t *testing.T) {
	v1 := bind("eth0", "198.18.100.10/24")
	v2 := bind("eth0", "198.18.100.11/32")
	v3 := bind("eth1", "198.18.101.10/24")
	f := NewFake([]Binding{v1, v2, v3, v1})

	steps := []struct {
		desired []Binding
		want    []Binding
	}{
		{[]Binding{v2, v1}, []Binding{v1, v2}},
		{[]Binding{v2, v1, v1}, []Binding{v1, v2}}, // again, with a repeat
		{[]Binding{v3}, []Binding{v3}},
		{nil, []Binding{}},
	}
	for i, s := range steps {
		if err := f.Set(s.desired); err != nil {
			t.Fatalf("step %d: Set: %v", i, err)
		}
		if got := f.Bound(); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("step %d: Bound = %v, want %v", i, got, s.want)
		}
	}
	if f.Sets() != len(steps) {
		t.Errorf("Sets = %d, want %d", f.Sets(), len(steps))
	}
}

func TestFakeRejectsUnmanaged(t *testing.T) {
	v1 := bind("eth0", "198.18.100.10/24")
	f := NewFake([]Binding{v1})
	if err := f.Set([]Binding{v1}); err != nil {
		t.Fatal(err)
	}
	err := f.Set([]Binding{bind("eth0", "198.18.100.10/32")})
	if err == nil || !strings.Contains(err.Error(), "198.18.100.10/32 on eth0 is not managed") {
		t.Fatalf("Set(unmanaged) error = %v", err)
	}
	if got := f.Bound(); !reflect.DeepEqual(got, []Binding{v1}) {
		t.Errorf("a rejected Set changed the bindings: %v", got)
	}
}

func TestFakeCleanUpAndErrors(t *testing.T) {
	v1 := bind("eth0", "198.18.100.10/24")
	other := bind("eth0", "198.18.100.1/24")
	f := NewFake([]Binding{v1})
	f.Preload(v1, other)
	if err := f.CleanUp(); err != nil {
		t.Fatal(err)
	}
	if got := f.Bound(); !reflect.DeepEqual(got, []Binding{other}) {
		t.Errorf("after CleanUp Bound = %v, want only %v", got, other)
	}

	boom := errors.New("boom")
	f.SetError(boom)
	if err := f.Set([]Binding{v1}); !errors.Is(err, boom) {
		t.Errorf("Set error = %v, want boom", err)
	}
	if got := f.Bound(); !reflect.DeepEqual(got, []Binding{other}) {
		t.Errorf("a failing Set changed the bindings: %v", got)
	}
	f.SetError(nil)
	if err := f.Set([]Binding{v1}); err != nil {
		t.Errorf("Set after SetError(nil): %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		b    Binding
		want string
	}{
		{Binding{Interface: "eth0"}, "invalid prefix"},
		{Binding{Prefix: netip.MustParsePrefix("198.18.0.1/32")}, "no interface"},
		{bind("a-very-long-ifname", "198.18.0.1/32"), "longer than 15"},
		{bind("eth0", "::ffff:198.18.0.1/128"), "IPv4-mapped"},
	} {
		f := NewFake([]Binding{tc.b})
		err := f.Set(nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("managed %#v: error = %v, want it to contain %q", tc.b, err, tc.want)
		}
	}
}

func TestBindingString(t *testing.T) {
	if got := bind("eth0", "198.18.100.10/24").String(); got != "198.18.100.10/24 on eth0" {
		t.Errorf("String = %q", got)
	}
}
