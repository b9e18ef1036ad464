package awsemu

// EC2 actions on network interfaces and instances.

import (
	"slices"
)

func (s *Server) describeNetworkInterfaces(q query) (ec2Body, *apiError) {
	fs, e := q.filters()
	if e != nil {
		return nil, e
	}
	ids := q.list("NetworkInterfaceId")
	for _, id := range ids {
		if e := malformedID(id, "eni-", "InvalidNetworkInterfaceID.Malformed"); e != nil {
			return nil, e
		}
	}
	if _, e := q.boolean("IncludeManagedResources"); e != nil {
		return nil, e
	}
	enis, e := selectByID(s.world.NetworkInterfaces, ids, func(v ENI) string { return v.ID }, errENINotFound)
	if e != nil {
		return nil, e
	}
	assoc := func(v ENI, f func(*Address) string) []string {
		if a := s.world.addressOfENI(v.ID, ""); a != nil {
			return one(f(a))
		}
		return nil
	}
	defs := filterDefs[ENI]{
		"network-interface-id":         func(v ENI) []string { return one(v.ID) },
		"vpc-id":                       func(v ENI) []string { return one(v.VPCID) },
		"subnet-id":                    func(v ENI) []string { return one(v.SubnetID) },
		"attachment.instance-id":       func(v ENI) []string { return one(v.InstanceID) },
		"attachment.status":            func(v ENI) []string { return one(eniAttachmentStatus(v)) },
		"availability-zone":            func(v ENI) []string { return one(s.eniAZ(v)) },
		"private-ip-address":           func(v ENI) []string { return one(v.PrivateIP) },
		"addresses.private-ip-address": func(v ENI) []string { return one(v.PrivateIP) },
		"mac-address":                  func(v ENI) []string { return one(v.MAC) },
		"source-dest-check":            func(v ENI) []string { return one(boolString(v.SourceDestCheck)) },
		"status":                       func(v ENI) []string { return one(eniStatus(v)) },
		"owner-id":                     func(ENI) []string { return one(Account) },
		"association.public-ip":        func(v ENI) []string { return assoc(v, func(a *Address) string { return a.PublicIP }) },
		"association.allocation-id":    func(v ENI) []string { return assoc(v, func(a *Address) string { return a.AllocationID }) },
		"association.association-id":   func(v ENI) []string { return assoc(v, func(a *Address) string { return a.AssociationID }) },
	}
	if enis, e = applyFilters(enis, fs, defs); e != nil {
		return nil, e
	}
	body := &describeNetworkInterfacesBody{}
	for _, v := range enis {
		x := xmlNetworkInterface{
			NetworkInterfaceID: v.ID, SubnetID: v.SubnetID, VpcID: v.VPCID, AvailabilityZone: s.eniAZ(v),
			OwnerID: Account, Status: eniStatus(v), MacAddress: v.MAC, PrivateIPAddress: v.PrivateIP,
			SourceDestCheck: v.SourceDestCheck, InterfaceType: "interface",
		}
		if v.InstanceID != "" {
			x.Attachment = &xmlENIAttachment{
				AttachmentID: "eni-attach-" + hexHash(v.ID, 17), InstanceID: v.InstanceID, InstanceOwnerID: Account,
				DeviceIndex: s.deviceIndex(v), Status: "attached", DeleteOnTermination: s.deviceIndex(v) == 0,
			}
		}
		pip := xmlENIPrivateIP{PrivateIPAddress: v.PrivateIP, Primary: true}
		if a := s.world.addressOfENI(v.ID, v.PrivateIP); a != nil {
			x.Association = &xmlENIAssociation{PublicIP: a.PublicIP, IPOwnerID: "amazon", AllocationID: a.AllocationID, AssociationID: a.AssociationID}
			pip.Association = x.Association
		}
		x.PrivateIPAddressesSet.Items = []xmlENIPrivateIP{pip}
		body.NetworkInterfaceSet.Items = append(body.NetworkInterfaceSet.Items, x)
	}
	return body, nil
}

func eniStatus(v ENI) string {
	if v.InstanceID != "" {
		return "in-use"
	}
	return "available"
}

func eniAttachmentStatus(v ENI) string {
	if v.InstanceID != "" {
		return "attached"
	}
	return "detached"
}

func (s *Server) eniAZ(v ENI) string {
	if sn := s.world.subnet(v.SubnetID); sn != nil {
		return sn.AZ
	}
	return ""
}

// deviceIndex is the ENI's position in its instance's list.
func (s *Server) deviceIndex(v ENI) int {
	if inst := s.world.instance(v.InstanceID); inst != nil {
		if i := slices.Index(inst.ENIs, v.ID); i >= 0 {
			return i
		}
	}
	return 0
}

func (s *Server) describeInstances(q query) (ec2Body, *apiError) {
	fs, e := q.filters()
	if e != nil {
		return nil, e
	}
	ids := q.list("InstanceId")
	for _, id := range ids {
		if e := malformedID(id, "i-", "InvalidInstanceID.Malformed"); e != nil {
			return nil, e
		}
	}
	if _, e := q.boolean("IncludeManagedResources"); e != nil {
		return nil, e
	}
	insts, e := selectByID(s.world.Instances, ids, func(v Instance) string { return v.ID }, errInstanceNotFound)
	if e != nil {
		return nil, e
	}
	primary := func(v Instance) ENI {
		if e := s.world.eni(v.ENIs[0]); e != nil {
			return *e
		}
		return ENI{}
	}
	defs := filterDefs[Instance]{
		"instance-id":                            func(v Instance) []string { return one(v.ID) },
		"availability-zone":                      func(v Instance) []string { return one(v.AZ) },
		"instance-state-name":                    func(Instance) []string { return one("running") },
		"vpc-id":                                 func(v Instance) []string { return one(primary(v).VPCID) },
		"subnet-id":                              func(v Instance) []string { return one(primary(v).SubnetID) },
		"private-ip-address":                     func(v Instance) []string { return one(primary(v).PrivateIP) },
		"network-interface.network-interface-id": func(v Instance) []string { return v.ENIs },
	}
	if insts, e = applyFilters(insts, fs, defs); e != nil {
		return nil, e
	}
	body := &describeInstancesBody{}
	for _, v := range insts {
		p := primary(v)
		x := xmlInstance{
			InstanceID: v.ID, ImageID: "ami-" + hexHash(v.ID, 17),
			InstanceState: xmlInstanceState{Code: 16, Name: "running"}, InstanceType: "t3.medium",
			Placement:        xmlPlacement{AvailabilityZone: v.AZ, AvailabilityZoneID: s.azID(v.AZ), Tenancy: "default"},
			PrivateIPAddress: p.PrivateIP, SubnetID: p.SubnetID, VpcID: p.VPCID, SourceDestCheck: p.SourceDestCheck,
		}
		if a := s.world.addressOfENI(p.ID, p.PrivateIP); a != nil {
			x.IPAddress = a.PublicIP
		}
		for i, id := range v.ENIs {
			eni := s.world.eni(id)
			if eni == nil {
				continue
			}
			xi := xmlInstanceNetworkInterface{
				NetworkInterfaceID: eni.ID, SubnetID: eni.SubnetID, VpcID: eni.VPCID, OwnerID: Account,
				Status: "in-use", MacAddress: eni.MAC, PrivateIPAddress: eni.PrivateIP,
				SourceDestCheck: eni.SourceDestCheck, InterfaceType: "interface",
				Attachment: xmlInstanceENIAttachment{
					AttachmentID: "eni-attach-" + hexHash(eni.ID, 17), DeviceIndex: i, Status: "attached", DeleteOnTermination: i == 0,
				},
			}
			if a := s.world.addressOfENI(eni.ID, eni.PrivateIP); a != nil {
				xi.Association = &xmlInstanceENIAssoc{PublicIP: a.PublicIP, IPOwnerID: "amazon"}
			}
			x.NetworkInterfaceSet.Items = append(x.NetworkInterfaceSet.Items, xi)
		}
		body.ReservationSet.Items = append(body.ReservationSet.Items, xmlReservation{
			ReservationID: "r-" + hexHash(v.ID, 17), OwnerID: Account,
			InstancesSet: itemSet[xmlInstance]{Items: []xmlInstance{x}},
		})
	}
	return body, nil
}
