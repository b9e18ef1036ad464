package awsemu_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/vigil-ha/vigil/awsops/awsemu"
)

// imdsClient returns the SDK's IMDS client for an instance, retrying
// without backoff so tests of the retry on 401 run fast.
func imdsClient(e interface{ imdsURL(string) string }, id string) *imds.Client {
	return imds.New(imds.Options{
		Endpoint:                 e.imdsURL(id),
		DisableDefaultMaxBackoff: true,
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		}),
	})
}

type emuIMDS struct{ urls map[string]string }

func (e emuIMDS) imdsURL(id string) string { return e.urls[id] }

func metadata(t *testing.T, c *imds.Client, path string) string {
	t.Helper()
	out, err := c.GetMetadata(ctxT(t), &imds.GetMetadataInput{Path: path})
	mustOK(t, err)
	defer out.Content.Close()
	b, err := io.ReadAll(out.Content)
	mustOK(t, err)
	return string(b)
}

func TestIMDSServesTheInstancesIdentityPlacementAndNetwork(t *testing.T) {
	e := start(t)
	c := imdsClient(emuIMDS{e.IMDS}, "i-server2")
	const mac = "06:00:00:00:01:20"
	want := map[string]string{
		"instance-id":                 "i-server2",
		"placement/availability-zone": "ap-northeast-1c",
		"placement/region":            "ap-northeast-1",
		"mac":                         mac,
		"local-ipv4":                  "10.0.120.10",
		"public-ipv4":                 "203.0.113.11",
		"network/interfaces/macs/" + mac + "/interface-id": "eni-87654321",
		"network/interfaces/macs/" + mac + "/vpc-id":       "vpc-1234abcd",
		"network/interfaces/macs/" + mac + "/subnet-id":    "subnet-c",
		"network/interfaces/macs/" + mac + "/local-ipv4s":  "10.0.120.10",
	}
	for path, v := range want {
		if got := metadata(t, c, path); got != v {
			t.Errorf("%s = %q, want %q", path, got, v)
		}
	}
	macs := strings.Split(metadata(t, c, "network/interfaces/macs/"), "\n")
	if len(macs) != 2 || !slices.Contains(macs, mac+"/") {
		t.Errorf("macs = %q, want two directories, %s/ among them", macs, mac)
	}
	doc, err := c.GetInstanceIdentityDocument(ctxT(t), nil)
	mustOK(t, err)
	d := doc.InstanceIdentityDocument
	if d.Region != "ap-northeast-1" || d.AvailabilityZone != "ap-northeast-1c" || d.InstanceID != "i-server2" || d.PrivateIP != "10.0.120.10" {
		t.Errorf("identity document = %+v", d)
	}
	region, err := c.GetRegion(ctxT(t), nil)
	mustOK(t, err)
	if region.Region != "ap-northeast-1" {
		t.Errorf("region = %q", region.Region)
	}
}

// imdsDo sends one raw IMDS request.
func imdsDo(t *testing.T, method, url string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	mustOK(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	mustOK(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	mustOK(t, err)
	return resp.StatusCode, string(b)
}

const ttlHeader = "X-aws-ec2-metadata-token-ttl-seconds"

func TestIMDSRefusesIMDSv1AndBadTokens(t *testing.T) {
	e := start(t)
	base := e.IMDS["i-server1"]
	if status, _ := imdsDo(t, http.MethodGet, base+"/latest/meta-data/instance-id", nil); status != http.StatusUnauthorized {
		t.Errorf("IMDSv1 GET: status %d, want 401", status)
	}
	if status, _ := imdsDo(t, http.MethodGet, base+"/latest/meta-data/instance-id",
		map[string]string{"X-aws-ec2-metadata-token": "forged"}); status != http.StatusUnauthorized {
		t.Errorf("forged token: status %d, want 401", status)
	}
	for _, ttl := range []string{"", "0", "21601", "x"} {
		h := map[string]string{}
		if ttl != "" {
			h[ttlHeader] = ttl
		}
		if status, _ := imdsDo(t, http.MethodPut, base+"/latest/api/token", h); status != http.StatusBadRequest {
			t.Errorf("token with TTL %q: status %d, want 400", ttl, status)
		}
	}
	status, tok := imdsDo(t, http.MethodPut, e.IMDS["i-server2"]+"/latest/api/token", map[string]string{ttlHeader: "60"})
	if status != http.StatusOK {
		t.Fatalf("token: status %d", status)
	}
	if status, _ := imdsDo(t, http.MethodGet, base+"/latest/meta-data/instance-id",
		map[string]string{"X-aws-ec2-metadata-token": tok}); status != http.StatusUnauthorized {
		t.Errorf("another instance's token: status %d, want 401", status)
	}
	if status, _ := imdsDo(t, http.MethodGet, e.IMDS["i-server2"]+"/latest/meta-data/no-such-thing",
		map[string]string{"X-aws-ec2-metadata-token": tok}); status != http.StatusNotFound {
		t.Errorf("unknown path: status %d, want 404", status)
	}
}

func TestIMDSTokenExpiresAfterItsTTL(t *testing.T) {
	e := start(t)
	clock := newFakeClock()
	e.Server.SetClock(clock.Now)
	base := e.IMDS["i-server1"]
	_, tok := imdsDo(t, http.MethodPut, base+"/latest/api/token", map[string]string{ttlHeader: "10"})
	h := map[string]string{"X-aws-ec2-metadata-token": tok}
	clock.Advance(9 * time.Second)
	if status, body := imdsDo(t, http.MethodGet, base+"/latest/meta-data/instance-id", h); status != http.StatusOK || body != "i-server1" {
		t.Errorf("before expiry: status %d body %q", status, body)
	}
	clock.Advance(time.Second)
	if status, _ := imdsDo(t, http.MethodGet, base+"/latest/meta-data/instance-id", h); status != http.StatusUnauthorized {
		t.Errorf("at expiry: status %d, want 401", status)
	}
}

func TestTheSDKGetsANewTokenWhenTheOldOneExpired(t *testing.T) {
	e := start(t)
	clock := newFakeClock()
	e.Server.SetClock(clock.Now)
	c := imdsClient(emuIMDS{e.IMDS}, "i-server1")
	if got := metadata(t, c, "instance-id"); got != "i-server1" {
		t.Fatalf("instance-id = %q", got)
	}
	clock.Advance(6 * time.Hour) // past any TTL; the SDK's own clock has not moved
	if got := metadata(t, c, "instance-id"); got != "i-server1" {
		t.Fatalf("instance-id after expiry = %q", got)
	}
	var tokens, refused int
	for _, rec := range e.Server.Calls() {
		switch {
		case rec.Action == "IMDSGetToken":
			tokens++
		case rec.Status == http.StatusUnauthorized:
			refused++
		}
	}
	if tokens != 2 || refused != 1 {
		t.Errorf("token requests %d, refused reads %d; want 2 and 1 (the SDK retried with a new token)", tokens, refused)
	}
}

func TestIMDSOfAnInstanceRemovedFromTheWorldIsNotFound(t *testing.T) {
	e := start(t)
	base := e.IMDS["i-server1"]
	_, tok := imdsDo(t, http.MethodPut, base+"/latest/api/token", map[string]string{ttlHeader: "60"})
	mustOK(t, e.Server.Update(func(w *awsemu.World) error {
		w.Instances = w.Instances[1:]
		w.NetworkInterfaces[0].InstanceID = ""
		return nil
	}))
	if status, _ := imdsDo(t, http.MethodGet, base+"/latest/meta-data/instance-id",
		map[string]string{"X-aws-ec2-metadata-token": tok}); status != http.StatusNotFound {
		t.Errorf("status %d, want 404", status)
	}
}
