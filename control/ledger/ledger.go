// Package ledger holds the cluster's agreement on who runs each failover
// group: one Record per group, carried in every heartbeat probe, merged by a
// total order so every node that has seen the same records draws the same
// conclusion.
//
// Only the owner of a record changes its state (bumping Seq); any node may
// start a new generation (bumping Gen) to claim a group whose owner is lost,
// or to carry out an operator's start, stop or move. A node never starts a
// group while a live peer reports running it, so a move waits for the old
// owner to stop.
package ledger

import "fmt"

// NoOwner is the Owner of a group that nobody is meant to run.
const NoOwner uint8 = 0xFF

// MaxServers is the most servers a cluster may have (FailedMask is 64 bits).
const MaxServers = 64

// State is a group's state as its owner reports it.
type State uint8

// Group states.
const (
	Offline State = iota
	Starting
	Online
	Stopping
	OnlineFailure
	OfflineFailure
	numStates
)

var stateNames = [...]string{"offline", "starting", "online", "stopping", "online-failure", "offline-failure"}

// String returns the state's name as status shows it.
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Cause says why a generation was started; the new owner's scripts see it.
type Cause uint8

// Causes.
const (
	CauseStart    Cause = iota // cluster start or an operator's start
	CauseFailover              // the owner was lost, failed to start it, or a monitor failed it over
	CauseMove                  // an operator's move
	CauseStop                  // an operator's stop, a final action, or a hand-over
	numCauses
)

var causeNames = [...]string{"start", "failover", "move", "stop"}

// String returns the cause's name.
func (c Cause) String() string {
	if c < numCauses {
		return causeNames[c]
	}
	return fmt.Sprintf("cause(%d)", uint8(c))
}

// Record is one group's ownership record.
type Record struct {
	// Gen counts ownership decisions; a higher Gen supersedes a lower one.
	Gen uint32
	// Seq counts the owner's state reports within a generation.
	Seq uint32
	// Owner is the server index meant to run the group, or NoOwner.
	Owner uint8
	// State is the owner's last report.
	State State
	// Stopped is set when an operator or a final action stopped the group:
	// nobody starts it until it is started again.
	Stopped bool
	// FailedMask has bit i set when the group failed to start on server i;
	// such servers are not chosen until the group has been online again.
	FailedMask uint64
	// Cause says why this generation was started.
	Cause Cause
}

// Failed reports whether the group failed to start on server.
func (r Record) Failed(server uint8) bool {
	return server < MaxServers && r.FailedMask&(1<<server) != 0
}

// Supersedes reports whether record a is to be preferred over b. rank gives a
// server's position in the group's priority order (0 highest); it decides
// between two claims of the same generation, which the partition of a
// network or two simultaneous failures can produce.
func Supersedes(a, b Record, rank func(server uint8) int) bool {
	if a.Gen != b.Gen {
		return a.Gen > b.Gen
	}
	if a.Owner != b.Owner {
		return ownerRank(a.Owner, rank) < ownerRank(b.Owner, rank)
	}
	if a.Seq != b.Seq {
		return a.Seq > b.Seq
	}
	return false
}

func ownerRank(owner uint8, rank func(uint8) int) int {
	if owner == NoOwner {
		return 1 << 20
	}
	if r := rank(owner); r >= 0 {
		return r
	}
	return 1 << 19
}
