//go:build !race

package aiosource

// threadCount is a count in a thread record that only code locked to the thread reads
// and writes (thread.held). Goroutines that take turns on one OS thread are ordered by
// the thread itself, so outside race builds it is a plain integer. The race detector
// cannot see that order: race builds use an atomic (thread_held_race.go).
type threadCount struct{ n int32 }

func (c *threadCount) Add(d int32) int32 {
	c.n += d
	return c.n
}

func (c *threadCount) Load() int32 { return c.n }
