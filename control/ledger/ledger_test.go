package ledger

import (
	"errors"
	"reflect"
	"testing"
)

func rankOf(order ...uint8) func(uint8) int {
	return func(s uint8) int {
		for i, o := range order {
			if o == s {
				return i
			}
		}
		return -1
	}
}

func TestSupersedes(t *testing.T) {
	rank := rankOf(0, 1, 2)
	cases := []struct {
		name string
		a, b Record
		want bool
	}{
		{"higher generation wins", Record{Gen: 3, Owner: 2}, Record{Gen: 2, Owner: 0, Seq: 9}, true},
		{"lower generation loses", Record{Gen: 1, Owner: 0}, Record{Gen: 2, Owner: 2}, false},
		{"same gen: higher-priority owner wins", Record{Gen: 2, Owner: 0}, Record{Gen: 2, Owner: 1, Seq: 5}, true},
		{"same gen: lower-priority owner loses", Record{Gen: 2, Owner: 1, Seq: 5}, Record{Gen: 2, Owner: 0}, false},
		{"same gen: an owner beats no owner", Record{Gen: 2, Owner: 2}, Record{Gen: 2, Owner: NoOwner}, true},
		{"same owner: higher seq wins", Record{Gen: 2, Owner: 1, Seq: 4}, Record{Gen: 2, Owner: 1, Seq: 3}, true},
		{"identical: neither", Record{Gen: 2, Owner: 1, Seq: 4}, Record{Gen: 2, Owner: 1, Seq: 4}, false},
		{"unknown server ranks below known", Record{Gen: 2, Owner: 7}, Record{Gen: 2, Owner: 2}, false},
	}
	for _, c := range cases {
		if got := Supersedes(c.a, c.b, rank); got != c.want {
			t.Errorf("%s: Supersedes = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	p := Payload{Service: ServiceRunning, Groups: []GroupView{
		{Record: Record{Gen: 7, Seq: 3, Owner: 1, State: Online, FailedMask: 1 << 0, Cause: CauseFailover}, Active: true},
		{Record: Record{Gen: 2, Owner: NoOwner, State: Offline, Stopped: true}},
	}}
	b, err := p.AppendEncode(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("round trip: got %+v, want %+v", got, p)
	}
}

func TestDecodeRejects(t *testing.T) {
	good, _ := Payload{Service: ServiceRunning, Groups: []GroupView{{Record: Record{Gen: 1, Owner: 0}}}}.AppendEncode(nil)
	mutate := func(i int, v byte) []byte {
		b := append([]byte(nil), good...)
		b[i] = v
		return b
	}
	cases := map[string][]byte{
		"empty":     nil,
		"short":     good[:2],
		"version":   mutate(0, 9),
		"service":   mutate(1, 200),
		"count":     mutate(2, 2),
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte(nil), good...), 0),
		"state":     mutate(headerLen+9, 99),
		"flags":     mutate(headerLen+10, 0x80),
		"owner":     mutate(headerLen+8, 64),
		"too many":  mutate(2, MaxGroups+1),
	}
	for name, b := range cases {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Decode err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestEncodeTooManyGroups(t *testing.T) {
	p := Payload{Groups: make([]GroupView, MaxGroups+1)}
	if _, err := p.AppendEncode(nil); err == nil {
		t.Fatal("encoding more than MaxGroups groups succeeded")
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := Payload{Service: ServiceRunning, Groups: []GroupView{
		{Record: Record{Gen: 7, Seq: 3, Owner: 1, State: Online}, Active: true},
	}}.AppendEncode(nil)
	f.Add(good)
	f.Add([]byte{1, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		again, err := p.AppendEncode(nil)
		if err != nil {
			t.Fatalf("re-encode of a decoded payload: %v", err)
		}
		if !reflect.DeepEqual(again, b) {
			t.Fatalf("re-encode differs: %x vs %x", again, b)
		}
	})
}
