package aiosource

import "testing"

func registered(c *Context) bool {
	clocks.mu.Lock()
	defer clocks.mu.Unlock()
	_, ok := clocks.contexts[c]
	return ok
}

// ClockEnable reaches the contexts that made a timer (timerlist_new) and forgets them at
// Close (timerlist_free), so a closed context is neither kept alive nor touched; one
// closed already is not registered again by a late NewTimer.
func TestClockRegistryForgetsClosed(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if registered(c) {
		t.Fatal("a context without timers is registered")
	}
	c.NewTimer(ClockVirtual, ScaleNS, func() {})
	if !registered(c) {
		t.Fatal("a context with a timer is not registered")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if registered(c) {
		t.Fatal("a closed context is still registered")
	}
	c.NewTimer(ClockVirtual, ScaleNS, func() {})
	if registered(c) {
		t.Fatal("NewTimer after Close registered the context again")
	}
}
