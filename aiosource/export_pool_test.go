package aiosource

import "time"

// SetThreadPoolIdleTimeout shortens, for a test, how long an idle worker above
// thread-pool-min waits for work before it exits (10 s otherwise). Workers already
// idle keep the timeout they started waiting with.
func SetThreadPoolIdleTimeout(c *Context, d time.Duration) {
	c.pool.mu.Lock()
	c.pool.idleTimeout = d
	c.pool.mu.Unlock()
}

// ThreadPoolIdleTimeout returns the idle timeout of c's workers.
func ThreadPoolIdleTimeout(c *Context) time.Duration {
	c.pool.mu.Lock()
	defer c.pool.mu.Unlock()
	return c.pool.idleTimeout
}

// ThreadPoolWorkers returns how many workers c's pool has (QEMU's cur_threads) and how
// many of them wait for work.
func ThreadPoolWorkers(c *Context) (workers, idle int) {
	c.pool.mu.Lock()
	defer c.pool.mu.Unlock()
	return c.pool.cur, len(c.pool.idle)
}
