//go:build !race && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package watch

import "sync/atomic"

// Counter is a count that one thread at a time adds to and any goroutine reads (see
// counter.go). Here: a plain addition and an atomic load.
type Counter struct{ v uint64 }

// Add adds n and returns the new count; only one thread at a time may add (see
// Counter).
func (c *Counter) Add(n uint64) uint64 {
	c.v += n
	return c.v
}

// Load returns the count, from any goroutine.
func (c *Counter) Load() uint64 { return atomic.LoadUint64(&c.v) }
