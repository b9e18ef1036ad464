package drbd

import (
	"fmt"
	"strconv"
	"strings"
)

// minorState is one device's line of /proc/drbd (DRBD 8.4):
//
//	0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----
type minorState struct {
	// Conn is the connection state (cs:), Role and PeerRole the roles
	// (ro:), Disk and PeerDisk the disk states (ds:).
	Conn, Role, PeerRole, Disk, PeerDisk string
	// OutOfSync is the KiB still to resync (oos:).
	OutOfSync uint64
}

// parseProcDRBD reads the device lines of /proc/drbd by minor. Lines it
// does not know (the version header, sync progress bars) are skipped; a
// device line it cannot read is an error.
func parseProcDRBD(text string) (map[int]minorState, error) {
	out := map[int]minorState{}
	last := -1
	for line := range strings.Lines(text) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if n, ok := strings.CutSuffix(fields[0], ":"); ok {
			minor, err := strconv.Atoi(n)
			if err != nil {
				continue // "version:", "srcversion:"
			}
			if minor < 0 {
				return nil, fmt.Errorf("/proc/drbd: minor %d", minor)
			}
			var st minorState
			for _, f := range fields[1:] {
				k, v, ok := strings.Cut(f, ":")
				if !ok {
					continue
				}
				switch k {
				case "cs":
					st.Conn = v
				case "ro":
					st.Role, st.PeerRole, ok = strings.Cut(v, "/")
				case "ds":
					st.Disk, st.PeerDisk, ok = strings.Cut(v, "/")
				}
				if !ok {
					return nil, fmt.Errorf("/proc/drbd: minor %d: bad field %q", minor, f)
				}
			}
			if st.Conn == "" || st.Role == "" || st.Disk == "" {
				return nil, fmt.Errorf("/proc/drbd: minor %d: no cs:, ro: or ds: in %q", minor, strings.TrimSpace(line))
			}
			out[minor] = st
			last = minor
			continue
		}
		// The statistics line after a device line: ns:... oos:N.
		if last < 0 {
			continue
		}
		for _, f := range fields {
			if v, ok := strings.CutPrefix(f, "oos:"); ok {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("/proc/drbd: minor %d: bad %q", last, f)
				}
				st := out[last]
				st.OutOfSync = n
				out[last] = st
			}
		}
	}
	return out, nil
}
