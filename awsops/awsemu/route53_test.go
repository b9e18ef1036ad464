package awsemu_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/vigil-ha/vigil/awsops/awsemu"
)

const zoneID = "ABCDEFGHIJK123"

func aChange(action types.ChangeAction, name, ip string, ttl int64) types.Change {
	return types.Change{Action: action, ResourceRecordSet: &types.ResourceRecordSet{
		Name: aws.String(name), Type: types.RRTypeA, TTL: aws.Int64(ttl),
		ResourceRecords: []types.ResourceRecord{{Value: aws.String(ip)}},
	}}
}

func changeRecords(t *testing.T, c *route53.Client, changes ...types.Change) (*route53.ChangeResourceRecordSetsOutput, error) {
	t.Helper()
	return c.ChangeResourceRecordSets(ctxT(t), &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(zoneID), ChangeBatch: &types.ChangeBatch{Changes: changes},
	})
}

func records(t *testing.T, w *awsemu.World) map[string]awsemu.RecordSet {
	t.Helper()
	out := map[string]awsemu.RecordSet{}
	for _, r := range w.HostedZones[0].Records {
		out[r.Name+" "+r.Type] = r
	}
	return out
}

func TestUpsertReplacesTheRecordSetAndListShowsIt(t *testing.T) {
	e := start(t)
	c := r53Client(e)
	out, err := changeRecords(t, c, aChange(types.ChangeActionUpsert, "srv.hz1.local", "10.0.120.10", 30))
	mustOK(t, err)
	if id := aws.ToString(out.ChangeInfo.Id); len(id) < 9 || id[:8] != "/change/" || out.ChangeInfo.Status != types.ChangeStatusInsync {
		t.Errorf("change info = %s %s, want an INSYNC /change/ (no change delay)", id, out.ChangeInfo.Status)
	}
	list, err := c.ListResourceRecordSets(ctxT(t), &route53.ListResourceRecordSetsInput{
		HostedZoneId: aws.String(zoneID), StartRecordName: aws.String("srv.hz1.local."), StartRecordType: types.RRTypeA,
		MaxItems: aws.Int32(1),
	})
	mustOK(t, err)
	if len(list.ResourceRecordSets) != 1 {
		t.Fatalf("record sets = %+v", list.ResourceRecordSets)
	}
	rs := list.ResourceRecordSets[0]
	if aws.ToString(rs.Name) != "srv.hz1.local." || rs.Type != types.RRTypeA || aws.ToInt64(rs.TTL) != 30 ||
		len(rs.ResourceRecords) != 1 || aws.ToString(rs.ResourceRecords[0].Value) != "10.0.120.10" {
		t.Errorf("record set = %+v", rs)
	}
}

func TestDeleteOfAMissingRecordSetIsInvalidChangeBatch(t *testing.T) {
	e := start(t)
	_, err := changeRecords(t, r53Client(e), aChange(types.ChangeActionDelete, "gone.hz1.local.", "10.0.110.10", 60))
	wantAPIError(t, err, "InvalidChangeBatch", "[Tried to delete resource record set [name='gone.hz1.local.', type='A'] but it was not found]")
	var icb *types.InvalidChangeBatch
	if !errors.As(err, &icb) {
		t.Errorf("error %T is not the SDK's *types.InvalidChangeBatch", err)
	}
}

func TestCreateOfAnExistingRecordSetIsInvalidChangeBatch(t *testing.T) {
	e := start(t)
	_, err := changeRecords(t, r53Client(e), aChange(types.ChangeActionCreate, "SRV.hz1.local", "10.0.120.10", 60))
	wantAPIError(t, err, "InvalidChangeBatch", "[Tried to create resource record set [name='srv.hz1.local.', type='A'] but it already exists]")
}

func TestDeleteNeedsTheCurrentValues(t *testing.T) {
	e := start(t)
	c := r53Client(e)
	_, err := changeRecords(t, c, aChange(types.ChangeActionDelete, "srv.hz1.local.", "10.0.120.10", 60))
	wantAPIError(t, err, "InvalidChangeBatch",
		"[Tried to delete resource record set [name='srv.hz1.local.', type='A'] but the values provided do not match the current values]")
	_, err = changeRecords(t, c, aChange(types.ChangeActionDelete, "Srv.Hz1.Local", "10.0.110.10", 60))
	mustOK(t, err)
	if _, ok := records(t, e.Server.Snapshot())["srv.hz1.local. A"]; ok {
		t.Error("record set still there after DELETE")
	}
}

func TestAChangeBatchIsAppliedWholeOrNotAtAll(t *testing.T) {
	e := start(t)
	_, err := changeRecords(t, r53Client(e),
		aChange(types.ChangeActionUpsert, "srv.hz1.local.", "10.0.120.10", 60),
		aChange(types.ChangeActionCreate, "new.hz1.local.", "10.0.120.11", 60),
		aChange(types.ChangeActionDelete, "gone.hz1.local.", "10.0.120.12", 60),
		aChange(types.ChangeActionCreate, "www.elsewhere.test.", "10.0.120.13", 60),
		aChange(types.ChangeActionCreate, "bad.hz1.local.", "10.0.120", 60),
	)
	wantAPIError(t, err, "InvalidChangeBatch", "[Tried to delete resource record set [name='gone.hz1.local.', type='A'] but it was not found, "+
		"RRSet with DNS name www.elsewhere.test. is not permitted in zone hz1.local., "+
		"Invalid Resource Record: 'FATAL problem: ARRDATAIllegalIPv4Address (Value is not a valid IPv4 address) encountered with '10.0.120'']")
	recs := records(t, e.Server.Snapshot())
	if recs["srv.hz1.local. A"].Values[0] != "10.0.110.10" || len(recs) != 2 {
		t.Errorf("a refused batch changed the zone: %+v", recs)
	}
}

func TestACNAMECannotShareItsNameWithOtherRecords(t *testing.T) {
	e := start(t)
	_, err := changeRecords(t, r53Client(e), types.Change{Action: types.ChangeActionCreate, ResourceRecordSet: &types.ResourceRecordSet{
		Name: aws.String("srv.hz1.local."), Type: types.RRTypeCname, TTL: aws.Int64(60),
		ResourceRecords: []types.ResourceRecord{{Value: aws.String("other.hz1.local.")}},
	}})
	wantAPIError(t, err, "InvalidChangeBatch",
		"[RRSet of type CNAME with DNS name srv.hz1.local. is not permitted as it conflicts with other records with the same DNS name in zone hz1.local.]")
}

func TestARecordSetWithoutTTLIsInvalidInput(t *testing.T) {
	e := start(t)
	ch := aChange(types.ChangeActionUpsert, "srv.hz1.local.", "10.0.120.10", 60)
	ch.ResourceRecordSet.TTL = nil
	_, err := changeRecords(t, r53Client(e), ch)
	wantAPIError(t, err, "InvalidInput", "Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId]...")
}

func TestChangesToAMissingZoneAreNoSuchHostedZone(t *testing.T) {
	e := start(t)
	_, err := r53Client(e).ChangeResourceRecordSets(ctxT(t), &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String("/hostedzone/ZNOPE"),
		ChangeBatch:  &types.ChangeBatch{Changes: []types.Change{aChange(types.ChangeActionUpsert, "a.hz1.local.", "10.0.0.1", 60)}},
	})
	wantAPIError(t, err, "NoSuchHostedZone", "No hosted zone found with ID: ZNOPE")
}

func TestListResourceRecordSetsSortsByReversedLabelsThenTypeAndPaginates(t *testing.T) {
	e := start(t)
	c := r53Client(e)
	_, err := changeRecords(t, c,
		aChange(types.ChangeActionCreate, "z.hz1.local.", "10.0.0.1", 60),
		aChange(types.ChangeActionCreate, "b.a.hz1.local.", "10.0.0.2", 60),
		aChange(types.ChangeActionCreate, "a.hz1.local.", "10.0.0.3", 60),
		aChange(types.ChangeActionCreate, "hz1.local.", "10.0.0.4", 60),
		types.Change{Action: types.ChangeActionCreate, ResourceRecordSet: &types.ResourceRecordSet{
			Name: aws.String("a.hz1.local."), Type: types.RRTypeTxt, TTL: aws.Int64(60),
			ResourceRecords: []types.ResourceRecord{{Value: aws.String(`"x"`)}},
		}},
	)
	mustOK(t, err)
	var got []string
	in := &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zoneID), MaxItems: aws.Int32(2)}
	pages := 0
	for {
		out, err := c.ListResourceRecordSets(ctxT(t), in)
		mustOK(t, err)
		pages++
		for _, rs := range out.ResourceRecordSets {
			got = append(got, aws.ToString(rs.Name)+" "+string(rs.Type))
		}
		if !out.IsTruncated {
			break
		}
		in.StartRecordName, in.StartRecordType = out.NextRecordName, out.NextRecordType
	}
	want := []string{"hz1.local. A", "a.hz1.local. A", "a.hz1.local. TXT", "b.a.hz1.local. A",
		"srv.hz1.local. A", "txt.hz1.local. TXT", "z.hz1.local. A"}
	if !slices.Equal(got, want) || pages != 4 {
		t.Errorf("listed in %d pages:\n%v\nwant in 4 pages:\n%v", pages, got, want)
	}
}

func TestGetChangeIsPendingUntilTheChangeDelayPassed(t *testing.T) {
	e := start(t, func(w *awsemu.World) { w.ChangeDelay = 300 * time.Millisecond })
	c := r53Client(e)
	out, err := changeRecords(t, c, aChange(types.ChangeActionUpsert, "srv.hz1.local.", "10.0.120.10", 60))
	mustOK(t, err)
	if out.ChangeInfo.Status != types.ChangeStatusPending {
		t.Fatalf("new change is %s, want PENDING", out.ChangeInfo.Status)
	}
	var statuses []types.ChangeStatus
	for {
		got, err := c.GetChange(ctxT(t), &route53.GetChangeInput{Id: out.ChangeInfo.Id})
		mustOK(t, err)
		if n := len(statuses); n == 0 || statuses[n-1] != got.ChangeInfo.Status {
			statuses = append(statuses, got.ChangeInfo.Status)
		}
		if got.ChangeInfo.Status == types.ChangeStatusInsync {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !slices.Equal(statuses, []types.ChangeStatus{types.ChangeStatusPending, types.ChangeStatusInsync}) {
		t.Errorf("statuses = %v, want PENDING then INSYNC", statuses)
	}
	_, err = c.GetChange(ctxT(t), &route53.GetChangeInput{Id: aws.String("CNOSUCHCHANGE")})
	wantAPIError(t, err, "NoSuchChange", "A change with the specified change ID does not exist.")
}

func TestGetHostedZoneDescribesTheZone(t *testing.T) {
	e := start(t)
	c := r53Client(e)
	out, err := c.GetHostedZone(ctxT(t), &route53.GetHostedZoneInput{Id: aws.String(zoneID)})
	mustOK(t, err)
	z := out.HostedZone
	if aws.ToString(z.Id) != "/hostedzone/"+zoneID || aws.ToString(z.Name) != "hz1.local." || !z.Config.PrivateZone ||
		aws.ToInt64(z.ResourceRecordSetCount) != 2 || out.DelegationSet != nil {
		t.Errorf("zone = %+v", z)
	}
	out, err = c.GetHostedZone(ctxT(t), &route53.GetHostedZoneInput{Id: aws.String("ZPUBLIC")})
	mustOK(t, err)
	if out.DelegationSet == nil || len(out.DelegationSet.NameServers) != 4 {
		t.Errorf("public zone delegation set = %+v", out.DelegationSet)
	}
	_, err = c.GetHostedZone(ctxT(t), &route53.GetHostedZoneInput{Id: aws.String("Z")})
	wantAPIError(t, err, "NoSuchHostedZone", "No hosted zone found with ID: Z")
}

func TestRoute53DeniedActionIsAccessDenied(t *testing.T) {
	e := start(t)
	_, err := changeRecords(t, r53Client(e, asUser(roAKID, roSecret)), aChange(types.ChangeActionUpsert, "srv.hz1.local.", "10.0.120.10", 60))
	wantAPIError(t, err, "AccessDenied",
		"User: arn:aws:iam::123456789012:user/emu-user is not authorized to perform: route53:ChangeResourceRecordSets on resource: arn:aws:route53:::hostedzone/"+zoneID)
	_, err = r53Client(e, asUser(roAKID, roSecret)).GetHostedZone(ctxT(t), &route53.GetHostedZoneInput{Id: aws.String(zoneID)})
	mustOK(t, err)
}
