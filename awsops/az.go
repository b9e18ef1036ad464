package awsops

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// AZState returns the state of the availability zone ("available",
// "impaired", "unavailable", ...). An unknown zone fails with CodeAWSFailed
// and the message "Invalid availability zone: [az]".
func (c *Client) AZState(ctx context.Context, az string) (string, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	invalidAZ := func(err error) error {
		return &Error{Code: CodeAWSFailed, Op: "DescribeAvailabilityZones", Target: az, AWSCode: AWSCodeOf(err),
			Message: fmt.Sprintf("Invalid availability zone: [%s]", az), Err: err}
	}
	if az == "" {
		return "", invalidAZ(nil)
	}
	var out *ec2.DescribeAvailabilityZonesOutput
	err := c.run.call(ctx, "ec2", "DescribeAvailabilityZones", az, func(ctx context.Context) error {
		var err error
		out, err = c.ec2.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{ZoneNames: []string{az}})
		return err
	})
	if err != nil {
		switch AWSCodeOf(err) {
		case "InvalidParameterValue", "InvalidZone.NotFound", "InvalidAvailabilityZone":
			return "", invalidAZ(err)
		}
		return "", err
	}
	for _, z := range out.AvailabilityZones {
		if aws.ToString(z.ZoneName) == az {
			return string(z.State), nil
		}
	}
	return "", invalidAZ(nil)
}
