package awsops

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// describeAddress returns the Elastic IP of the allocation.
func (c *Client) describeAddress(ctx context.Context, allocationID string) (types.Address, error) {
	var out *ec2.DescribeAddressesOutput
	err := c.run.call(ctx, "ec2", "DescribeAddresses", allocationID, func(ctx context.Context) error {
		var err error
		out, err = c.ec2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{allocationID}})
		return err
	})
	if err != nil {
		return types.Address{}, err
	}
	for _, a := range out.Addresses {
		if aws.ToString(a.AllocationId) == allocationID {
			return a, nil
		}
	}
	return types.Address{}, &Error{Code: CodeAWSFailed, Op: "DescribeAddresses", Target: allocationID,
		AWSCode: "InvalidAllocationID.NotFound", Message: fmt.Sprintf("The allocation ID '%s' does not exist", allocationID)}
}

// AssociateEIP associates the allocation with eniID, reassociation allowed:
// one AssociateAddress call, whoever held the address before.
func (c *Client) AssociateEIP(ctx context.Context, allocationID, eniID string) error {
	if allocationID == "" || eniID == "" {
		return invalid("associate EIP", allocationID, "An EIP allocation ID and an ENI ID are both needed.")
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	return c.run.call(ctx, "ec2", "AssociateAddress", allocationID, func(ctx context.Context) error {
		_, err := c.ec2.AssociateAddress(ctx, &ec2.AssociateAddressInput{
			AllocationId:       aws.String(allocationID),
			NetworkInterfaceId: aws.String(eniID),
			AllowReassociation: aws.Bool(true),
		})
		return err
	})
}

// DisassociateEIP disassociates the allocation only if it is associated
// with eniID; otherwise it succeeds without a change.
func (c *Client) DisassociateEIP(ctx context.Context, allocationID, eniID string) error {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	a, err := c.describeAddress(ctx, allocationID)
	if err != nil {
		return err
	}
	assoc := aws.ToString(a.AssociationId)
	if assoc == "" || aws.ToString(a.NetworkInterfaceId) != eniID {
		return nil
	}
	err = c.run.call(ctx, "ec2", "DisassociateAddress", allocationID, func(ctx context.Context) error {
		_, err := c.ec2.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: aws.String(assoc)})
		return err
	})
	if AWSCodeOf(err) == "InvalidAssociationID.NotFound" {
		return nil // gone meanwhile
	}
	return err
}

// CheckEIP fails with CodeEIPNotAssociated ("The EIP address does not
// exist. (EIP ALLOCATION ID=eipalloc-1)") unless the allocation is
// associated with eniID, and with CodeAWSFailed when the allocation does
// not exist.
func (c *Client) CheckEIP(ctx context.Context, allocationID, eniID string) error {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	a, err := c.describeAddress(ctx, allocationID)
	if err != nil {
		return err
	}
	got := aws.ToString(a.NetworkInterfaceId)
	if aws.ToString(a.AssociationId) != "" && got == eniID {
		return nil
	}
	detail := "not associated"
	if got != "" {
		detail = "associated with " + got
	}
	return &Error{Code: CodeEIPNotAssociated, Op: "check EIP", Target: allocationID,
		Message: fmt.Sprintf("The EIP address does not exist. (EIP ALLOCATION ID=%s)", allocationID),
		Err:     fmt.Errorf("%s is %s, not %s", allocationID, detail, eniID)}
}
