package resource

import (
	"context"
	"fmt"

	"github.com/vigil-ha/vigil/control/monitor"
	"github.com/vigil-ha/vigil/replicator/engine"
	"github.com/vigil-ha/vigil/replicator/mirror"
)

// MirrorDisk is the guides' mirror disk resource: starting it promotes
// this node's side of the disk, exposes it and mounts it; stopping it
// unmounts, unexposes, flushes on both nodes and demotes. The disk itself
// (replication, the mirror connect) runs for the daemon's whole life, on
// the standby too.
type MirrorDisk struct {
	Disk *mirror.Disk
}

// Mirror disk monitor codes: errors are small numbers, warnings add 100
// as for the guides' monitors.
const (
	// CodeMirrorSplitBrain: both nodes' data diverged; an operator must
	// choose the side to discard.
	CodeMirrorSplitBrain = 3
	// CodeMirrorNotConnected: the peer is not connected (warning).
	CodeMirrorNotConnected = 101
	// CodeMirrorResyncing: a resync is copying dirty regions (warning).
	CodeMirrorResyncing = 102
	// CodeMirrorInconsistent: this node's data is an interrupted resync
	// target and cannot be promoted without force (warning).
	CodeMirrorInconsistent = 104
)

// Start promotes, exposes and mounts the disk. The cluster starts it only
// on the node it chose, so a peer still primary on the mirror connect is
// taken over.
func (m *MirrorDisk) Start(ctx context.Context) error {
	return m.Disk.Promote(ctx, true, false)
}

// Stop unmounts, unexposes, flushes and demotes the disk.
func (m *MirrorDisk) Stop(ctx context.Context) error { return m.Disk.Demote(ctx) }

func (m *MirrorDisk) String() string { return "mirror disk " + m.Disk.Name() }

// Check is the guides' mirror disk monitor: OK while the disk is
// connected and in sync, a warning while the peer is away, a resync runs
// or this side is inconsistent, an error on split brain.
func (m *MirrorDisk) Check(context.Context) monitor.Result {
	st := m.Disk.Status().Engine
	switch {
	case st.State == engine.SplitBrain:
		return monitor.Result{Status: monitor.Error, Code: CodeMirrorSplitBrain,
			Message: fmt.Sprintf("Mirror disk %s: split brain: both nodes wrote while apart; choose the side to discard (vigilctl mirror discard).", m.Disk.Name())}
	case !st.Consistent && st.Role == engine.Secondary && st.State != engine.Resyncing:
		return monitor.Result{Status: monitor.Warning, Code: CodeMirrorInconsistent,
			Message: fmt.Sprintf("Mirror disk %s: this node's data is inconsistent until a resync completes.", m.Disk.Name())}
	case st.State == engine.Resyncing:
		return monitor.Result{Status: monitor.Warning, Code: CodeMirrorResyncing,
			Message: fmt.Sprintf("Mirror disk %s: resyncing, %.1f%% in sync.", m.Disk.Name(), st.InSyncPercent)}
	case st.State != engine.Connected:
		return monitor.Result{Status: monitor.Warning, Code: CodeMirrorNotConnected,
			Message: fmt.Sprintf("Mirror disk %s: not connected to the peer (%s); %d bytes to resync.", m.Disk.Name(), st.State, st.DirtyBytes)}
	}
	return monitor.Result{Status: monitor.OK}
}
