package glibloop_test

import (
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/testutil"

	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/leakcheck"
)

// Misuse is caught at the call that makes it: a nil where a callback is required panics
// there, with a string that names the call and the argument, and attaches nothing.

func TestMisuseNewSourceNil(t *testing.T) {
	leakcheck.Handles(t) // no cgo handle (source) is left behind by the rejected call
	testutil.MustPanic(t, "glibloop: NewSource: nil SourceFuncs", func() { glibloop.NewSource(nil) })
	var f glibloop.SourceFuncs
	testutil.MustPanic(t, "glibloop: NewSource: nil SourceFuncs", func() { glibloop.NewSource(f) })
}

func TestMisuseNilCallbacks(t *testing.T) {
	fd := -1
	for _, tc := range []struct {
		want string
		call func(c *glibloop.MainContext)
	}{
		{"glibloop: IdleAdd: nil fn", func(c *glibloop.MainContext) { glibloop.IdleAdd(c, nil) }},
		{"glibloop: IdleAddPriority: nil fn", func(c *glibloop.MainContext) {
			glibloop.IdleAddPriority(c, glibloop.PriorityHigh, nil)
		}},
		{"glibloop: TimeoutAdd: nil fn", func(c *glibloop.MainContext) { glibloop.TimeoutAdd(c, 0, nil) }},
		{"glibloop: TimeoutAddPriority: nil fn", func(c *glibloop.MainContext) {
			glibloop.TimeoutAddPriority(c, glibloop.PriorityHigh, 0, nil)
		}},
		{"glibloop: UnixFDAdd: nil fn", func(c *glibloop.MainContext) { glibloop.UnixFDAdd(c, fd, glibloop.IOIn, nil) }},
		{"glibloop: UnixFDAddPriority: nil fn", func(c *glibloop.MainContext) {
			glibloop.UnixFDAddPriority(c, glibloop.PriorityHigh, fd, glibloop.IOIn, nil)
		}},
		{"glibloop: Invoke: nil fn", func(c *glibloop.MainContext) { c.Invoke(nil) }},
		{"glibloop: InvokePriority: nil fn", func(c *glibloop.MainContext) {
			c.InvokePriority(glibloop.PriorityHigh, nil)
		}},
	} {
		t.Run(tc.want, func(t *testing.T) {
			leakcheck.Handles(t)
			c := testutil.NewContext(t)
			fd = testutil.Eventfd(t)
			testutil.EfdWrite(t, fd) // a registered fd source would be ready at once
			testutil.MustPanic(t, tc.want, func() { tc.call(c) })
			// Nothing was attached: no iteration dispatches anything, nor raises.
			if n := iterateUntilIdle(c); n != 0 {
				t.Fatalf("%d iterations dispatched something after the rejected call", n)
			}
			// The context owned by this thread (Invoke runs at once for its owner): the
			// check comes first there too.
			if !c.Acquire() {
				t.Fatal("cannot acquire the context")
			}
			defer c.Release()
			testutil.MustPanic(t, tc.want, func() { tc.call(c) })
			if n := iterateUntilIdle(c); n != 0 {
				t.Fatalf("%d iterations dispatched something after the rejected call by the owner", n)
			}
			// An Unref'd context is a runtime condition (a no-op), a nil fn is not.
			gone := glibloop.NewMainContext()
			gone.Unref()
			testutil.MustPanic(t, tc.want, func() { tc.call(gone) })
		})
	}
}

func TestMisuseAddChildSourceNil(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var n int
	s := alwaysReady(&n)
	defer s.Unref()
	testutil.MustPanic(t, "glibloop: AddChildSource: nil child", func() { s.AddChildSource(nil) })
	s.Attach(c)
	if !c.Iteration(false) || n != 1 {
		t.Fatalf("the parent was dispatched %d times, want 1", n)
	}
	s.Destroy()
}

// A negative TimeoutAdd interval is a time already past, as with time.AfterFunc: the
// source fires at the next iteration, as interval 0 does.
func TestTimeoutAddNegativeInterval(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	n := 0
	id := glibloop.TimeoutAdd(c, -time.Hour, func() bool { n++; return false })
	if id == 0 {
		t.Fatal("TimeoutAdd with a negative interval returned 0")
	}
	deadline := time.Now().Add(5 * time.Second)
	for n == 0 && time.Now().Before(deadline) {
		c.Iteration(false)
	}
	if n != 1 {
		t.Fatalf("the timeout ran %d times, want 1", n)
	}
}
