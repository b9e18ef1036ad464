package node

import (
	"time"

	"github.com/vigil-ha/vigil/control/api"
)

// timeline collects the events of one failover or move of a group.
type timeline struct {
	api.Timeline
	// waiting is set once "waiting for the old owner" has been noted.
	waiting bool
}

const maxTimelineEvents = 64

// newTimeline opens a timeline for g, replacing any open one.
func (g *group) newTimeline(from, to string) *timeline {
	g.tl = &timeline{Timeline: api.Timeline{Group: g.cfg.Name, From: from, To: to}}
	return g.tl
}

// add appends an event; events stay in time order.
func (t *timeline) add(at time.Time, what string) {
	if len(t.Events) >= maxTimelineEvents {
		return
	}
	i := len(t.Events)
	for i > 0 && t.Events[i-1].At.After(at) {
		i--
	}
	t.Events = append(t.Events, api.Event{})
	copy(t.Events[i+1:], t.Events[i:])
	t.Events[i] = api.Event{At: at, What: what}
}

// addIf appends an event when a timeline is open (t may be nil).
func (t *timeline) addIf(at time.Time, what string) {
	if t != nil {
		t.add(at, what)
	}
}

func (t *timeline) total() time.Duration {
	if len(t.Events) < 2 {
		return 0
	}
	return t.Events[len(t.Events)-1].At.Sub(t.Events[0].At)
}

// finishTimeline closes g's timeline and makes it the node's last failover.
func (n *Node) finishTimeline(g *group) {
	t := g.tl
	g.tl = nil
	cp := t.Timeline
	cp.Events = append([]api.Event(nil), t.Events...)
	n.lastFailover = &cp
	if n.metrics != nil && cp.To == n.name {
		n.metrics.ObserveFailover(g.cfg.Name, t.total())
	}
}
