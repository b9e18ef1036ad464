package awsemu

// EC2 actions on availability zones.

import (
	"fmt"
	"slices"
	"strings"
)

func (s *Server) describeAvailabilityZones(q query) (ec2Body, *apiError) {
	fs, e := q.filters()
	if e != nil {
		return nil, e
	}
	if _, e := q.boolean("AllAvailabilityZones"); e != nil {
		return nil, e
	}
	names, ids := q.list("ZoneName"), q.list("ZoneId")
	var unknown []string
	for _, n := range names {
		if s.world.az(n) == nil {
			unknown = append(unknown, n)
		}
	}
	for _, id := range ids {
		if !slices.ContainsFunc(s.world.AvailabilityZones, func(az AZ) bool { return az.ID == id }) {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		return nil, errInvalidParameterValue("Invalid availability zone: [%s]", strings.Join(unknown, ", "))
	}
	zones := slices.Clone(s.world.AvailabilityZones)
	if len(names) > 0 || len(ids) > 0 {
		zones = slices.DeleteFunc(zones, func(az AZ) bool {
			return !slices.Contains(names, az.Name) && !slices.Contains(ids, az.ID)
		})
	}
	defs := filterDefs[AZ]{
		"zone-name":            func(v AZ) []string { return one(v.Name) },
		"zone-id":              func(v AZ) []string { return one(v.ID) },
		"state":                func(v AZ) []string { return one(v.State) },
		"region-name":          func(AZ) []string { return one(s.world.Region) },
		"zone-type":            func(AZ) []string { return one("availability-zone") },
		"group-name":           func(AZ) []string { return one(s.world.Region) },
		"opt-in-status":        func(AZ) []string { return one("opt-in-not-required") },
		"network-border-group": func(AZ) []string { return one(s.world.Region) },
	}
	if zones, e = applyFilters(zones, fs, defs); e != nil {
		return nil, e
	}
	body := &describeAvailabilityZonesBody{}
	for _, az := range zones {
		x := xmlAZ{
			ZoneName: az.Name, ZoneState: az.State, RegionName: s.world.Region, ZoneID: az.ID,
			ZoneType: "availability-zone", OptInStatus: "opt-in-not-required",
			GroupName: s.world.Region, NetworkBorderGroup: s.world.Region,
		}
		if az.State == "impaired" || az.State == "unavailable" {
			x.MessageSet.Items = []xmlAZMsg{{Message: fmt.Sprintf("Availability zone %s is %s.", az.Name, az.State)}}
		}
		body.AvailabilityZoneInfo.Items = append(body.AvailabilityZoneInfo.Items, x)
	}
	return body, nil
}
