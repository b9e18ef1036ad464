package awsemu

import (
	"bytes"
	"encoding/xml"
	"net/http"
)

// ec2Xmlns is the namespace of EC2's 2016-11-15 API.
const ec2Xmlns = "http://ec2.amazonaws.com/doc/2016-11-15/"

// ec2Meta carries the request ID every EC2 answer starts with.
type ec2Meta struct {
	RequestID string `xml:"requestId"`
}

func (m *ec2Meta) setRequestID(id string) { m.RequestID = id }

type ec2Body interface{ setRequestID(string) }

// writeEC2 writes body as <ActionResponse xmlns=...>.
func writeEC2(w http.ResponseWriter, action, reqID string, body ec2Body) {
	body.setRequestID(reqID)
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	start := xml.StartElement{
		Name: xml.Name{Local: action + "Response"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: ec2Xmlns}},
	}
	if err := xml.NewEncoder(&buf).EncodeElement(body, start); err != nil {
		writeEC2Error(w, reqID, newError(http.StatusInternalServerError, "InternalError", "marshal response: %s", err.Error()))
		return
	}
	writeRaw(w, http.StatusOK, reqID, buf.Bytes())
}

// itemSet is EC2's list wrapper: <fooSet><item>...</item></fooSet>. It is
// written even when empty, as EC2 does.
type itemSet[T any] struct {
	Items []T `xml:"item"`
}

type returnBody struct {
	ec2Meta
	Return bool `xml:"return"`
}

type describeVpcsBody struct {
	ec2Meta
	VpcSet itemSet[xmlVpc] `xml:"vpcSet"`
}

type xmlVpc struct {
	VpcID                   string                     `xml:"vpcId"`
	OwnerID                 string                     `xml:"ownerId"`
	State                   string                     `xml:"state"`
	CidrBlock               string                     `xml:"cidrBlock"`
	CidrBlockAssociationSet itemSet[xmlCidrBlockAssoc] `xml:"cidrBlockAssociationSet"`
	DhcpOptionsID           string                     `xml:"dhcpOptionsId"`
	InstanceTenancy         string                     `xml:"instanceTenancy"`
	IsDefault               bool                       `xml:"isDefault"`
}

type xmlCidrBlockAssoc struct {
	AssociationID  string   `xml:"associationId"`
	CidrBlock      string   `xml:"cidrBlock"`
	CidrBlockState xmlState `xml:"cidrBlockState"`
}

type xmlState struct {
	State string `xml:"state"`
}

type describeSubnetsBody struct {
	ec2Meta
	SubnetSet itemSet[xmlSubnet] `xml:"subnetSet"`
}

type xmlSubnet struct {
	SubnetID                string `xml:"subnetId"`
	SubnetArn               string `xml:"subnetArn"`
	State                   string `xml:"state"`
	VpcID                   string `xml:"vpcId"`
	OwnerID                 string `xml:"ownerId"`
	CidrBlock               string `xml:"cidrBlock"`
	AvailableIPAddressCount int    `xml:"availableIpAddressCount"`
	AvailabilityZone        string `xml:"availabilityZone"`
	AvailabilityZoneID      string `xml:"availabilityZoneId,omitempty"`
	DefaultForAz            bool   `xml:"defaultForAz"`
	MapPublicIPOnLaunch     bool   `xml:"mapPublicIpOnLaunch"`
}

type describeRouteTablesBody struct {
	ec2Meta
	RouteTableSet itemSet[xmlRouteTable] `xml:"routeTableSet"`
}

type xmlRouteTable struct {
	RouteTableID      string            `xml:"routeTableId"`
	VpcID             string            `xml:"vpcId"`
	OwnerID           string            `xml:"ownerId"`
	RouteSet          itemSet[xmlRoute] `xml:"routeSet"`
	AssociationSet    itemSet[struct{}] `xml:"associationSet"`
	PropagatingVgwSet itemSet[struct{}] `xml:"propagatingVgwSet"`
	TagSet            itemSet[struct{}] `xml:"tagSet"`
}

type xmlRoute struct {
	DestinationCidrBlock string `xml:"destinationCidrBlock"`
	GatewayID            string `xml:"gatewayId,omitempty"`
	InstanceID           string `xml:"instanceId,omitempty"`
	InstanceOwnerID      string `xml:"instanceOwnerId,omitempty"`
	NetworkInterfaceID   string `xml:"networkInterfaceId,omitempty"`
	State                string `xml:"state"`
	Origin               string `xml:"origin"`
}

type describeNetworkInterfacesBody struct {
	ec2Meta
	NetworkInterfaceSet itemSet[xmlNetworkInterface] `xml:"networkInterfaceSet"`
}

type xmlNetworkInterface struct {
	NetworkInterfaceID    string                   `xml:"networkInterfaceId"`
	SubnetID              string                   `xml:"subnetId"`
	VpcID                 string                   `xml:"vpcId"`
	AvailabilityZone      string                   `xml:"availabilityZone"`
	Description           string                   `xml:"description"`
	OwnerID               string                   `xml:"ownerId"`
	RequesterManaged      bool                     `xml:"requesterManaged"`
	Status                string                   `xml:"status"`
	MacAddress            string                   `xml:"macAddress"`
	PrivateIPAddress      string                   `xml:"privateIpAddress"`
	SourceDestCheck       bool                     `xml:"sourceDestCheck"`
	InterfaceType         string                   `xml:"interfaceType"`
	GroupSet              itemSet[struct{}]        `xml:"groupSet"`
	Attachment            *xmlENIAttachment        `xml:"attachment,omitempty"`
	Association           *xmlENIAssociation       `xml:"association,omitempty"`
	PrivateIPAddressesSet itemSet[xmlENIPrivateIP] `xml:"privateIpAddressesSet"`
	TagSet                itemSet[struct{}]        `xml:"tagSet"`
}

type xmlENIAttachment struct {
	AttachmentID        string `xml:"attachmentId"`
	InstanceID          string `xml:"instanceId,omitempty"`
	InstanceOwnerID     string `xml:"instanceOwnerId,omitempty"`
	DeviceIndex         int    `xml:"deviceIndex"`
	Status              string `xml:"status"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlENIAssociation struct {
	PublicIP      string `xml:"publicIp"`
	IPOwnerID     string `xml:"ipOwnerId"`
	AllocationID  string `xml:"allocationId,omitempty"`
	AssociationID string `xml:"associationId,omitempty"`
}

type xmlENIPrivateIP struct {
	PrivateIPAddress string             `xml:"privateIpAddress"`
	Primary          bool               `xml:"primary"`
	Association      *xmlENIAssociation `xml:"association,omitempty"`
}

type describeInstancesBody struct {
	ec2Meta
	ReservationSet itemSet[xmlReservation] `xml:"reservationSet"`
}

type xmlReservation struct {
	ReservationID string               `xml:"reservationId"`
	OwnerID       string               `xml:"ownerId"`
	GroupSet      itemSet[struct{}]    `xml:"groupSet"`
	InstancesSet  itemSet[xmlInstance] `xml:"instancesSet"`
}

type xmlInstance struct {
	InstanceID          string                               `xml:"instanceId"`
	ImageID             string                               `xml:"imageId"`
	InstanceState       xmlInstanceState                     `xml:"instanceState"`
	InstanceType        string                               `xml:"instanceType"`
	Placement           xmlPlacement                         `xml:"placement"`
	PrivateIPAddress    string                               `xml:"privateIpAddress,omitempty"`
	IPAddress           string                               `xml:"ipAddress,omitempty"`
	SubnetID            string                               `xml:"subnetId,omitempty"`
	VpcID               string                               `xml:"vpcId,omitempty"`
	SourceDestCheck     bool                                 `xml:"sourceDestCheck"`
	NetworkInterfaceSet itemSet[xmlInstanceNetworkInterface] `xml:"networkInterfaceSet"`
}

type xmlInstanceState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xmlPlacement struct {
	AvailabilityZone   string `xml:"availabilityZone"`
	AvailabilityZoneID string `xml:"availabilityZoneId,omitempty"`
	Tenancy            string `xml:"tenancy"`
}

type xmlInstanceNetworkInterface struct {
	NetworkInterfaceID string                   `xml:"networkInterfaceId"`
	SubnetID           string                   `xml:"subnetId"`
	VpcID              string                   `xml:"vpcId"`
	OwnerID            string                   `xml:"ownerId"`
	Status             string                   `xml:"status"`
	MacAddress         string                   `xml:"macAddress"`
	PrivateIPAddress   string                   `xml:"privateIpAddress"`
	SourceDestCheck    bool                     `xml:"sourceDestCheck"`
	InterfaceType      string                   `xml:"interfaceType"`
	Attachment         xmlInstanceENIAttachment `xml:"attachment"`
	Association        *xmlInstanceENIAssoc     `xml:"association,omitempty"`
}

type xmlInstanceENIAttachment struct {
	AttachmentID        string `xml:"attachmentId"`
	DeviceIndex         int    `xml:"deviceIndex"`
	Status              string `xml:"status"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlInstanceENIAssoc struct {
	PublicIP  string `xml:"publicIp"`
	IPOwnerID string `xml:"ipOwnerId"`
}

type describeAddressesBody struct {
	ec2Meta
	AddressesSet itemSet[xmlAddress] `xml:"addressesSet"`
}

type xmlAddress struct {
	PublicIP                string `xml:"publicIp"`
	AllocationID            string `xml:"allocationId"`
	Domain                  string `xml:"domain"`
	AssociationID           string `xml:"associationId,omitempty"`
	InstanceID              string `xml:"instanceId,omitempty"`
	NetworkInterfaceID      string `xml:"networkInterfaceId,omitempty"`
	NetworkInterfaceOwnerID string `xml:"networkInterfaceOwnerId,omitempty"`
	PrivateIPAddress        string `xml:"privateIpAddress,omitempty"`
	PublicIpv4Pool          string `xml:"publicIpv4Pool"`
	NetworkBorderGroup      string `xml:"networkBorderGroup"`
}

type associateAddressBody struct {
	ec2Meta
	Return        bool   `xml:"return"`
	AssociationID string `xml:"associationId"`
}

type describeAvailabilityZonesBody struct {
	ec2Meta
	AvailabilityZoneInfo itemSet[xmlAZ] `xml:"availabilityZoneInfo"`
}

type xmlAZ struct {
	ZoneName           string            `xml:"zoneName"`
	ZoneState          string            `xml:"zoneState"`
	RegionName         string            `xml:"regionName"`
	ZoneID             string            `xml:"zoneId,omitempty"`
	ZoneType           string            `xml:"zoneType"`
	OptInStatus        string            `xml:"optInStatus"`
	GroupName          string            `xml:"groupName"`
	NetworkBorderGroup string            `xml:"networkBorderGroup"`
	MessageSet         itemSet[xmlAZMsg] `xml:"messageSet"`
}

type xmlAZMsg struct {
	Message string `xml:"message"`
}
