package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// addrEvent is one change of the floating IP in a namespace.
type addrEvent struct {
	at   time.Time // when the benchmark read the netlink message
	node int
	add  bool // RTM_NEWADDR (else RTM_DELADDR)
}

// addrWatch records the floating IP's RTM_NEWADDR and RTM_DELADDR in one
// node's namespace, through a netlink subscription made inside it.
type addrWatch struct {
	node     int
	done     chan struct{}
	finished chan struct{}
	notify   chan struct{}

	mu     sync.Mutex
	events []addrEvent
	errs   []error
	once   sync.Once
}

// watchVIP subscribes to address events in node i's namespace. Events that
// happen after it returns are recorded.
func (e *env) watchVIP(i int) (*addrWatch, error) {
	h, err := netns.GetFromPath(filepath.Join(netnsDir, e.nodes[i]))
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", e.nodes[i], err)
	}
	defer h.Close() // the subscription socket keeps the namespace
	w := &addrWatch{node: i, done: make(chan struct{}), finished: make(chan struct{}), notify: make(chan struct{}, 1)}
	ch := make(chan netlink.AddrUpdate, 256)
	err = netlink.AddrSubscribeWithOptions(ch, w.done, netlink.AddrSubscribeOptions{
		Namespace:         &h,
		ReceiveBufferSize: 1 << 20,
		ErrorCallback: func(err error) {
			select {
			case <-w.done: // the socket closed under Receive: expected
			default:
				w.mu.Lock()
				w.errs = append(w.errs, err)
				w.mu.Unlock()
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to addresses in %s: %w", e.nodes[i], err)
	}
	go func() {
		defer close(w.finished)
		for u := range ch {
			at := time.Now()
			if !u.LinkAddress.IP.Equal(vip) {
				continue
			}
			w.mu.Lock()
			w.events = append(w.events, addrEvent{at: at, node: i, add: u.NewAddr})
			w.mu.Unlock()
			select {
			case w.notify <- struct{}{}:
			default:
			}
		}
	}()
	return w, nil
}

// snapshot returns the events so far.
func (w *addrWatch) snapshot() []addrEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]addrEvent(nil), w.events...)
}

// err returns the first subscription error, if any.
func (w *addrWatch) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) > 0 {
		return fmt.Errorf("address events of %s: %w (%d errors)", nodeNames[w.node], w.errs[0], len(w.errs))
	}
	return nil
}

// waitAdd waits until the floating IP is added (RTM_NEWADDR) and returns
// that event, or fails after d.
func (w *addrWatch) waitAdd(ctx context.Context, d time.Duration) (addrEvent, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		for _, ev := range w.snapshot() {
			if ev.add {
				return ev, nil
			}
		}
		if err := w.err(); err != nil {
			return addrEvent{}, err
		}
		select {
		case <-w.notify:
		case <-w.finished:
			return addrEvent{}, fmt.Errorf("address events of %s ended: %v", nodeNames[w.node], w.err())
		case <-t.C:
			return addrEvent{}, fmt.Errorf("%s did not bind %s within %v", nodeNames[w.node], vip, d)
		case <-ctx.Done():
			return addrEvent{}, ctx.Err()
		}
	}
}

// close ends the subscription and waits for its reader.
func (w *addrWatch) close() {
	w.once.Do(func() { close(w.done) })
	<-w.finished
}
