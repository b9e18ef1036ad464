package awsemu

// EC2 actions on Elastic IP addresses.

import (
	"net/http"
	"slices"
)

func (s *Server) describeAddresses(q query) (ec2Body, *apiError) {
	fs, e := q.filters()
	if e != nil {
		return nil, e
	}
	allocs, ips := q.list("AllocationId"), q.list("PublicIp")
	for _, id := range allocs {
		if e := malformedID(id, "eipalloc-", "InvalidAllocationID.Malformed"); e != nil {
			return nil, e
		}
	}
	addrs := s.world.Addresses
	if len(allocs) > 0 || len(ips) > 0 {
		byAlloc, e := selectByID(s.world.Addresses, allocs, func(v Address) string { return v.AllocationID }, errAllocationNotFound)
		if e != nil {
			return nil, e
		}
		byIP, e := selectByID(s.world.Addresses, ips, func(v Address) string { return v.PublicIP }, errAddressNotFound)
		if e != nil {
			return nil, e
		}
		switch {
		case len(allocs) == 0:
			addrs = byIP
		case len(ips) == 0:
			addrs = byAlloc
		default:
			addrs = nil
			for _, a := range byAlloc {
				if slices.Contains(ips, a.PublicIP) {
					addrs = append(addrs, a)
				}
			}
		}
	}
	defs := filterDefs[Address]{
		"allocation-id":              func(v Address) []string { return one(v.AllocationID) },
		"association-id":             func(v Address) []string { return one(v.AssociationID) },
		"network-interface-id":       func(v Address) []string { return one(v.ENIID) },
		"public-ip":                  func(v Address) []string { return one(v.PublicIP) },
		"private-ip-address":         func(v Address) []string { return one(v.PrivateIP) },
		"instance-id":                func(v Address) []string { return one(s.instanceOfENI(v.ENIID)) },
		"domain":                     func(Address) []string { return one("vpc") },
		"network-interface-owner-id": func(v Address) []string { return one(Account) },
		"network-border-group":       func(Address) []string { return one(s.world.Region) },
	}
	addrs, e = applyFilters(addrs, fs, defs)
	if e != nil {
		return nil, e
	}
	body := &describeAddressesBody{}
	for _, a := range addrs {
		x := xmlAddress{
			PublicIP: a.PublicIP, AllocationID: a.AllocationID, Domain: "vpc",
			AssociationID: a.AssociationID, NetworkInterfaceID: a.ENIID, PrivateIPAddress: a.PrivateIP,
			InstanceID: s.instanceOfENI(a.ENIID), PublicIpv4Pool: "amazon", NetworkBorderGroup: s.world.Region,
		}
		if a.ENIID != "" {
			x.NetworkInterfaceOwnerID = Account
		}
		body.AddressesSet.Items = append(body.AddressesSet.Items, x)
	}
	return body, nil
}

func (s *Server) associateAddress(q query) (ec2Body, *apiError) {
	var a *Address
	switch allocID, ip := q["AllocationId"], q["PublicIp"]; {
	case allocID != "":
		if e := malformedID(allocID, "eipalloc-", "InvalidAllocationID.Malformed"); e != nil {
			return nil, e
		}
		if a = s.world.address(allocID); a == nil {
			return nil, errAllocationNotFound(allocID)
		}
	case ip != "":
		i := slices.IndexFunc(s.world.Addresses, func(a Address) bool { return a.PublicIP == ip })
		if i < 0 {
			return nil, errAddressNotFound(ip)
		}
		a = &s.world.Addresses[i]
	default:
		return nil, errMissingParameter("allocationId")
	}
	eniID, instID := q["NetworkInterfaceId"], q["InstanceId"]
	switch {
	case eniID == "" && instID == "":
		return nil, newError(http.StatusBadRequest, "MissingParameter", "Either instance ID or network interface ID must be specified.")
	case instID != "":
		inst := s.world.instance(instID)
		if inst == nil {
			return nil, errInstanceNotFound(instID)
		}
		if eniID == "" {
			eniID = inst.ENIs[0]
		} else if !slices.Contains(inst.ENIs, eniID) {
			return nil, errInvalidParameterValue("The network interface %s is not attached to instance %s", eniID, instID)
		}
	}
	if e := malformedID(eniID, "eni-", "InvalidNetworkInterfaceID.Malformed"); e != nil {
		return nil, e
	}
	eni := s.world.eni(eniID)
	if eni == nil {
		return nil, errENINotFound(eniID)
	}
	privIP := q["PrivateIpAddress"]
	if privIP == "" {
		privIP = eni.PrivateIP
	} else if privIP != eni.PrivateIP {
		return nil, errInvalidParameterValue("The private IP address %s is not assigned to the network interface %s", privIP, eniID)
	}
	allow, e := q.boolean("AllowReassociation")
	if e != nil {
		return nil, e
	}
	if a.ENIID == eni.ID && a.PrivateIP == privIP {
		return &associateAddressBody{Return: true, AssociationID: a.AssociationID}, nil
	}
	if a.ENIID != "" && !allow {
		return nil, newError(http.StatusBadRequest, "Resource.AlreadyAssociated",
			"resource %s is already associated with associationId %s", a.AllocationID, a.AssociationID)
	}
	if other := s.world.addressOfENI(eni.ID, privIP); other != nil {
		if !allow {
			return nil, newError(http.StatusBadRequest, "Resource.AlreadyAssociated",
				"resource %s is already associated with associationId %s", other.AllocationID, other.AssociationID)
		}
		other.ENIID, other.PrivateIP, other.AssociationID = "", "", ""
	}
	a.ENIID, a.PrivateIP = eni.ID, privIP
	a.AssociationID = "eipassoc-" + randomID("0123456789abcdef", 17)
	return &associateAddressBody{Return: true, AssociationID: a.AssociationID}, nil
}

func (s *Server) disassociateAddress(q query) (ec2Body, *apiError) {
	var a *Address
	switch id, ip := q["AssociationId"], q["PublicIp"]; {
	case id != "":
		if e := malformedID(id, "eipassoc-", "InvalidAssociationID.Malformed"); e != nil {
			return nil, e
		}
		i := slices.IndexFunc(s.world.Addresses, func(a Address) bool { return a.AssociationID == id })
		if i < 0 {
			return nil, errAssociationNotFound(id)
		}
		a = &s.world.Addresses[i]
	case ip != "":
		i := slices.IndexFunc(s.world.Addresses, func(a Address) bool { return a.PublicIP == ip })
		if i < 0 {
			return nil, errAddressNotFound(ip)
		}
		a = &s.world.Addresses[i]
		if a.AssociationID == "" {
			return nil, newError(http.StatusBadRequest, "InvalidAssociationID.NotFound", "The address '%s' is not associated", ip)
		}
	default:
		return nil, errMissingParameter("associationId")
	}
	a.ENIID, a.PrivateIP, a.AssociationID = "", "", ""
	return &returnBody{Return: true}, nil
}
