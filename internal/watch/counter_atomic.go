//go:build race || !(amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package watch

import "sync/atomic"

// Add adds n and returns the new count; only one thread at a time may add (see
// Counter).
func (c *Counter) Add(n uint64) uint64 { return atomic.AddUint64(&c.v, n) }

// Load returns the count, from any goroutine.
func (c *Counter) Load() uint64 { return atomic.LoadUint64(&c.v) }
