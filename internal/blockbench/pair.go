package blockbench

import "errors"

// Pair is a Target that writes each block to two targets at once, at the
// same offset, and returns when both hold it: the disk work of one write
// of a mirror whose two copies share a disk, without the network. Its
// latency is the floor of a sync mirror's on such a disk. The second
// target is written by a helper goroutine, which Close stops.
type Pair struct {
	a, b Target
	req  chan pairWrite
	done chan error
}

type pairWrite struct {
	p    []byte
	off  int64
	sync bool
}

// NewPair returns a Pair writing a and b. A Pair is written by one
// goroutine at a time.
func NewPair(a, b Target) *Pair {
	p := &Pair{a: a, b: b, req: make(chan pairWrite), done: make(chan error)}
	go func() {
		for w := range p.req {
			p.done <- p.b.WriteAt(w.p, w.off, w.sync)
		}
	}()
	return p
}

// WriteAt writes p at off on both targets at once.
func (p *Pair) WriteAt(buf []byte, off int64, sync bool) error {
	p.req <- pairWrite{buf, off, sync}
	errA := p.a.WriteAt(buf, off, sync)
	return errors.Join(errA, <-p.done)
}

// Flush flushes both targets.
func (p *Pair) Flush() error { return errors.Join(p.a.Flush(), p.b.Flush()) }

// Close stops the helper goroutine; the Pair is not written after it.
func (p *Pair) Close() { close(p.req) }
