package awsemu

import (
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// route53Xmlns is the namespace of Route 53's 2013-04-01 API.
const route53Xmlns = "https://route53.amazonaws.com/doc/2013-04-01/"

// maxRecordItems is the most record sets ListResourceRecordSets returns.
const maxRecordItems = 300

// rrKey names a record set of a zone.
type rrKey struct {
	zone, name, typ string
}

// change is a ChangeResourceRecordSets batch: PENDING until its delay has
// passed, then INSYNC. before holds what the record sets it touched were
// (nil: absent), which ServeDNS keeps answering while it is PENDING.
type change struct {
	id        string
	comment   string
	submitted time.Time
	delay     time.Duration
	before    map[rrKey]*RecordSet
}

func (c *change) inSync(now time.Time) bool {
	return !now.Before(c.submitted.Add(c.delay))
}

func (c *change) status(now time.Time) string {
	if c.inSync(now) {
		return "INSYNC"
	}
	return "PENDING"
}

// Route 53 documents.

type xmlChangeInfo struct {
	ID          string `xml:"Id"`
	Status      string `xml:"Status"`
	SubmittedAt string `xml:"SubmittedAt"`
	Comment     string `xml:"Comment,omitempty"`
}

type changeInfoResponse struct {
	XMLName    xml.Name
	Xmlns      string        `xml:"xmlns,attr"`
	ChangeInfo xmlChangeInfo `xml:"ChangeInfo"`
}

type xmlRecordSet struct {
	Name            string     `xml:"Name"`
	Type            string     `xml:"Type"`
	TTL             int        `xml:"TTL"`
	ResourceRecords []xmlValue `xml:"ResourceRecords>ResourceRecord"`
}

type xmlValue struct {
	Value string `xml:"Value"`
}

type listRecordSetsResponse struct {
	XMLName            xml.Name `xml:"ListResourceRecordSetsResponse"`
	Xmlns              string   `xml:"xmlns,attr"`
	ResourceRecordSets struct {
		Items []xmlRecordSet `xml:"ResourceRecordSet"`
	} `xml:"ResourceRecordSets"`
	IsTruncated    bool   `xml:"IsTruncated"`
	NextRecordName string `xml:"NextRecordName,omitempty"`
	NextRecordType string `xml:"NextRecordType,omitempty"`
	MaxItems       int    `xml:"MaxItems"`
}

type getHostedZoneResponse struct {
	XMLName    xml.Name `xml:"GetHostedZoneResponse"`
	Xmlns      string   `xml:"xmlns,attr"`
	HostedZone struct {
		ID              string `xml:"Id"`
		Name            string `xml:"Name"`
		CallerReference string `xml:"CallerReference"`
		Config          struct {
			PrivateZone bool `xml:"PrivateZone"`
		} `xml:"Config"`
		ResourceRecordSetCount int `xml:"ResourceRecordSetCount"`
	} `xml:"HostedZone"`
	DelegationSet *struct {
		NameServers []string `xml:"NameServers>NameServer"`
	} `xml:"DelegationSet,omitempty"`
}

// changeBatchRequest is ChangeResourceRecordSets' body.
type changeBatchRequest struct {
	XMLName     xml.Name `xml:"ChangeResourceRecordSetsRequest"`
	ChangeBatch struct {
		Comment string `xml:"Comment"`
		Changes []struct {
			Action string `xml:"Action"`
			RRSet  struct {
				Name                    string    `xml:"Name"`
				Type                    string    `xml:"Type"`
				TTL                     *int64    `xml:"TTL"`
				Values                  []string  `xml:"ResourceRecords>ResourceRecord>Value"`
				SetIdentifier           string    `xml:"SetIdentifier"`
				Weight                  *int64    `xml:"Weight"`
				Region                  string    `xml:"Region"`
				Failover                string    `xml:"Failover"`
				MultiValueAnswer        *bool     `xml:"MultiValueAnswer"`
				HealthCheckID           string    `xml:"HealthCheckId"`
				TrafficPolicyInstanceID string    `xml:"TrafficPolicyInstanceId"`
				AliasTarget             *struct{} `xml:"AliasTarget"`
				GeoLocation             *struct{} `xml:"GeoLocation"`
				CidrRoutingConfig       *struct{} `xml:"CidrRoutingConfig"`
				GeoProximityLocation    *struct{} `xml:"GeoProximityLocation"`
			} `xml:"ResourceRecordSet"`
		} `xml:"Changes>Change"`
	} `xml:"ChangeBatch"`
}

func errNoSuchHostedZone(id string) *apiError {
	return newError(http.StatusNotFound, "NoSuchHostedZone", "No hosted zone found with ID: %s", id)
}

func errInvalidInput(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, "InvalidInput", format, args...)
}

// serveRoute53 serves Route 53's REST-XML API.
func (s *Server) serveRoute53(w http.ResponseWriter, r *http.Request) {
	rec := CallRecord{Service: "route53", Start: time.Now()}
	sw := &statusWriter{ResponseWriter: w}
	reqID := newRequestID()
	defer func() {
		rec.End = time.Now()
		rec.Status = sw.status
		s.record(rec)
	}()
	fail := func(e *apiError) {
		rec.ErrorCode = e.Code
		writeErrorResponse(sw, route53Xmlns, reqID, e)
	}

	segs := strings.Split(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/2013-04-01/"), "/"), "/")
	var resource string
	switch {
	case len(segs) == 3 && segs[0] == "hostedzone" && segs[2] == "rrset" && r.Method == http.MethodPost:
		rec.Action, resource = "ChangeResourceRecordSets", segs[1]
	case len(segs) == 3 && segs[0] == "hostedzone" && segs[2] == "rrset" && r.Method == http.MethodGet:
		rec.Action, resource = "ListResourceRecordSets", segs[1]
	case len(segs) == 2 && segs[0] == "hostedzone" && r.Method == http.MethodGet:
		rec.Action, resource = "GetHostedZone", segs[1]
	case len(segs) == 2 && segs[0] == "change" && r.Method == http.MethodGet:
		rec.Action, resource = "GetChange", segs[1]
	}
	rec.Target = resource

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(newError(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request is larger than %d bytes.", maxBody))
		} else {
			fail(errInvalidInput("The request body could not be read."))
		}
		return
	}
	cred, e := s.admit(r, body, "route53", rec.Action, rec.Action == "ChangeResourceRecordSets", &rec)
	if e != nil {
		fail(e)
		return
	}
	if rec.Action == "" {
		fail(newError(http.StatusBadRequest, "InvalidAction", "The action or operation requested is invalid. Verify that the action is typed correctly."))
		return
	}
	if denied(cred, "route53", rec.Action) {
		user := cred.User
		if user == "" {
			user = "emu-user"
		}
		arn := "arn:aws:route53:::hostedzone/" + resource
		if rec.Action == "GetChange" {
			arn = "arn:aws:route53:::change/" + resource
		}
		fail(newError(http.StatusForbidden, "AccessDenied",
			"User: arn:aws:iam::%s:user/%s is not authorized to perform: route53:%s on resource: %s",
			Account, user, rec.Action, arn))
		return
	}

	s.mu.Lock()
	var resp any
	switch rec.Action {
	case "ChangeResourceRecordSets":
		resp, e = s.changeResourceRecordSets(resource, body)
	case "ListResourceRecordSets":
		resp, e = s.listResourceRecordSets(resource, r.URL.Query())
	case "GetHostedZone":
		resp, e = s.getHostedZone(resource)
	case "GetChange":
		resp, e = s.getChange(resource)
	}
	s.mu.Unlock()
	if e != nil {
		fail(e)
		return
	}
	writeXML(sw, http.StatusOK, reqID, resp)
}

func (s *Server) changeInfo(c *change, root string) *changeInfoResponse {
	return &changeInfoResponse{
		XMLName: xml.Name{Local: root},
		Xmlns:   route53Xmlns,
		ChangeInfo: xmlChangeInfo{
			ID:          "/change/" + c.id,
			Status:      c.status(s.now()),
			SubmittedAt: c.submitted.UTC().Format("2006-01-02T15:04:05.000Z"),
			Comment:     c.comment,
		},
	}
}

func (s *Server) getChange(id string) (any, *apiError) {
	c := s.changes[strings.TrimPrefix(id, "/change/")]
	if c == nil {
		return nil, newError(http.StatusNotFound, "NoSuchChange", "A change with the specified change ID does not exist.")
	}
	return s.changeInfo(c, "GetChangeResponse"), nil
}

func (s *Server) getHostedZone(id string) (any, *apiError) {
	z := s.world.hostedZone(id)
	if z == nil {
		return nil, errNoSuchHostedZone(id)
	}
	var resp getHostedZoneResponse
	resp.Xmlns = route53Xmlns
	resp.HostedZone.ID = "/hostedzone/" + z.ID
	resp.HostedZone.Name = z.Name
	resp.HostedZone.CallerReference = "awsemu-" + z.ID
	resp.HostedZone.Config.PrivateZone = z.Private
	resp.HostedZone.ResourceRecordSetCount = len(z.Records)
	if !z.Private {
		resp.DelegationSet = &struct {
			NameServers []string `xml:"NameServers>NameServer"`
		}{NameServers: []string{"ns-1.awsdns-00.com", "ns-2.awsdns-00.net", "ns-3.awsdns-00.org", "ns-4.awsdns-00.co.uk"}}
	}
	return &resp, nil
}

// recordSortKey is how ListResourceRecordSets orders names: labels
// reversed, with the final dot, compared as strings.
func recordSortKey(name string) string {
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".") + "."
}

func compareRecordSets(a, b RecordSet) int {
	return cmp.Or(strings.Compare(recordSortKey(a.Name), recordSortKey(b.Name)), strings.Compare(a.Type, b.Type))
}

func (s *Server) listResourceRecordSets(id string, params map[string][]string) (any, *apiError) {
	z := s.world.hostedZone(id)
	if z == nil {
		return nil, errNoSuchHostedZone(id)
	}
	get := func(k string) string {
		if v := params[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	startName, startType := get("name"), strings.ToUpper(get("type"))
	if get("identifier") != "" {
		return nil, errInvalidInput("Weighted, latency, geolocation and failover record sets are not supported, so identifier is invalid")
	}
	if startType != "" && startName == "" {
		return nil, errInvalidInput("The input is not valid: type was specified without name")
	}
	if startType != "" && !slices.Contains(recordTypes, startType) {
		return nil, errInvalidInput("The input is not valid: unknown type %s", startType)
	}
	if startName != "" {
		n, err := canonicalName(startName)
		if err != nil {
			return nil, errInvalidInput("The input is not valid: %s", err.Error())
		}
		startName = n
	}
	maxItems := maxRecordItems
	if v := get("maxitems"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, errInvalidInput("The input is not valid: maxitems must be a positive integer, not '%s'", v)
		}
		maxItems = min(n, maxRecordItems)
	}
	recs := slices.Clone(z.Records)
	slices.SortFunc(recs, compareRecordSets)
	if startName != "" {
		start := RecordSet{Name: startName, Type: startType}
		recs = slices.DeleteFunc(recs, func(r RecordSet) bool {
			c := strings.Compare(recordSortKey(r.Name), recordSortKey(start.Name))
			return c < 0 || c == 0 && startType != "" && r.Type < startType
		})
	}
	resp := &listRecordSetsResponse{Xmlns: route53Xmlns, MaxItems: maxItems}
	if len(recs) > maxItems {
		resp.IsTruncated = true
		resp.NextRecordName, resp.NextRecordType = recs[maxItems].Name, recs[maxItems].Type
		recs = recs[:maxItems]
	}
	for _, r := range recs {
		x := xmlRecordSet{Name: r.Name, Type: r.Type, TTL: r.TTL}
		for _, v := range r.Values {
			x.ResourceRecords = append(x.ResourceRecords, xmlValue{Value: v})
		}
		resp.ResourceRecordSets.Items = append(resp.ResourceRecordSets.Items, x)
	}
	return resp, nil
}

func (s *Server) changeResourceRecordSets(zoneID string, body []byte) (any, *apiError) {
	z := s.world.hostedZone(zoneID)
	if z == nil {
		return nil, errNoSuchHostedZone(zoneID)
	}
	var req changeBatchRequest
	if err := xml.Unmarshal(body, &req); err != nil {
		return nil, errInvalidInput("Invalid XML ; %s", err.Error())
	}
	if len(req.ChangeBatch.Changes) == 0 {
		return nil, errInvalidInput("1 validation error detected: Value '[]' at 'changeBatch.changes' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	recs := slices.Clone(z.Records)
	find := func(name, typ string) int {
		return slices.IndexFunc(recs, func(r RecordSet) bool { return r.Name == name && r.Type == typ })
	}
	before := map[rrKey]*RecordSet{}
	touch := func(name, typ string) {
		k := rrKey{z.ID, name, typ}
		if _, ok := before[k]; ok {
			return
		}
		if i := find(name, typ); i >= 0 {
			r := recs[i]
			r.Values = cloneStrings(r.Values)
			before[k] = &r
		} else {
			before[k] = nil
		}
	}
	var msgs []string
	for _, ch := range req.ChangeBatch.Changes {
		rs := ch.RRSet
		action := ch.Action
		if action != "CREATE" && action != "DELETE" && action != "UPSERT" {
			return nil, errInvalidInput("Invalid XML ; Value '%s' is not valid for Action (CREATE, DELETE or UPSERT)", action)
		}
		if rs.SetIdentifier != "" || rs.Weight != nil || rs.Region != "" || rs.Failover != "" || rs.MultiValueAnswer != nil ||
			rs.HealthCheckID != "" || rs.AliasTarget != nil || rs.GeoLocation != nil || rs.CidrRoutingConfig != nil ||
			rs.GeoProximityLocation != nil || rs.TrafficPolicyInstanceID != "" {
			return nil, errInvalidInput("Invalid request: only simple record sets (name, type, TTL, values) are supported")
		}
		typ := strings.ToUpper(rs.Type)
		if !slices.Contains(recordTypes, typ) {
			return nil, errInvalidInput("Invalid XML ; Value '%s' is not valid for Type", rs.Type)
		}
		name, err := canonicalName(rs.Name)
		if err != nil {
			return nil, newError(http.StatusBadRequest, "InvalidChangeBatch", "[%s]", err.Error())
		}
		if rs.TTL == nil || len(rs.Values) == 0 {
			return nil, errInvalidInput("Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found none in Change with [Action=%s, Name=%s, Type=%s, SetIdentifier=null]",
				action, rs.Name, typ)
		}
		if *rs.TTL < 0 || *rs.TTL > 2147483647 {
			return nil, errInvalidInput("Invalid request: TTL %d is out of range", *rs.TTL)
		}
		set := RecordSet{Name: name, Type: typ, TTL: int(*rs.TTL), Values: rs.Values}
		if !inZone(name, z.Name) {
			msgs = append(msgs, fmt.Sprintf("RRSet with DNS name %s is not permitted in zone %s", name, z.Name))
			continue
		}
		if bad := invalidValues(set); bad != "" {
			msgs = append(msgs, bad)
			continue
		}
		i := find(name, typ)
		switch action {
		case "CREATE", "UPSERT":
			if action == "CREATE" && i >= 0 {
				msgs = append(msgs, fmt.Sprintf("Tried to create resource record set [name='%s', type='%s'] but it already exists", name, typ))
				continue
			}
			if msg := cnameConflict(recs, set, z.Name); msg != "" {
				msgs = append(msgs, msg)
				continue
			}
			touch(name, typ)
			if i >= 0 {
				recs[i] = set
			} else {
				recs = append(recs, set)
			}
		case "DELETE":
			if i < 0 {
				msgs = append(msgs, fmt.Sprintf("Tried to delete resource record set [name='%s', type='%s'] but it was not found", name, typ))
				continue
			}
			if cur := recs[i]; cur.TTL != set.TTL || !sameValues(cur.Values, set.Values) {
				msgs = append(msgs, fmt.Sprintf("Tried to delete resource record set [name='%s', type='%s'] but the values provided do not match the current values", name, typ))
				continue
			}
			touch(name, typ)
			recs = slices.Delete(recs, i, i+1)
		}
	}
	if len(msgs) > 0 {
		return nil, newError(http.StatusBadRequest, "InvalidChangeBatch", "[%s]", strings.Join(msgs, ", "))
	}
	z.Records = recs
	c := &change{
		id:        "C" + randomID("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 20),
		comment:   req.ChangeBatch.Comment,
		submitted: s.now(),
		delay:     s.world.ChangeDelay,
		before:    before,
	}
	s.changes[c.id] = c
	if !c.inSync(s.now()) {
		s.pending = append(s.pending, c)
	}
	return s.changeInfo(c, "ChangeResourceRecordSetsResponse"), nil
}

// invalidValues returns Route 53's message for a value its type refuses.
func invalidValues(r RecordSet) string {
	for _, v := range r.Values {
		if checkRecordValue(r.Type, v) == "" {
			continue
		}
		switch r.Type {
		case "A":
			return fmt.Sprintf("Invalid Resource Record: 'FATAL problem: ARRDATAIllegalIPv4Address (Value is not a valid IPv4 address) encountered with '%s''", v)
		case "AAAA":
			return fmt.Sprintf("Invalid Resource Record: 'FATAL problem: AAAARRDATAIllegalIPv6Address (Value is not a valid IPv6 address) encountered with '%s''", v)
		default:
			return fmt.Sprintf("Invalid Resource Record: 'FATAL problem: empty value encountered with '%s''", v)
		}
	}
	if r.Type == "CNAME" && len(r.Values) > 1 {
		return fmt.Sprintf("RRSet of type CNAME with DNS name %s has more than one value", r.Name)
	}
	return ""
}

// cnameConflict returns Route 53's message when set and another record set
// of the same name cannot coexist because one of them is a CNAME.
func cnameConflict(recs []RecordSet, set RecordSet, zone string) string {
	for _, r := range recs {
		if r.Name != set.Name || r.Type == set.Type {
			continue
		}
		if set.Type == "CNAME" {
			return fmt.Sprintf("RRSet of type CNAME with DNS name %s is not permitted as it conflicts with other records with the same DNS name in zone %s", set.Name, zone)
		}
		if r.Type == "CNAME" {
			return fmt.Sprintf("RRSet of type %s with DNS name %s is not permitted because a conflicting RRSet of type CNAME with the same DNS name already exists in zone %s", set.Type, set.Name, zone)
		}
	}
	return ""
}

// sameValues compares values as sets, as Route 53 does.
func sameValues(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// syncedRecords returns the zone's record sets as DNS serves them: the
// current ones, except those a PENDING change touched, which keep their
// value from before the oldest such change. Called with s.mu held.
func (s *Server) syncedRecords(z *HostedZone) map[rrKey]RecordSet {
	now := s.now()
	s.pending = slices.DeleteFunc(s.pending, func(c *change) bool { return c.inSync(now) })
	out := map[rrKey]RecordSet{}
	for _, r := range z.Records {
		out[rrKey{z.ID, r.Name, r.Type}] = r
	}
	for i := len(s.pending) - 1; i >= 0; i-- {
		for k, r := range s.pending[i].before {
			if k.zone != z.ID {
				continue
			}
			if r == nil {
				delete(out, k)
			} else {
				out[k] = *r
			}
		}
	}
	return out
}
