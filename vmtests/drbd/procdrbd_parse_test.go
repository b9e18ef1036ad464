package drbd

import (
	"reflect"
	"strings"
	"testing"
)

// A /proc/drbd of the 6.1 kernel's DRBD 8.4 during a resync, as the VM
// showed it.
const procSyncing = `version: 8.4.11 (api:1/proto:86-101)
srcversion: F73C670A7EC572DB9CF3E5B 
 0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----
    ns:8056 nr:0 dw:0 dr:8056 al:8 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:24672
	[====>...............] sync'ed: 25.0% (24672/32728)K
	finish: 0:00:14 speed: 1,608 (1,608) K/sec
 1: cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate C r-----
    ns:0 nr:8056 dw:8056 dr:0 al:8 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:24672
 2: cs:StandAlone ro:Secondary/Unknown ds:Diskless/DUnknown   r-----
`

func TestParseProcDRBD(t *testing.T) {
	got, err := parseProcDRBD(procSyncing)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]minorState{
		0: {Conn: "SyncSource", Role: "Primary", PeerRole: "Secondary", Disk: "UpToDate", PeerDisk: "Inconsistent", OutOfSync: 24672},
		1: {Conn: "SyncTarget", Role: "Secondary", PeerRole: "Primary", Disk: "Inconsistent", PeerDisk: "UpToDate", OutOfSync: 24672},
		2: {Conn: "StandAlone", Role: "Secondary", PeerRole: "Unknown", Disk: "Diskless", PeerDisk: "DUnknown"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestParseProcDRBDEmpty(t *testing.T) {
	got, err := parseProcDRBD("version: 8.4.11 (api:1/proto:86-101)\nsrcversion: F73C670A7EC572DB9CF3E5B\n")
	if err != nil || len(got) != 0 {
		t.Fatalf("got %v, %v; want no devices", got, err)
	}
}

func TestParseProcDRBDBad(t *testing.T) {
	for name, text := range map[string]string{
		"no role":       " 0: cs:Connected ds:UpToDate/UpToDate C\n",
		"role no slash": " 0: cs:Connected ro:Primary ds:UpToDate/UpToDate C\n",
		"disk no slash": " 0: cs:Connected ro:Primary/Secondary ds:UpToDate C\n",
		"bad oos":       " 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C\n    ns:0 oos:x\n",
		"negative":      " -1: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C\n",
	} {
		if got, err := parseProcDRBD(text); err == nil {
			t.Errorf("%s: got %+v, want an error", name, got)
		} else if !strings.Contains(err.Error(), "/proc/drbd") {
			t.Errorf("%s: error %q does not say /proc/drbd", name, err)
		}
	}
}
