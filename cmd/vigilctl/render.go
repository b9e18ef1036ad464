package main

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/vigil-ha/vigil/control/api"
)

// renderStatus writes s as the `vigilctl status` table: the node's header,
// then its NODES with their lanes, GROUPS with their resources, MONITORS,
// and the LAST FAILOVER timeline.
func renderStatus(w io.Writer, s api.Status) {
	var out bytes.Buffer
	writeStatus(&out, s)
	// Empty last cells leave padding behind: drop it.
	lines := strings.SplitAfter(out.String(), "\n")
	for i, l := range lines {
		if body, ok := strings.CutSuffix(l, "\n"); ok {
			lines[i] = strings.TrimRight(body, " ") + "\n"
		}
	}
	io.WriteString(w, strings.Join(lines, ""))
}

// writeStatus writes the table of renderStatus, padding and all.
func writeStatus(w io.Writer, s api.Status) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	row := func(cells ...string) {
		for i, c := range cells {
			cells[i] = clean(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}

	service := s.Service
	if s.Reason != "" {
		service += " (" + s.Reason + ")"
	}
	row("Cluster:", s.Cluster)
	row("Server:", s.Server)
	row("Service:", service)
	row("Heartbeat:", dash(s.Heartbeat))
	row("Config:", dash(shortHash(s.ConfigHash)))
	tw.Flush()

	fmt.Fprintln(w, "\nNODES")
	if len(s.Nodes) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		row("  NAME", "STATE", "SERVICE", "RTT", "MISSES", "NOTE")
		for _, n := range s.Nodes {
			mark := "  "
			if n.Self {
				mark = "* "
			}
			row(mark+n.Name, n.State, dash(n.Service), "", "", n.Reason)
			for _, l := range n.Lanes {
				state := "down"
				if l.Up {
					state = "up"
				}
				row("    lane "+l.Name, state, "", formatRTT(l.RTT), strconv.FormatUint(l.Misses, 10), "")
			}
		}
		tw.Flush()
	}

	fmt.Fprintln(w, "\nGROUPS")
	if len(s.Groups) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		row("  NAME", "STATE", "OWNER", "GEN", "NOTE")
		for _, g := range s.Groups {
			var notes []string
			if g.Stopped {
				notes = append(notes, "stopped by operator")
			}
			if len(g.FailedOn) > 0 {
				notes = append(notes, "failed on "+strings.Join(g.FailedOn, ", "))
			}
			row("  "+g.Name, g.State, dash(g.Owner), strconv.FormatUint(uint64(g.Generation), 10), strings.Join(notes, "; "))
			for _, r := range g.Resources {
				state := r.State
				if state == api.StateOffline && g.Owner != "" && g.Owner != s.Server {
					// Resource states are this server's; the group runs elsewhere.
					state = "standby"
				}
				row("    "+r.Name+" ("+r.Type+")", state, "", "", r.LastError)
			}
		}
		tw.Flush()
	}

	fmt.Fprintln(w, "\nMONITORS")
	if len(s.Monitors) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		row("  NAME", "TYPE", "STATE", "REACTIVATIONS", "FAILOVERS", "MESSAGE")
		for _, m := range s.Monitors {
			msg := m.Message
			if m.Code != 0 {
				msg = strings.TrimSuffix(fmt.Sprintf("%d: %s", m.Code, m.Message), ": ")
			}
			row("  "+m.Name, m.Type, m.State, strconv.Itoa(m.Reactivations), strconv.Itoa(m.Failovers), msg)
		}
		tw.Flush()
	}

	if len(s.VIPs) > 0 {
		fmt.Fprintln(w, "\nVIP TRAFFIC (counted in the kernel)")
		row("  ADDRESS", "INTERFACE", "BOUND", "PACKETS", "BYTES", "FIRST PACKET AFTER BINDING")
		for _, v := range s.VIPs {
			first := "-"
			if v.FirstPacketAfter != nil {
				first = formatRTT(*v.FirstPacketAfter)
			}
			bound := "no"
			if v.Bound {
				bound = "yes"
			}
			row("  "+v.Address, v.Interface, bound, strconv.FormatUint(v.Packets, 10), strconv.FormatUint(v.Bytes, 10), first)
		}
		tw.Flush()
	}

	if len(s.Mirrors) > 0 {
		fmt.Fprintln(w, "\nMIRROR DISKS")
		row("  NAME", "ROLE", "CONNECTION", "IN SYNC", "DIRTY", "DEVICE")
		for _, m := range s.Mirrors {
			insync := fmt.Sprintf("%.2f%%", m.InSyncPercent)
			if !m.Consistent {
				insync += " (inconsistent)"
			}
			dev := dash(m.Device)
			if m.MountPoint != "" {
				dev += " on " + m.MountPoint
			}
			row("  "+m.Name, m.Role, m.State, insync, bytesText(m.DirtyBytes), dev)
		}
		tw.Flush()
	}

	renderTimeline(w, s.LastFailover)
}

// renderTimeline writes the LAST FAILOVER section: every event with its
// offset from the first one, and the total.
func renderTimeline(w io.Writer, t *api.Timeline) {
	if t == nil {
		fmt.Fprintln(w, "\nLAST FAILOVER\n  none")
		return
	}
	title := "group " + t.Group + ": "
	if t.From != "" {
		title += t.From + " -> "
	}
	title += t.To
	if len(t.Events) > 0 {
		title += " at " + t.Events[0].At.UTC().Format("2006-01-02 15:04:05.000Z07:00")
	}
	fmt.Fprintln(w, "\nLAST FAILOVER  "+clean(title))
	if len(t.Events) == 0 {
		fmt.Fprintln(w, "  (no events)")
		return
	}
	first := t.Events[0].At
	for _, e := range t.Events {
		fmt.Fprintf(w, "  %s  %s\n", offset(e.At.Sub(first)), clean(e.What))
	}
	fmt.Fprintf(w, "  total %.1f ms\n", millis(t.Events[len(t.Events)-1].At.Sub(first)))
}

// offset formats d as "+   0.0 ms".
func offset(d time.Duration) string {
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	return fmt.Sprintf("%s%6.1f ms", sign, millis(d))
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// formatRTT formats a round-trip time in µs below a millisecond, in ms below
// a second; "-" when unknown.
func formatRTT(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", (d+time.Microsecond/2)/time.Microsecond)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", millis(d))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// shortHash keeps the first 12 characters of a configuration hash, enough to
// compare nodes at a glance; --json shows it whole.
func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// dash stands in for an empty value.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clean makes s one line of printable text: a script's message may hold
// tabs, newlines, terminal escapes or bidi overrides, which would break the
// table or mislead its reader.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return ' '
		}
		return r
	}, s)
}
