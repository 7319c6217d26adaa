package aiosource

// LoopWaiting reports whether the thread that drives c announced that it is about to
// block or is blocked (notify_me non-zero: a Poll between its timeout computation and
// the end of its wait, or a GLib iteration between prepare and check). The clock tests
// wait for it before they enable a clock from another goroutine, so the enable must wake
// a loop that already decided how long to sleep.
func LoopWaiting(c *Context) bool { return c.r.Waiting() != 0 }
