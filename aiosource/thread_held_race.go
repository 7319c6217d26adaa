//go:build race

package aiosource

import "sync/atomic"

// threadCount: see thread_held.go. Its atomic operations order, for the race detector,
// the fields of a thread record that goroutines taking turns on the thread touch.
type threadCount struct{ n atomic.Int32 }

func (c *threadCount) Add(d int32) int32 { return c.n.Add(d) }

func (c *threadCount) Load() int32 { return c.n.Load() }
