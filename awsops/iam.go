package awsops

import (
	"encoding/json"
	"fmt"
	"slices"
)

// policyDocument is an IAM policy document; field order is JSON order.
type policyDocument struct {
	Version   string            `json:"Version"`
	Statement []policyStatement `json:"Statement"`
}

type policyStatement struct {
	Sid      string   `json:"Sid"`
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource []string `json:"Resource"`
}

// IAMPolicy returns the least-privilege IAM policy document (JSON, indented,
// deterministic) for the plan. Read-only EC2 actions take "*" since EC2 does
// not scope Describe* to resources; ReplaceRoute and CreateRoute are scoped to
// the plan's route tables (to every route table when a VIP's tables are
// discovered at run time); the Route 53 actions to the plan's hosted zones,
// and GetChange to changes. sts:GetCallerIdentity needs no permission and is
// left out. A plan that uses no AWS resource is an error.
func IAMPolicy(p Plan) ([]byte, error) {
	var stmts []policyStatement
	var describe []string
	if len(p.VIPs) > 0 {
		describe = append(describe, "ec2:DescribeRouteTables", "ec2:DescribeVpcs", "ec2:DescribeNetworkInterfaces")
	}
	if len(p.EIPs) > 0 {
		describe = append(describe, "ec2:DescribeAddresses", "ec2:DescribeNetworkInterfaces")
	}
	if len(p.AZs) > 0 {
		describe = append(describe, "ec2:DescribeAvailabilityZones")
	}
	if len(describe) > 0 {
		stmts = append(stmts, statement("VigilDescribe", describe, []string{"*"}))
	}
	if len(p.VIPs) > 0 {
		var tables []string
		for _, v := range p.VIPs {
			if len(v.RouteTables) == 0 {
				tables = []string{"arn:aws:ec2:*:*:route-table/*"}
				break
			}
			for _, t := range v.RouteTables {
				if t != "" {
					tables = append(tables, "arn:aws:ec2:*:*:route-table/"+t)
				}
			}
		}
		if len(tables) == 0 {
			tables = []string{"arn:aws:ec2:*:*:route-table/*"}
		}
		stmts = append(stmts, statement("VigilVIPRoutes", []string{"ec2:ReplaceRoute", "ec2:CreateRoute"}, tables))
	}
	if len(p.EIPs) > 0 {
		stmts = append(stmts, statement("VigilElasticIPs", []string{"ec2:AssociateAddress", "ec2:DisassociateAddress"}, []string{"*"}))
	}
	if len(p.Records) > 0 {
		var zones []string
		for _, r := range p.Records {
			if z := zoneID(r.ZoneID); z != "" {
				zones = append(zones, "arn:aws:route53:::hostedzone/"+z)
			}
		}
		if len(zones) == 0 {
			return nil, invalid("IAM policy", "", "The DNS records name no hosted zone.")
		}
		stmts = append(stmts,
			statement("VigilRecordSets", []string{"route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets", "route53:GetHostedZone"}, zones),
			statement("VigilRecordChanges", []string{"route53:GetChange"}, []string{"arn:aws:route53:::change/*"}))
	}
	if len(stmts) == 0 {
		return nil, invalid("IAM policy", "", "The configuration uses no AWS resource, so it needs no IAM policy.")
	}
	b, err := json.MarshalIndent(policyDocument{Version: "2012-10-17", Statement: stmts}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode IAM policy: %w", err)
	}
	return append(b, '\n'), nil
}

// statement returns an Allow statement with sorted, distinct actions and
// resources.
func statement(sid string, actions, resources []string) policyStatement {
	actions = slices.Clone(actions)
	slices.Sort(actions)
	resources = slices.Clone(resources)
	slices.Sort(resources)
	return policyStatement{Sid: sid, Effect: "Allow", Action: slices.Compact(actions), Resource: slices.Compact(resources)}
}
