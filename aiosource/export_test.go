package aiosource

// QueuedCompletions counts the thread-pool results waiting for the loop to deliver
// them. The tests call it while no goroutine drives c.
func QueuedCompletions(c *Context) int {
	n := 0
	for r := c.pool.done.Load(); r != nil; r = r.next {
		n++
	}
	return n
}
