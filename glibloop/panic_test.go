package glibloop_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/testutil"

	"github.com/glibaio/glibaio/internal/cbaseline"
	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/glibloop"
)

// catch runs fn and returns the *PanicError it raised, or nil.
func catch(t *testing.T, fn func()) (pe *glibloop.PanicError) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		var ok bool
		if pe, ok = r.(*glibloop.PanicError); !ok {
			t.Fatalf("raised %T %v, want *glibloop.PanicError", r, r)
		}
	}()
	fn()
	return nil
}

// assertIntact checks that GLib came out of a recovered panic in a consistent state:
// nothing owns the context, the depth is back to 0, and the context still dispatches.
func assertIntact(t *testing.T, c *glibloop.MainContext) {
	t.Helper()
	if d := glibloop.MainDepth(); d != 0 {
		t.Fatalf("MainDepth = %d after the panic, want 0", d)
	}
	if c.IsOwner() {
		t.Fatal("the context is still owned by this thread after the panic")
	}
	acquired := make(chan bool)
	go func() {
		ok := c.Acquire()
		if ok {
			c.Release()
		}
		acquired <- ok
	}()
	if !<-acquired {
		t.Fatal("another thread cannot acquire the context after the panic")
	}
	var n int
	s := alwaysReady(&n)
	s.SetPriority(glibloop.PriorityHigh)
	s.Attach(c)
	c.Iteration(false)
	s.Destroy()
	s.Unref()
	if n != 1 {
		t.Fatal("the next iteration did not dispatch a healthy source")
	}
}

func checkPanic(t *testing.T, pe *glibloop.PanicError, value any, callback string) {
	t.Helper()
	if pe == nil {
		t.Fatalf("no panic was raised, want %v", value)
	}
	if pe.Value != value {
		t.Fatalf("PanicError.Value = %v, want %v", pe.Value, value)
	}
	if !strings.Contains(pe.Callback, callback) {
		t.Fatalf("PanicError.Callback = %q, want it to name %q", pe.Callback, callback)
	}
	// The stack is the panicking goroutine's at the panic: it shows the test closure
	// that panicked, below the trampoline.
	if !strings.Contains(string(pe.Stack), "glibloop_test.") || !strings.Contains(string(pe.Stack), "cshimSource") {
		t.Fatalf("PanicError.Stack does not show the panicking callback:\n%s", pe.Stack)
	}
}

func TestPanicInEachCallback(t *testing.T) {
	leakcheck.Handles(t)
	boom := func(kind string) func() { return func() { panic(kind + "-boom") } }
	for _, kind := range []string{"Prepare", "Check", "Dispatch"} {
		t.Run(kind, func(t *testing.T) {
			leakcheck.Handles(t)
			c := testutil.NewContext(t)
			f := &fullsrc{
				p: func(*glibloop.Source) (bool, time.Duration) { return false, 0 },
				c: func(*glibloop.Source) bool { return true },
				d: func(*glibloop.Source) bool { return true },
			}
			switch kind {
			case "Prepare":
				f.p = func(*glibloop.Source) (bool, time.Duration) { boom(kind)(); return false, 0 }
			case "Check":
				f.c = func(*glibloop.Source) bool { boom(kind)(); return false }
			case "Dispatch":
				f.d = func(*glibloop.Source) bool { boom(kind)(); return false }
			}
			s := glibloop.NewSource(f)
			s.SetName("panicky")
			s.Attach(c)
			pe := catch(t, func() { c.Iteration(false) })
			checkPanic(t, pe, kind+"-boom", kind)
			if !strings.Contains(pe.Callback, `"panicky"`) {
				t.Fatalf("Callback %q does not name the source", pe.Callback)
			}
			s.Destroy()
			s.Unref()
			assertIntact(t, c)
		})
	}
	t.Run("Finalize", func(t *testing.T) {
		leakcheck.Handles(t)
		c := testutil.NewContext(t)
		s := glibloop.NewSource(&fullsrc{f: func(*glibloop.Source) { panic("Finalize-boom") }})
		s.Attach(c)
		s.Unref()
		pe := catch(t, func() { s.Destroy() }) // drops the last reference
		checkPanic(t, pe, "Finalize-boom", "Finalize")
		assertIntact(t, c)
	})
}

// A Dispatch panic leaves the source attached (its state is the user's to judge), and
// the loop keeps its other work.
func TestPanicKeepsSourceAndOtherWork(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var calls, other int
	s := glibloop.NewSource(&pdsrc{
		p: func(*glibloop.Source) (bool, time.Duration) { return true, 0 },
		d: func(*glibloop.Source) bool {
			calls++
			if calls == 1 {
				panic("first")
			}
			return true
		},
	})
	s.Attach(c)
	defer s.Unref()
	defer s.Destroy()
	o := alwaysReady(&other)
	o.Attach(c) // same priority: dispatched in the same iteration, after s
	defer o.Unref()
	defer o.Destroy()
	if pe := catch(t, func() { c.Iteration(false) }); pe == nil || pe.Value != "first" {
		t.Fatalf("want the first panic, got %v", pe)
	}
	if other != 1 {
		t.Fatalf("the other ready source was dispatched %d times in the panicking iteration, want 1", other)
	}
	c.Iteration(false)
	if calls != 2 || s.IsDestroyed() {
		t.Fatalf("after a panic the source was dispatched %d times (destroyed=%v), want 2 and attached", calls, s.IsDestroyed())
	}
}

// Two callbacks that panic in one iteration: the first is raised, the second chained.
func TestTwoPanicsChain(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	mk := func(v string) *glibloop.Source {
		return glibloop.NewSource(&pdsrc{
			p: func(*glibloop.Source) (bool, time.Duration) { return true, 0 },
			d: func(s *glibloop.Source) bool { s.Destroy(); panic(v) },
		})
	}
	a, b := mk("a"), mk("b")
	a.Attach(c)
	b.Attach(c)
	a.Unref()
	b.Unref()
	pe := catch(t, func() { c.Iteration(false) })
	if pe == nil || pe.Value != "a" || pe.Next == nil || pe.Next.Value != "b" {
		t.Fatalf("want panic a then b, got %v", pe)
	}
	assertIntact(t, c)
}

// A panic in a nested iteration unwinds the user code between the two levels and
// reaches the outer driver with its original value, wrapped once.
func TestPanicNested(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	inner := glibloop.NewSource(&dsrc{d: func(*glibloop.Source) bool { panic(errInner) }})
	outerRan, afterNested := false, false
	outer := glibloop.NewSource(&pdsrc{
		p: func(*glibloop.Source) (bool, time.Duration) { return !outerRan, -1 },
		d: func(*glibloop.Source) bool {
			outerRan = true
			inner.SetReadyTime(0)
			c.Iteration(false) // raises the inner panic here
			afterNested = true
			return true
		},
	})
	outer.Attach(c)
	inner.Attach(c)
	defer outer.Unref()
	defer inner.Unref()
	defer outer.Destroy()
	defer inner.Destroy()
	pe := catch(t, func() { c.Iteration(false) })
	if pe == nil || !errors.Is(pe, errInner) || pe.Next != nil {
		t.Fatalf("want the inner panic once, got %v", pe)
	}
	if afterNested {
		t.Fatal("the panic did not unwind the outer dispatch")
	}
	assertIntact(t, c)
}

var errInner = errors.New("inner boom")

// Under the loop driver, Run raises the panic and the loop can run again.
func TestPanicUnderLoopRun(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	l := glibloop.NewLoop(c)
	id := glibloop.IdleAdd(c, func() bool { panic("in-run") })
	if id == 0 {
		t.Fatal("IdleAdd returned 0")
	}
	pe := catch(t, func() { l.Run(t.Context()) })
	checkPanic(t, pe, "in-run", "source function")
	if l.IsRunning() {
		t.Fatal("the loop still counts as running after the panic")
	}
	assertIntact(t, c)
	// The panicking idle was removed; the loop runs and quits normally.
	glibloop.IdleAdd(c, func() bool { l.Quit(); return false })
	if err := l.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// Typed callbacks: a panicking one is removed, and its handle released.
func TestPanicTypedCallbacks(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	n := 0
	glibloop.IdleAdd(c, func() bool { n++; panic("idle") })
	checkPanic(t, catch(t, func() { c.Iteration(false) }), "idle", "source function")
	if c.Iteration(false) || n != 1 {
		t.Fatalf("a panicking idle callback ran %d times, want 1", n)
	}
	// Invoke runs at once for the owner; its panic comes out of Invoke.
	c.Acquire()
	pe := catch(t, func() { c.Invoke(func() { panic("invoke") }) })
	c.Release()
	checkPanic(t, pe, "invoke", "source function")
	assertIntact(t, c)
}

// Foreign drivers (here a C loop that calls GLib directly) deliver the panic
// to the handler.
func TestPanicForeignDriverHandler(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	got := make(chan *glibloop.PanicError, 1)
	old := glibloop.SetPanicHandler(func(p *glibloop.PanicError) { got <- p })
	defer func() { glibloop.SetPanicHandler(old) }()
	s := glibloop.NewSource(&pdsrc{
		p: func(*glibloop.Source) (bool, time.Duration) { return true, 0 },
		d: func(*glibloop.Source) bool { panic("foreign") },
	})
	s.Attach(c)
	defer s.Unref()
	defer s.Destroy()
	cbaseline.Iterate(c.Native(), 1) // a foreign driver: GLib's iteration called from C
	select {
	case p := <-got:
		checkPanic(t, p, "foreign", "Dispatch")
	default:
		t.Fatal("the panic handler did not receive the panic")
	}
	assertIntact(t, c)
}

// The default handler prints the panic and exits with status 2.
func TestPanicDefaultHandlerExits(t *testing.T) {
	leakcheck.Handles(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GLIBLOOP_PANIC_CHILD=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("child exited with %v, want status 2; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "panic: child-boom") || !strings.Contains(string(out), "goroutine") {
		t.Fatalf("child output does not report the panic:\n%s", out)
	}
}

func panicChild() {
	c := glibloop.NewMainContext()
	s := glibloop.NewSource(&pdsrc{
		p: func(*glibloop.Source) (bool, time.Duration) { return true, 0 },
		d: func(*glibloop.Source) bool { panic("child-boom") },
	})
	s.Attach(c)
	cbaseline.Iterate(c.Native(), 1)
	fmt.Println("the default panic handler returned")
	os.Exit(0)
}

func TestPanicErrorText(t *testing.T) {
	base := errors.New("root cause")
	p := &glibloop.PanicError{Value: base, Stack: []byte("goroutine 1 [running]:"), Callback: "Dispatch of source \"x\"",
		Next: &glibloop.PanicError{Value: "second", Callback: "Check"}}
	if !errors.Is(p, base) {
		t.Fatal("errors.Is does not see the panic value")
	}
	msg := p.Error()
	for _, want := range []string{"Dispatch of source \"x\"", "root cause", "goroutine 1", "and then panic in Check: second"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("Error() = %q, want it to contain %q", msg, want)
		}
	}
	if (&glibloop.PanicError{Value: 1}).Unwrap() != nil {
		t.Fatal("Unwrap of a non-error value should be nil")
	}
}
