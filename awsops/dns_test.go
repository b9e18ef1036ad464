package awsops_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/awsops"
	"github.com/vigil-ha/vigil/awsops/awsemu"
)

// recordValues returns the values of the zone's A record set, nil when
// absent.
func (e *env) recordValues(t *testing.T, name string) []string {
	t.Helper()
	for _, z := range e.emu.Server.Snapshot().HostedZones {
		if z.ID != zoneID {
			continue
		}
		for _, r := range z.Records {
			if r.Name == name && r.Type == "A" {
				return r.Values
			}
		}
	}
	return nil
}

func TestDNSRecordLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	res := e.resolver()
	srv1 := awsops.Record{ZoneID: zoneID, Name: "srv.vigil.test.", IP: ip1, TTL: 60}
	srv2 := awsops.Record{ZoneID: "/hostedzone/" + zoneID, Name: "srv.vigil.test", IP: ip2, TTL: 60}

	if err := e.client.CheckRecord(ctx, srv1); err != nil {
		t.Fatalf("existing record: %v", err)
	}
	if err := awsops.CheckResolves(ctx, res, srv1.Name, ip1); err != nil {
		t.Fatalf("existing record resolves: %v", err)
	}

	// Failover: server 2 upserts the record.
	if err := e.client.UpsertRecord(ctx, srv2, true); err != nil {
		t.Fatal(err)
	}
	if v := e.recordValues(t, "srv.vigil.test."); len(v) != 1 || v[0] != "10.0.120.10" {
		t.Fatalf("record holds %v", v)
	}
	if err := e.client.CheckRecord(ctx, srv2); err != nil {
		t.Fatal(err)
	}
	if err := awsops.CheckResolves(ctx, res, "srv.vigil.test", ip2); err != nil {
		t.Fatal(err)
	}
	// Server 1's monitor sees codes 8 and 10.
	wantErr(t, e.client.CheckRecord(ctx, srv1), awsops.CodeRecordOtherIP,
		"The record set holds an IP address other than the setting. (srv.vigil.test.: 10.0.120.10, expected 10.0.110.10)", "srv.vigil.test.")
	wantErr(t, awsops.CheckResolves(ctx, res, "srv.vigil.test.", ip1), awsops.CodeResolvesOther,
		"The name resolves to an IP address other than the setting. (srv.vigil.test.: 10.0.120.10, expected 10.0.110.10)", "srv.vigil.test.")

	// Server 1 stopping late leaves server 2's record alone.
	if err := e.client.DeleteRecord(ctx, srv1); err != nil {
		t.Fatal(err)
	}
	if v := e.recordValues(t, "srv.vigil.test."); len(v) != 1 {
		t.Fatalf("a foreign delete removed the record: %v", v)
	}
	// Server 2 stopping deletes it; again is success.
	for range 2 {
		if err := e.client.DeleteRecord(ctx, srv2); err != nil {
			t.Fatal(err)
		}
	}
	if v := e.recordValues(t, "srv.vigil.test."); v != nil {
		t.Fatalf("record still holds %v", v)
	}
	// Codes 7 and 9.
	wantErr(t, e.client.CheckRecord(ctx, srv2), awsops.CodeRecordMissing,
		"The record set does not exist. (srv.vigil.test.)", "srv.vigil.test.")
	err := awsops.CheckResolves(ctx, res, "srv.vigil.test.", ip2)
	if awsops.CodeOf(err) != awsops.CodeResolveFailed {
		t.Fatalf("deleted name: %v (code %d)", err, awsops.CodeOf(err))
	}
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Fatalf("cause %v is not the resolver's not-found", errors.Unwrap(err))
	}
}

func TestDNSZoneNotFound(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	r := awsops.Record{ZoneID: "ZNOTHERE", Name: "srv.vigil.test.", IP: ip1}
	msg := "No hosted zone found with ID: ZNOTHERE"
	for name, err := range map[string]error{
		"upsert": e.client.UpsertRecord(ctx, r, false),
		"delete": e.client.DeleteRecord(ctx, r),
		"check":  e.client.CheckRecord(ctx, r),
	} {
		ae := wantErr(t, err, awsops.CodeAWSFailed, msg, "ZNOTHERE")
		if ae.AWSCode != "NoSuchHostedZone" {
			t.Fatalf("%s: AWSCode = %q", name, ae.AWSCode)
		}
	}
}

// TestUpsertWaitsForInSync: the change stays PENDING until the test moves
// the emulator's clock past the change delay, which it does once the client
// has polled GetChange twice.
func TestUpsertWaitsForInSync(t *testing.T) {
	clock := newFakeClock()
	getChanges := 0
	e := newEnv(t, withObserver(func(c awsops.Call) {
		if c.Action == "GetChange" {
			if getChanges++; getChanges == 2 {
				clock.Add(time.Hour)
			}
		}
	}))
	e.emu.Server.SetClock(clock.Now)
	if err := e.emu.Server.Update(func(w *awsemu.World) error { w.ChangeDelay = time.Minute; return nil }); err != nil {
		t.Fatal(err)
	}
	r := awsops.Record{ZoneID: zoneID, Name: "db.vigil.test.", IP: ip2, TTL: 30}
	if err := e.client.UpsertRecord(testCtx(t), r, true); err != nil {
		t.Fatal(err)
	}
	if getChanges != 3 {
		t.Fatalf("%d GetChange polls, want 3 (PENDING, PENDING, INSYNC)", getChanges)
	}
	// Without waiting, one call.
	e.emu.Server.ResetCalls()
	if err := e.client.UpsertRecord(testCtx(t), r, false); err != nil {
		t.Fatal(err)
	}
	if n := len(e.emu.Server.Calls()); n != 1 {
		t.Fatalf("%d calls without waiting, want 1", n)
	}
}

func TestUpsertInSyncTimeout(t *testing.T) {
	ctx := newExpiringCtx()
	e := newEnv(t, withObserver(func(c awsops.Call) {
		if c.Action == "GetChange" {
			ctx.expire() // the deadline passes while the change is PENDING
		}
	}))
	if err := e.emu.Server.Update(func(w *awsemu.World) error { w.ChangeDelay = time.Hour; return nil }); err != nil {
		t.Fatal(err)
	}
	r := awsops.Record{ZoneID: zoneID, Name: "db.vigil.test.", IP: ip2}
	err := e.client.UpsertRecord(ctx, r, true)
	wantErr(t, err, awsops.CodeTimeout, "Timeout occurred. (the change of db.vigil.test. is not in sync yet)", zoneID)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v does not wrap DeadlineExceeded", err)
	}
	if v := e.recordValues(t, "db.vigil.test."); len(v) != 1 || v[0] != "10.0.120.10" {
		t.Fatalf("record holds %v: the UPSERT itself went through", v)
	}
}

// fakeResolver answers from a fixed table.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestCheckResolvesMessages(t *testing.T) {
	ctx := context.Background()
	res := fakeResolver{
		"two.vigil.test.":   {netip.MustParseAddr("10.0.0.1"), ip1},
		"empty.vigil.test.": {},
	}
	if err := awsops.CheckResolves(ctx, res, "two.vigil.test", ip1); err != nil {
		t.Fatalf("one of two answers: %v", err)
	}
	wantErr(t, awsops.CheckResolves(ctx, res, "none.vigil.test", ip1), awsops.CodeResolveFailed,
		"Name resolution failed. (none.vigil.test.: no such host)", "none.vigil.test.")
	wantErr(t, awsops.CheckResolves(ctx, res, "empty.vigil.test.", ip1), awsops.CodeResolveFailed,
		"Name resolution failed. (empty.vigil.test.: no address)", "empty.vigil.test.")
	wantErr(t, awsops.CheckResolves(ctx, res, "two.vigil.test.", ip2), awsops.CodeResolvesOther,
		"The name resolves to an IP address other than the setting. (two.vigil.test.: 10.0.0.1, 10.0.110.10, expected 10.0.120.10)", "")
}
