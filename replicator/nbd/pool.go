package nbd

import (
	"math/bits"
	"sync"
)

// Request buffers come from pools by power-of-two size class, from 4 KiB to
// MaxRequestSize, so that steady traffic allocates nothing and a burst of
// large requests leaves reusable buffers behind rather than garbage.
const (
	minClassShift = 12 // 4 KiB
	maxClassShift = 25 // 32 MiB, MaxRequestSize
)

var bufPools [maxClassShift - minClassShift + 1]sync.Pool

// classOf returns the size class (a shift) of a buffer of n bytes,
// 0 < n <= MaxRequestSize.
func classOf(n int) int {
	if n <= 1<<minClassShift {
		return minClassShift
	}
	return bits.Len(uint(n - 1))
}

// classSize is the capacity of a buffer for n bytes: what it costs the
// server's memory budget.
func classSize(n int) int64 { return 1 << classOf(n) }

// getBuf returns a buffer of length n from its class's pool.
func getBuf(n int) *[]byte {
	c := classOf(n)
	if b, ok := bufPools[c-minClassShift].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<c)
	return &b
}

// putBuf returns b to its pool.
func putBuf(b *[]byte) {
	c := classOf(cap(*b))
	if cap(*b) != 1<<c {
		return
	}
	bufPools[c-minClassShift].Put(b)
}
