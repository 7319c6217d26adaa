package aiosource

// FileAIOState reports, for the tests, the file I/O engine's requests not yet freed,
// the buffers it keeps pinned, whether its ring is open, and how many times it called
// io_uring_submit.
func FileAIOState(c *Context) (live, pinned int, ring bool, submits uint64) {
	u := &c.fileAIO
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, op := range u.ops {
		if op.pinPtr != nil {
			pinned++
		}
	}
	return len(u.ops) - len(u.free), pinned, u.ring != nil, u.submits
}

// SetFileAIOGenerations sets the generation of every slot of c's file I/O engine, so that
// a test reaches the wrap of the 31-bit generation quickly.
func SetFileAIOGenerations(c *Context, gen uint32) {
	u := &c.fileAIO
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, op := range u.ops {
		op.gen = gen
	}
}
