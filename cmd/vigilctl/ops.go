package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

// op returns the action of an operation: it calls do with a bounded context
// and prints done on success.
func op(do func(ctx context.Context, args []string) (done string, err error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ctx, cancel := context.WithTimeout(cmd.Context(), opTimeout)
		defer cancel()
		done, err := do(ctx, args)
		if err != nil {
			return failed(err)
		}
		fmt.Fprintln(cmd.OutOrStdout(), done)
		return nil
	}
}

// optional returns args[i], or "" when it is missing.
func optional(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

// clusterCmd is `vigilctl cluster start|stop`.
func clusterCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Start or stop the cluster service on this node",
		Args:  cobra.NoArgs,
		RunE:  needSubcommand,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "start",
		Short: "Start the cluster service on this node",
		Args:  cobra.NoArgs,
		RunE: op(func(ctx context.Context, _ []string) (string, error) {
			if err := c.client().ClusterStart(ctx); err != nil {
				return "", fmt.Errorf("start cluster service: %w", err)
			}
			return "cluster service started", nil
		}),
	}, &cobra.Command{
		Use:   "stop",
		Short: "Stop the cluster service on this node, stopping its groups",
		Args:  cobra.NoArgs,
		RunE: op(func(ctx context.Context, _ []string) (string, error) {
			if err := c.client().ClusterStop(ctx); err != nil {
				return "", fmt.Errorf("stop cluster service: %w", err)
			}
			return "cluster service stopped", nil
		}),
	})
	return cmd
}

// groupCmd is `vigilctl group start|stop|move`.
func groupCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Start, stop or move a failover group",
		Args:  cobra.NoArgs,
		RunE:  needSubcommand,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "start GROUP [SERVER]",
		Short: "Start a group on SERVER, or on its highest-priority eligible server",
		Args:  cobra.RangeArgs(1, 2),
		RunE: op(func(ctx context.Context, args []string) (string, error) {
			g, server := args[0], optional(args, 1)
			if err := c.client().GroupStart(ctx, g, server); err != nil {
				return "", fmt.Errorf("start group %s: %w", g, err)
			}
			if server == "" {
				return fmt.Sprintf("group %s started", g), nil
			}
			return fmt.Sprintf("group %s started on %s", g, server), nil
		}),
	}, &cobra.Command{
		Use:   "stop GROUP",
		Short: "Stop a group; nobody starts it again until `group start`",
		Args:  cobra.ExactArgs(1),
		RunE: op(func(ctx context.Context, args []string) (string, error) {
			g := args[0]
			if err := c.client().GroupStop(ctx, g); err != nil {
				return "", fmt.Errorf("stop group %s: %w", g, err)
			}
			return fmt.Sprintf("group %s stopped", g), nil
		}),
	}, &cobra.Command{
		Use:   "move GROUP [SERVER]",
		Short: "Move a group to SERVER, or to its next eligible server",
		Args:  cobra.RangeArgs(1, 2),
		RunE: op(func(ctx context.Context, args []string) (string, error) {
			g, server := args[0], optional(args, 1)
			if err := c.client().GroupMove(ctx, g, server); err != nil {
				return "", fmt.Errorf("move group %s: %w", g, err)
			}
			if server == "" {
				return fmt.Sprintf("group %s moved", g), nil
			}
			return fmt.Sprintf("group %s moved to %s", g, server), nil
		}),
	})
	return cmd
}

// monitorCmd is `vigilctl monitor suspend|resume`.
func monitorCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Suspend or resume a monitor resource",
		Args:  cobra.NoArgs,
		RunE:  needSubcommand,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "suspend MONITOR",
		Short: "Suspend a monitor: it stops checking until resumed",
		Args:  cobra.ExactArgs(1),
		RunE: op(func(ctx context.Context, args []string) (string, error) {
			m := args[0]
			if err := c.client().MonitorSuspend(ctx, m); err != nil {
				return "", fmt.Errorf("suspend monitor %s: %w", m, err)
			}
			return fmt.Sprintf("monitor %s suspended", m), nil
		}),
	}, &cobra.Command{
		Use:   "resume MONITOR",
		Short: "Resume a suspended monitor",
		Args:  cobra.ExactArgs(1),
		RunE: op(func(ctx context.Context, args []string) (string, error) {
			m := args[0]
			if err := c.client().MonitorResume(ctx, m); err != nil {
				return "", fmt.Errorf("resume monitor %s: %w", m, err)
			}
			return fmt.Sprintf("monitor %s resumed", m), nil
		}),
	})
	return cmd
}
