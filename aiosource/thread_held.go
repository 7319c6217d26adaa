//go:build !race

package aiosource

// threadCount is a count in a thread record (thread.held) that only code locked to the
// thread writes. Goroutines that take turns on one OS thread are ordered by the thread
// itself, so outside race builds it is a plain integer; the race detector cannot see
// that order, and race builds use an atomic (thread_held_race.go). A goroutine that is
// not locked may read it (Yield, Self and CurrentContext look at whether the thread
// they ran on holds a walk): an int32 is read whole, and such a reader may have moved
// to another thread since getm anyway, with or without an atomic.
type threadCount struct{ n int32 }

func (c *threadCount) Add(d int32) int32 {
	c.n += d
	return c.n
}

func (c *threadCount) Load() int32 { return c.n }
