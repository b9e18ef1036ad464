package meta

// Generations are a disk's generation identifiers, after DRBD's data
// generation UUIDs. Current names the data as it is now; a new random value
// is taken whenever the data starts to diverge from what the peer may hold
// (promotion while disconnected, a primary losing its peer). Bitmap is the
// Current the peer last shared with us, kept while the dirty bitmap tracks
// changes since; 0 when not tracking. History keeps the two previous
// values, newest first. 0 means "none" everywhere; Current 0 is a disk
// that never held data.
type Generations struct {
	Current uint64
	Bitmap  uint64
	History [2]uint64
}

// NewCurrent starts a new generation: called with a fresh random nonzero
// id when a primary loses its peer, or when a node is promoted while
// disconnected. The first time, the old Current becomes the Bitmap id
// (the dirty bitmap now tracks changes since the peer last saw us); if the
// bitmap already tracks, the old Current goes to History.
func (g Generations) NewCurrent(id uint64) Generations {
	switch {
	case g.Current == 0:
	case g.Bitmap == 0:
		g.Bitmap = g.Current
	default:
		g.History = [2]uint64{g.Current, g.History[0]}
	}
	g.Current = id
	return g
}

// ResyncSourceDone is the source's transition when a resync completes: the
// peer now holds Current, so the Bitmap id retires to History.
func (g Generations) ResyncSourceDone() Generations {
	if g.Bitmap != 0 {
		g.History = [2]uint64{g.Bitmap, g.History[0]}
		g.Bitmap = 0
	}
	return g
}

// ResyncTargetDone is the target's transition when a resync from a source
// with generations src completes: it now holds the source's data.
func (g Generations) ResyncTargetDone(src Generations) Generations {
	return Generations{Current: src.Current, History: src.ResyncSourceDone().History}
}

// Decision is the outcome of comparing two disks' generations.
type Decision uint8

// Decisions of Compare.
const (
	// InSync: both hold the same data; no resync.
	InSync Decision = iota
	// LocalNewer: the peer needs a resync from this node.
	LocalNewer
	// PeerNewer: this node needs a resync from the peer.
	PeerNewer
	// BothFresh: neither disk ever held data; an operator picks the
	// initial primary, which then runs a full sync.
	BothFresh
	// SplitBrain: both sides changed the data since they parted. Never
	// resolved automatically: an operator says which side to discard
	// (ResolveSplitBrain).
	SplitBrain
	// Unrelated: no common generation; the disks hold different data.
	Unrelated
)

var decisionNames = [...]string{"in_sync", "local_newer", "peer_newer", "both_fresh", "split_brain", "unrelated"}

// String returns the decision's name.
func (d Decision) String() string {
	if int(d) < len(decisionNames) {
		return decisionNames[d]
	}
	return "unknown"
}

// Verdict is Compare's answer. Full is set when the resync must copy the
// whole disk rather than the regions in the dirty bitmaps.
type Verdict struct {
	Decision Decision
	Full     bool
}

// Compare decides, from this node's and the peer's generations, which data
// is newer and how to resync. It is pure; the rules, first match wins:
//
//  1. both Current 0: BothFresh; one Current 0: the other is newer, full.
//  2. equal Current: InSync.
//  3. local Bitmap == peer Current: LocalNewer, differential (our bitmap
//     holds every change since the peer's state); symmetrically PeerNewer.
//  4. both Bitmap nonzero and equal: SplitBrain, differential (both
//     started tracking from the same shared state).
//  5. peer Current in local History: LocalNewer, full (the bitmap no
//     longer reaches back that far); symmetrically PeerNewer.
//  6. History or Bitmap ids shared otherwise: SplitBrain, full.
//  7. else Unrelated.
func Compare(local, peer Generations) Verdict {
	switch {
	case local.Current == 0 && peer.Current == 0:
		return Verdict{Decision: BothFresh, Full: true}
	case local.Current == 0:
		return Verdict{Decision: PeerNewer, Full: true}
	case peer.Current == 0:
		return Verdict{Decision: LocalNewer, Full: true}
	case local.Current == peer.Current:
		return Verdict{Decision: InSync}
	case local.Bitmap != 0 && local.Bitmap == peer.Current:
		return Verdict{Decision: LocalNewer}
	case peer.Bitmap != 0 && peer.Bitmap == local.Current:
		return Verdict{Decision: PeerNewer}
	case local.Bitmap != 0 && local.Bitmap == peer.Bitmap:
		return Verdict{Decision: SplitBrain}
	case inHistory(peer.Current, local.History):
		return Verdict{Decision: LocalNewer, Full: true}
	case inHistory(local.Current, peer.History):
		return Verdict{Decision: PeerNewer, Full: true}
	case shared(local, peer):
		return Verdict{Decision: SplitBrain, Full: true}
	}
	return Verdict{Decision: Unrelated, Full: true}
}

func inHistory(id uint64, h [2]uint64) bool { return id != 0 && (h[0] == id || h[1] == id) }

// shared reports whether any past id (Bitmap or History) of a is a past id
// of b: both descend from a common state and diverged.
func shared(a, b Generations) bool {
	for _, x := range [3]uint64{a.Bitmap, a.History[0], a.History[1]} {
		if x != 0 && (x == b.Bitmap || x == b.History[0] || x == b.History[1]) {
			return true
		}
	}
	return false
}

// ResolveSplitBrain turns a SplitBrain verdict into a resync once an
// operator has chosen the side whose changes are discarded. A
// differential split brain stays differential: the resync then covers
// the union of both dirty bitmaps. Any other verdict is returned as is.
func ResolveSplitBrain(v Verdict, discardLocal bool) Verdict {
	if v.Decision != SplitBrain {
		return v
	}
	if discardLocal {
		return Verdict{Decision: PeerNewer, Full: v.Full}
	}
	return Verdict{Decision: LocalNewer, Full: v.Full}
}
