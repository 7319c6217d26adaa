package reactor

import (
	"testing"

	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/testutil"
)

// A Notify that read notify_me during one GLib wait may set KickSent after check ended
// it (it writes nothing then: the wait is over). The next prepare starts its wait with
// KickSent clear, so the first Notify of that wait writes: a stale bit would let every
// Notify of the wait skip its write while the eventfd may already have been read, and
// the loop would sleep with work queued.
func TestStaleKickSentIsClearedByPrepare(t *testing.T) {
	c := testutil.NewContext(t)
	r, err := New(func([]Event) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Source().Attach(c)
	if !c.Acquire() {
		t.Fatal("Acquire")
	}
	defer c.Release()
	r.c.Waiting().Or(kickSent) // left by a Notify that lost the race with check
	_, prio := c.Prepare()
	if w := r.c.Waiting().Load(); w != 1 {
		t.Fatalf("after prepare notify_me is %#x, want bit 0 alone", w)
	}
	r.Notify()
	if r.Kicks() != 1 {
		t.Fatal("the first Notify of the wait wrote no eventfd")
	}
	fds := make([]glibloop.PollFD, 4)
	_, n := c.Query(prio, fds)
	glibloop.PPoll(fds[:n], 0)
	if c.Check(prio, fds[:n]) {
		c.Dispatch()
	}
	if w := r.c.Waiting().Load(); w != 0 {
		t.Fatalf("after check notify_me is %#x, want 0", w)
	}
}
