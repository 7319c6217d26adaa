//go:build race || !(amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package watch

import "sync/atomic"

// Counter is a count that one thread at a time adds to and any goroutine reads (see
// counter.go). Here: atomic operations, for the race detector and 32-bit targets.
type Counter struct{ v atomic.Uint64 }

// Add adds n and returns the new count; only one thread at a time may add (see
// Counter).
func (c *Counter) Add(n uint64) uint64 { return c.v.Add(n) }

// Load returns the count, from any goroutine.
func (c *Counter) Load() uint64 { return c.v.Load() }
