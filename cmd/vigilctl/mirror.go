package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/control/api"
)

// mirrorCmd is `vigilctl mirror status|resync|verify|promote|discard`.
func mirrorCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Show and operate this node's mirror disks",
		Args:  cobra.NoArgs,
		RunE:  needSubcommand,
	}
	var asJSON bool
	status := &cobra.Command{
		Use:   "status [DISK]",
		Short: "Show the mirror disks: role, connection, sync state, dirty bytes, lag, resync rate and ETA",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), statusTimeout)
			defer cancel()
			s, err := c.client().Status(ctx)
			if err != nil {
				return failed(err)
			}
			ms := s.Mirrors
			if len(args) == 1 {
				ms = nil
				for _, m := range s.Mirrors {
					if m.Name == args[0] {
						ms = append(ms, m)
					}
				}
				if len(ms) == 0 {
					return failed(fmt.Errorf("no mirror disk %q on %s", args[0], s.Server))
				}
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return failed(enc.Encode(ms))
			}
			renderMirrors(cmd.OutOrStdout(), ms)
			return nil
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print the disks as indented JSON")

	var full bool
	resync := &cobra.Command{
		Use:   "resync DISK",
		Short: "Copy the disk's dirty regions (or, with --full, all of it) to the peer now",
		Args:  cobra.ExactArgs(1),
		RunE: op(func(ctx context.Context, args []string) (string, error) {
			if err := c.client().MirrorResync(ctx, args[0], full); err != nil {
				return "", fmt.Errorf("resync %s: %w", args[0], err)
			}
			return "resync of " + args[0] + " started", nil
		}),
	}
	resync.Flags().BoolVar(&full, "full", false, "copy the whole disk, not only the dirty regions")

	var mend bool
	verify := &cobra.Command{
		Use:   "verify DISK",
		Short: "Compare the disk on both nodes online (checksums), reporting the ranges that differ",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := c.client().MirrorVerify(cmd.Context(), args[0], mend)
			if err != nil {
				return failed(fmt.Errorf("verify %s: %w", args[0], err))
			}
			renderVerify(cmd.OutOrStdout(), args[0], res)
			if res.MismatchedBytes > 0 && !res.Resynced {
				return failed(fmt.Errorf("verify %s: %d bytes differ", args[0], res.MismatchedBytes))
			}
			return nil
		},
	}
	verify.Flags().BoolVar(&mend, "resync", false, "resync the ranges that differ from the primary")

	var force bool
	promote := &cobra.Command{
		Use:   "promote DISK",
		Short: "Make this node's side of the disk primary (without starting its group)",
		Long: "Make this node's side of the disk primary, without starting its group. It is refused while the\n" +
			"peer is primary, and, without --force, when this node's data is older than the peer's or\n" +
			"inconsistent (an interrupted resync). Start the group here afterwards to expose and mount it.",
		Args: cobra.ExactArgs(1),
		RunE: op(func(ctx context.Context, args []string) (string, error) {
			if err := c.client().MirrorPromote(ctx, args[0], force); err != nil {
				return "", fmt.Errorf("promote %s: %w", args[0], err)
			}
			return args[0] + " is primary on this node", nil
		}),
	}
	promote.Flags().BoolVar(&force, "force", false, "promote even older or inconsistent data (it becomes the newest)")

	discard := &cobra.Command{
		Use:   "discard DISK",
		Short: "Resolve a split brain by discarding this node's changes: the peer's data is copied here",
		Args:  cobra.ExactArgs(1),
		RunE: op(func(ctx context.Context, args []string) (string, error) {
			if err := c.client().MirrorDiscard(ctx, args[0]); err != nil {
				return "", fmt.Errorf("discard %s: %w", args[0], err)
			}
			return "this node's changes to " + args[0] + " will be discarded: resyncing from the peer", nil
		}),
	}
	cmd.AddCommand(status, resync, verify, promote, discard)
	return cmd
}

// renderMirrors writes the mirror disks as clpmdstat does: one block per
// disk.
func renderMirrors(w io.Writer, ms []api.Mirror) {
	if len(ms) == 0 {
		fmt.Fprintln(w, "no mirror disks on this node")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, clean(v)) }
	for i, m := range ms {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "%s\n", clean(m.Name))
		role := m.Role
		if m.PeerRole != "" {
			role += " (peer " + m.PeerRole + ")"
		}
		row("Role:", role)
		row("Connection:", m.State)
		row("Mode:", m.Mode)
		sync := fmt.Sprintf("%.2f%% in sync, %s dirty", m.InSyncPercent, bytesText(m.DirtyBytes))
		if !m.Consistent {
			sync += ", data INCONSISTENT"
		}
		row("Sync:", sync)
		row("Size:", bytesText(m.SizeBytes))
		row("Activity log:", fmt.Sprintf("%d extents hot, %d writes waited for a bitmap sync", m.HotExtents, m.BitmapSyncs))
		if m.LagBytes > 0 || m.Lag > 0 {
			row("Lag:", fmt.Sprintf("%s, oldest %s", bytesText(m.LagBytes), m.Lag.Round(time.Millisecond)))
		}
		if m.ResyncTotal > 0 {
			rs := fmt.Sprintf("%s of %s", bytesText(m.ResyncDone), bytesText(m.ResyncTotal))
			if m.State == "resyncing" {
				rs += fmt.Sprintf(", %s/s, ETA %s", bytesText(uint64(m.ResyncRate)), m.ResyncETA.Round(time.Second))
			}
			row("Resync:", rs)
		}
		dev := dash(m.Device)
		if m.MountPoint != "" {
			dev += " on " + m.MountPoint
		}
		row("Device:", dev+" ("+m.Frontend+")")
		if m.Verdict != "" {
			row("Last verdict:", m.Verdict)
		}
		if m.LastError != "" {
			row("Last error:", m.LastError)
		}
	}
	tw.Flush()
}

// renderVerify writes a verify's result.
func renderVerify(w io.Writer, disk string, r api.VerifyResult) {
	fmt.Fprintf(w, "%s: checked %s in %s, %s differ\n", disk, bytesText(r.CheckedBytes), r.Took.Round(time.Millisecond), bytesText(r.MismatchedBytes))
	for _, m := range r.Mismatches {
		fmt.Fprintf(w, "  differs: offset %d, %d bytes\n", m.Offset, m.Length)
	}
	if r.Resynced {
		fmt.Fprintln(w, "  the differing ranges were resynced from the primary")
	}
}

// bytesText writes n in binary units.
func bytesText(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.2f", float64(n)/float64(div)), "0"), ".0") + " " + string("KMGTPE"[exp]) + "iB"
}
