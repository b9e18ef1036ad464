package awsops_test

import (
	"testing"

	"github.com/vigil-ha/vigil/awsops"
)

// eipENI returns the ENI the allocation is associated with, or "".
func (e *env) eipENI(t *testing.T, alloc string) string {
	t.Helper()
	for _, a := range e.emu.Server.Snapshot().Addresses {
		if a.AllocationID == alloc {
			return a.ENIID
		}
	}
	t.Fatalf("no allocation %s", alloc)
	return ""
}

func TestEIP(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	if err := e.client.CheckEIP(ctx, "eipalloc-1", "eni-server1"); err != nil {
		t.Fatalf("associated EIP: %v", err)
	}

	// Failover: server 2 takes the EIP, reassociation allowed.
	if err := e.client.AssociateEIP(ctx, "eipalloc-1", "eni-server2"); err != nil {
		t.Fatal(err)
	}
	if got := e.eipENI(t, "eipalloc-1"); got != "eni-server2" {
		t.Fatalf("eipalloc-1 is on %q", got)
	}
	if err := e.client.CheckEIP(ctx, "eipalloc-1", "eni-server2"); err != nil {
		t.Fatal(err)
	}
	// Server 1's monitor now sees the guide's code 7.
	err := e.client.CheckEIP(ctx, "eipalloc-1", "eni-server1")
	wantErr(t, err, awsops.CodeEIPNotAssociated, "The EIP address does not exist. (EIP ALLOCATION ID=eipalloc-1)", "eipalloc-1")

	// Server 1 stopping late must not take the EIP from server 2.
	if err := e.client.DisassociateEIP(ctx, "eipalloc-1", "eni-server1"); err != nil {
		t.Fatal(err)
	}
	if got := e.eipENI(t, "eipalloc-1"); got != "eni-server2" {
		t.Fatalf("a foreign disassociation moved the EIP: on %q", got)
	}
	if n := len(e.emuCalls("DisassociateAddress")); n != 0 {
		t.Fatalf("%d DisassociateAddress calls for an EIP held by another ENI", n)
	}
	// Server 2 stopping releases it; again is a no-op.
	for range 2 {
		if err := e.client.DisassociateEIP(ctx, "eipalloc-1", "eni-server2"); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.eipENI(t, "eipalloc-1"); got != "" {
		t.Fatalf("eipalloc-1 still on %q", got)
	}
	if n := len(e.emuCalls("DisassociateAddress")); n != 1 {
		t.Fatalf("%d DisassociateAddress calls, want 1", n)
	}
	err = e.client.CheckEIP(ctx, "eipalloc-1", "eni-server2")
	wantErr(t, err, awsops.CodeEIPNotAssociated, "The EIP address does not exist. (EIP ALLOCATION ID=eipalloc-1)", "eipalloc-1")
}

func TestEIPNotFound(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	msg := "The allocation ID 'eipalloc-nothere' does not exist"
	wantErr(t, e.client.AssociateEIP(ctx, "eipalloc-nothere", "eni-server1"), awsops.CodeAWSFailed, msg, "eipalloc-nothere")
	wantErr(t, e.client.CheckEIP(ctx, "eipalloc-nothere", "eni-server1"), awsops.CodeAWSFailed, msg, "eipalloc-nothere")
	wantErr(t, e.client.DisassociateEIP(ctx, "eipalloc-nothere", "eni-server1"), awsops.CodeAWSFailed, msg, "eipalloc-nothere")
	wantErr(t, e.client.AssociateEIP(ctx, "eipalloc-2", "eni-nothere"), awsops.CodeAWSFailed,
		"The networkInterface ID 'eni-nothere' does not exist", "eipalloc-2")
}

func TestAZState(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	for az, want := range map[string]string{"ap-northeast-1a": "available", "ap-northeast-1d": "impaired"} {
		got, err := e.client.AZState(ctx, az)
		if err != nil || got != want {
			t.Fatalf("AZState(%s) = %q, %v; want %q", az, got, err, want)
		}
	}
	_, err := e.client.AZState(ctx, "ap-northeast-1x")
	wantErr(t, err, awsops.CodeAWSFailed, "Invalid availability zone: [ap-northeast-1x]", "ap-northeast-1x")
}
