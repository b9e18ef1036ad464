package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/awsops"
	"github.com/vigil-ha/vigil/control/config"
	"github.com/vigil-ha/vigil/control/resource"
)

// awsOptions are the flags of the aws subcommands.
type awsOptions struct {
	config  string
	server  string
	timeout time.Duration
}

// awsCmd is `vigilctl aws check` and `vigilctl aws iam-policy`.
func awsCmd() *cobra.Command {
	o := &awsOptions{}
	cmd := &cobra.Command{
		Use:   "aws",
		Short: "Check this node's AWS setup, print the IAM policy it needs",
		Args:  cobra.NoArgs,
		RunE:  needSubcommand,
	}
	cmd.PersistentFlags().StringVar(&o.config, "config", "/etc/vigil/cluster.yaml", "cluster configuration `file`")
	cmd.PersistentFlags().StringVar(&o.server, "server", "", "this node's server `name` (default: the host name)")
	cmd.PersistentFlags().DurationVar(&o.timeout, "timeout", 60*time.Second, "give up after this `duration`")
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Preflight: can this node do every AWS call a failover needs?",
		Long: "Check asks AWS, from this node and with its credentials, whether every object the\n" +
			"configuration names exists and is set up as the aws_* resources need, and proves\n" +
			"permissions with DryRun calls. It prints one line a finding, with a fix for each\n" +
			"problem, and exits 1 if there is any.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return awsCheck(cmd, o) },
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "iam-policy",
		Short: "Print the least-privilege IAM policy for the configured AWS resources",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(o.config)
			if err != nil {
				return failed(err)
			}
			doc, err := awsops.IAMPolicy(resource.AWSPlan(cfg, "", nil))
			if err != nil {
				return failed(err)
			}
			fmt.Fprint(cmd.OutOrStdout(), ensureNewline(string(doc)))
			return nil
		},
	})
	return cmd
}

func awsCheck(cmd *cobra.Command, o *awsOptions) error {
	cfg, err := config.Load(o.config)
	if err != nil {
		return failed(err)
	}
	server := o.server
	if server == "" {
		if server, err = os.Hostname(); err != nil {
			return failed(err)
		}
	}
	if cfg.Server(server) == nil {
		return failed(fmt.Errorf("server %q is not in %s: pass --server NAME", server, o.config))
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	env := &resource.AWSEnv{Settings: cfg.Cluster.AWS}
	var inst *awsops.Instance
	if needsIMDS(cfg) {
		i, err := env.Instance(ctx)
		if err != nil {
			return failed(err)
		}
		inst = &i
	}
	client, err := env.Client(ctx)
	if err != nil {
		return failed(err)
	}
	findings := client.Preflight(ctx, resource.AWSPlan(cfg, server, inst))
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	bad := 0
	for _, f := range findings {
		mark := "ok"
		if !f.OK {
			mark = "FAIL"
			bad++
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", mark, f.Check, f.Detail)
		if !f.OK && f.Fix != "" {
			fmt.Fprintf(w, "\t  fix: %s\t\n", f.Fix)
		}
	}
	w.Flush()
	if bad > 0 {
		return &exitError{code: exitFailed, err: fmt.Errorf("%d of %d checks failed", bad, len(findings))}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "all %d checks passed\n", len(findings))
	return nil
}

// needsIMDS reports whether the configuration leaves a region, VPC, ENI or
// AZ to discover from the instance metadata.
func needsIMDS(cfg *config.Config) bool {
	if cfg.Cluster.AWS.Region == "" {
		return true
	}
	for _, s := range cfg.Servers {
		for _, g := range cfg.Groups {
			for ri := range g.Resources {
				r := g.Resources[ri].For(s.Name)
				switch {
				case r.AWSVIP != nil && (r.AWSVIP.VPCID == "" || r.AWSVIP.ENIID == ""),
					r.AWSEIP != nil && r.AWSEIP.ENIID == "":
					return true
				}
			}
		}
	}
	return false
}
