package awsemu

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// IMDSv2 headers.
const (
	imdsTokenHeader = "X-Aws-Ec2-Metadata-Token"
	imdsTTLHeader   = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	imdsMaxTTL      = 21600
)

// imdsToken is an IMDSv2 session token of one instance.
type imdsToken struct {
	instanceID string
	expires    time.Time
}

// IMDSHandler returns the instance metadata service of one instance:
// IMDSv2 only (a session token from PUT /latest/api/token is required on
// every GET, and expires after its TTL), serving the instance's identity,
// placement and network interfaces. Serve it on a listener of its own.
func (s *Server) IMDSHandler(instanceID string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serveIMDS(w, r, instanceID)
	})
}

func (s *Server) serveIMDS(w http.ResponseWriter, r *http.Request, instanceID string) {
	rec := CallRecord{Service: "imds", Target: r.URL.Path, Start: time.Now()}
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		rec.End = time.Now()
		rec.Status = sw.status
		s.record(rec)
	}()
	fail := func(status int, msg string) {
		rec.ErrorCode = http.StatusText(status)
		sw.Header().Set("Content-Type", "text/plain")
		sw.WriteHeader(status)
		_, _ = sw.Write([]byte(msg))
	}

	switch {
	case r.URL.Path == "/latest/api/token":
		rec.Action = "IMDSGetToken"
	case strings.HasPrefix(r.URL.Path, "/latest/dynamic/"):
		rec.Action = "IMDSGetDynamicData"
	default:
		rec.Action = "IMDSGetMetadata"
	}
	if f, ok := s.takeFault(rec.Action, false); ok {
		if !sleep(r.Context(), f.Latency) {
			fail(errCanceled.Status, errCanceled.Message)
			return
		}
		if e := f.apiError(); e != nil {
			fail(e.Status, e.Message)
			return
		}
	}
	if r.Header.Get("X-Forwarded-For") != "" {
		fail(http.StatusForbidden, "Forbidden")
		return
	}

	if rec.Action == "IMDSGetToken" {
		if r.Method != http.MethodPut {
			fail(http.StatusMethodNotAllowed, "Method Not Allowed")
			return
		}
		ttl, err := strconv.Atoi(r.Header.Get(imdsTTLHeader))
		if err != nil || ttl < 1 || ttl > imdsMaxTTL {
			fail(http.StatusBadRequest, "Bad Request")
			return
		}
		tok := randomID("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", 56)
		s.mu.Lock()
		now := s.now()
		for k, t := range s.tokens {
			if !now.Before(t.expires) {
				delete(s.tokens, k)
			}
		}
		s.tokens[tok] = imdsToken{instanceID: instanceID, expires: now.Add(time.Duration(ttl) * time.Second)}
		s.mu.Unlock()
		sw.Header().Set(imdsTTLHeader, strconv.Itoa(ttl))
		sw.Header().Set("Content-Type", "text/plain")
		sw.WriteHeader(http.StatusOK)
		_, _ = sw.Write([]byte(tok))
		return
	}

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		fail(http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	s.mu.Lock()
	t, ok := s.tokens[r.Header.Get(imdsTokenHeader)]
	valid := ok && t.instanceID == instanceID && s.now().Before(t.expires)
	var tree map[string]string
	if valid {
		tree = s.metadataTree(instanceID)
	}
	s.mu.Unlock()
	if !valid {
		fail(http.StatusUnauthorized, "Unauthorized")
		return
	}
	if tree == nil {
		fail(http.StatusNotFound, "Not Found")
		return
	}
	body, found := lookupMetadata(tree, strings.TrimPrefix(r.URL.Path, "/latest/"))
	if !found {
		fail(http.StatusNotFound, "Not Found")
		return
	}
	if strings.HasSuffix(r.URL.Path, "/document") {
		sw.Header().Set("Content-Type", "application/json")
	} else {
		sw.Header().Set("Content-Type", "text/plain")
	}
	sw.WriteHeader(http.StatusOK)
	_, _ = sw.Write([]byte(body))
}

// metadataTree returns the instance's metadata as leaf path → value, with
// paths relative to /latest/; nil when the instance does not exist. Called
// with s.mu held.
func (s *Server) metadataTree(instanceID string) map[string]string {
	inst := s.world.instance(instanceID)
	if inst == nil {
		return nil
	}
	t := map[string]string{}
	md := "meta-data/"
	t[md+"instance-id"] = inst.ID
	t[md+"instance-type"] = "t3.medium"
	t[md+"ami-id"] = "ami-" + hexHash(inst.ID, 17)
	t[md+"hostname"] = ""
	t[md+"placement/availability-zone"] = inst.AZ
	if az := s.world.az(inst.AZ); az != nil && az.ID != "" {
		t[md+"placement/availability-zone-id"] = az.ID
	}
	t[md+"placement/region"] = s.world.Region
	var primary *ENI
	for i, id := range inst.ENIs {
		e := s.world.eni(id)
		if e == nil {
			continue
		}
		if i == 0 {
			primary = e
		}
		p := md + "network/interfaces/macs/" + e.MAC + "/"
		t[p+"device-number"] = strconv.Itoa(i)
		t[p+"interface-id"] = e.ID
		t[p+"mac"] = e.MAC
		t[p+"local-ipv4s"] = e.PrivateIP
		t[p+"owner-id"] = Account
		t[p+"subnet-id"] = e.SubnetID
		t[p+"vpc-id"] = e.VPCID
		if sn := s.world.subnet(e.SubnetID); sn != nil {
			t[p+"subnet-ipv4-cidr-block"] = sn.CIDR
		}
		if v := s.world.vpc(e.VPCID); v != nil {
			t[p+"vpc-ipv4-cidr-block"] = v.CIDRs[0]
			t[p+"vpc-ipv4-cidr-blocks"] = strings.Join(v.CIDRs, "\n")
		}
		if a := s.world.addressOfENI(e.ID, e.PrivateIP); a != nil {
			t[p+"public-ipv4s"] = a.PublicIP
		}
	}
	if primary != nil {
		t[md+"mac"] = primary.MAC
		t[md+"local-ipv4"] = primary.PrivateIP
		t[md+"local-hostname"] = "ip-" + strings.ReplaceAll(primary.PrivateIP, ".", "-") + "." + s.world.Region + ".compute.internal"
		t[md+"hostname"] = t[md+"local-hostname"]
		if a := s.world.addressOfENI(primary.ID, primary.PrivateIP); a != nil {
			t[md+"public-ipv4"] = a.PublicIP
		}
	}
	doc := map[string]any{
		"accountId":        Account,
		"architecture":     "x86_64",
		"availabilityZone": inst.AZ,
		"imageId":          t[md+"ami-id"],
		"instanceId":       inst.ID,
		"instanceType":     "t3.medium",
		"pendingTime":      "2024-01-01T00:00:00Z",
		"region":           s.world.Region,
		"version":          "2017-09-30",
	}
	if primary != nil {
		doc["privateIp"] = primary.PrivateIP
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	t["dynamic/instance-identity/document"] = string(b)
	return t
}

// lookupMetadata returns a leaf's value, or a directory's listing (one
// entry a line, sub-directories with a final '/').
func lookupMetadata(tree map[string]string, path string) (string, bool) {
	if v, ok := tree[path]; ok && !strings.HasSuffix(path, "/") {
		return v, true
	}
	dir := strings.TrimSuffix(path, "/") + "/"
	if dir == "/" {
		dir = ""
	}
	var entries []string
	for k := range tree {
		rest, ok := strings.CutPrefix(k, dir)
		if !ok || rest == "" {
			continue
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i+1]
		}
		if !slices.Contains(entries, rest) {
			entries = append(entries, rest)
		}
	}
	if len(entries) == 0 {
		return "", false
	}
	slices.Sort(entries)
	return strings.Join(entries, "\n"), true
}
