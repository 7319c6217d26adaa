package aiosource_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/testutil"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

// Misuse is caught at the call that makes it: a programmer error in an argument (a nil
// callback, a scale or clock out of range) panics there with a string that names the
// call and the argument, and leaves nothing registered behind. Runtime conditions
// (closed fds, use after Close) come back as errors that errors.Is and errors.As see
// through.

// hasStat reports whether the context's callback statistics list a callback named name.
func hasStat(c *aiosource.Context, name string) bool {
	for _, s := range c.CallbackStats() {
		if s.Name == name {
			return true
		}
	}
	return false
}

func TestMisuseNewBHNilFn(t *testing.T) {
	eachMode(t, func(t *testing.T, m *mode) {
		testutil.MustPanic(t, "aiosource: NewBH: nil fn", func() { m.ctx.NewBH("nil-bh", nil) })
		if hasStat(m.ctx, "nil-bh") {
			t.Fatal("the rejected BH is in the context's live list")
		}
		// The context still works, and nothing of the rejected BH runs or is reported
		// by Close (the mode's cleanup fails the test if Close reports a leak).
		ran := false
		b := m.ctx.NewBH("ok", func() { ran = true })
		b.Schedule()
		m.flush()
		b.Delete()
		if !ran {
			t.Fatal("a valid BH did not run after the rejected one")
		}
	})
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	testutil.MustPanic(t, "aiosource: NewBH: nil fn", func() { c.NewBH("nil-bh", nil) })
	if err := c.Close(); err != nil {
		t.Fatalf("Close after the rejected NewBH = %v, want nil", err)
	}
	// Arguments are checked before the context's state: still a panic after Close.
	testutil.MustPanic(t, "aiosource: NewBH: nil fn", func() { c.NewBH("nil-bh", nil) })
}

func TestMisuseScheduleOneshotNilFn(t *testing.T) {
	eachMode(t, func(t *testing.T, m *mode) {
		testutil.MustPanic(t, "aiosource: ScheduleOneshot: nil fn", func() { m.ctx.ScheduleOneshot(nil) })
		// Nothing was queued: the next iterations run nothing and raise nothing.
		if m.iterate(false) {
			t.Fatal("an iteration after the rejected oneshot made progress")
		}
		n := 0
		m.ctx.ScheduleOneshot(func() { n++ })
		m.flush()
		if n != 1 {
			t.Fatalf("a valid oneshot ran %d times, want 1", n)
		}
	})
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	testutil.MustPanic(t, "aiosource: ScheduleOneshot: nil fn", func() { c.ScheduleOneshot(nil) })
	if err := c.Close(); err != nil {
		t.Fatalf("Close after the rejected oneshot = %v, want nil (nothing queued)", err)
	}
	testutil.MustPanic(t, "aiosource: ScheduleOneshot: nil fn", func() { c.ScheduleOneshot(nil) })
}

func TestMisuseNewTimer(t *testing.T) {
	fn := func() {}
	cases := []struct {
		name  string
		clock aiosource.ClockType
		scale int64
		fn    func()
		want  string
	}{
		{"clock 99", aiosource.ClockType(99), aiosource.ScaleNS, fn, "aiosource: NewTimer: invalid ClockType 99"},
		{"clock -1", aiosource.ClockType(-1), aiosource.ScaleNS, fn, "aiosource: NewTimer: invalid ClockType -1"},
		{"clock past the last", aiosource.ClockVirtualRT + 1, aiosource.ScaleNS, fn, "aiosource: NewTimer: invalid ClockType 4"},
		{"scale 0", aiosource.ClockRealtime, 0, fn, "aiosource: NewTimer: scale 0 is not positive"},
		{"scale -1", aiosource.ClockRealtime, -1, fn, "aiosource: NewTimer: scale -1 is not positive"},
		{"nil fn", aiosource.ClockRealtime, aiosource.ScaleMS, nil, "aiosource: NewTimer: nil fn"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := aiosource.New()
			if err != nil {
				t.Fatal(err)
			}
			testutil.MustPanic(t, tc.want, func() { c.NewTimer(tc.clock, tc.scale, tc.fn) })
			// The context is untouched: no timer armed, and a valid one still fires.
			if c.Poll(false) {
				t.Fatal("Poll after the rejected NewTimer made progress")
			}
			n := 0
			tm := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() { n++ })
			tm.ModNS(0)
			if !c.Poll(false) || n != 1 {
				t.Fatalf("a valid due timer: ran %d times, want 1", n)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("Close = %v, want nil", err)
			}
		})
	}
	// Every valid clock and scale is accepted.
	c := newCtx(t)
	for ct := aiosource.ClockRealtime; ct <= aiosource.ClockVirtualRT; ct++ {
		for _, s := range []int64{1, aiosource.ScaleUS, aiosource.ScaleMS, 7} {
			c.NewTimer(ct, s, fn)
		}
	}
}

func TestMisuseClockNS(t *testing.T) {
	for _, ct := range []aiosource.ClockType{-1, 4, 99} {
		want := "aiosource: ClockNS: invalid ClockType " + map[aiosource.ClockType]string{-1: "-1", 4: "4", 99: "99"}[ct]
		testutil.MustPanic(t, want, func() { aiosource.ClockNS(ct) })
	}
	for ct := aiosource.ClockRealtime; ct <= aiosource.ClockVirtualRT; ct++ {
		if ns := aiosource.ClockNS(ct); ns <= 0 {
			t.Fatalf("ClockNS(%v) = %d, want > 0", ct, ns)
		}
	}
}

func TestMisuseSubmit(t *testing.T) {
	eachMode(t, func(t *testing.T, m *mode) {
		called := false
		testutil.MustPanic(t, "aiosource: Submit: nil work", func() {
			m.ctx.Submit(nil, func(error) { called = true })
		})
		m.flush()
		if called {
			t.Fatal("done of the rejected Submit was called")
		}
		// A nil done is allowed: the work runs and its completion is dropped.
		ran := make(chan struct{})
		m.ctx.Submit(func() error { close(ran); return errors.New("dropped") }, nil)
		select {
		case <-ran:
		case <-time.After(10 * time.Second):
			t.Fatal("the work of Submit(work, nil) never ran")
		}
		// Drive the completion through the loop; the mode's Close then finds no job.
		deadline := time.Now().Add(10 * time.Second)
		for before := m.ctx.Stats().BHs; m.ctx.Stats().BHs == before; {
			if time.Now().After(deadline) {
				t.Fatal("the completion of Submit(work, nil) never ran")
			}
			m.iterate(false)
			time.Sleep(time.Millisecond)
		}
	})
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// Argument check before state: a nil work panics after Close too, and done is not
	// called with ErrClosed.
	called := false
	testutil.MustPanic(t, "aiosource: Submit: nil work", func() { c.Submit(nil, func(error) { called = true }) })
	if called {
		t.Fatal("done was called for a rejected Submit")
	}
}

func TestMisuseSetEventNotifier(t *testing.T) {
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	testutil.MustPanic(t, "aiosource: SetEventNotifier: nil EventNotifier", func() {
		c.SetEventNotifier(nil, func(*aiosource.EventNotifier) {})
	})
	testutil.MustPanic(t, "aiosource: SetEventNotifier: nil EventNotifier", func() { c.SetEventNotifier(nil, nil) })

	// A closed notifier is a runtime condition: ErrClosed.
	e, err := aiosource.NewEventNotifier(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.SetEventNotifier(e, func(*aiosource.EventNotifier) {}); !errors.Is(err, aiosource.ErrClosed) {
		t.Fatalf("SetEventNotifier(closed notifier) = %v, want ErrClosed", err)
	}
	if err := e.Set(); !errors.Is(err, aiosource.ErrClosed) {
		t.Fatalf("Set after Close = %v, want ErrClosed", err)
	}
	if err := e.Close(); !errors.Is(err, aiosource.ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	if c.Poll(false) {
		t.Fatal("Poll made progress with nothing registered")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close = %v, want nil", err)
	}
}

// Out-of-range numbers given to setters that return an error come back as an error
// that is os.ErrInvalid, and change nothing.
func TestMisuseSetterValues(t *testing.T) {
	c := newCtx(t)
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"SetPollParams maxNS", c.SetPollParams(-1, 0, 0), "aiosource: SetPollParams: maxNS -1 is negative: invalid argument"},
		{"SetPollParams grow", c.SetPollParams(1000, -2, 0), "aiosource: SetPollParams: grow -2 is negative: invalid argument"},
		{"SetPollParams shrink", c.SetPollParams(1000, 0, -3), "aiosource: SetPollParams: shrink -3 is negative: invalid argument"},
		{"SetThreadPoolSize 0", c.SetThreadPoolSize(0), "aiosource: SetThreadPoolSize: size 0 is less than 1: invalid argument"},
		{"SetThreadPoolSize -1", c.SetThreadPoolSize(-1), "aiosource: SetThreadPoolSize: size -1 is less than 1: invalid argument"},
	} {
		if !errors.Is(tc.err, os.ErrInvalid) {
			t.Errorf("%s: err = %v, want errors.Is os.ErrInvalid", tc.name, tc.err)
		} else if tc.err.Error() != tc.want {
			t.Errorf("%s: err = %q, want %q", tc.name, tc.err, tc.want)
		}
	}
	if err := c.SetPollParams(0, 0, 0); err != nil {
		t.Fatalf("SetPollParams(0, 0, 0) = %v", err)
	}
	if err := c.SetThreadPoolSize(1); err != nil {
		t.Fatalf("SetThreadPoolSize(1) = %v", err)
	}
}

func TestMisuseFDHandlerErrors(t *testing.T) {
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	read := func() {}
	if err := c.SetFDHandler(-1, aiosource.FDHandler{Read: read}); !errors.Is(err, aiosource.ErrBadFD) {
		t.Fatalf("SetFDHandler(-1) = %v, want ErrBadFD", err)
	}

	// A closed fd: the kernel's EBADF, behind an aiosource message.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	unix.Close(p[0])
	unix.Close(p[1])
	err = c.SetFDHandler(p[0], aiosource.FDHandler{Read: read})
	var errno syscall.Errno
	if !errors.Is(err, syscall.EBADF) || !errors.As(err, &errno) || !strings.HasPrefix(err.Error(), "aiosource: ") {
		t.Fatalf("SetFDHandler(closed fd) = %v, want an aiosource error that is EBADF", err)
	}

	// A regular file cannot be polled: EPERM.
	f, err := os.Create(filepath.Join(t.TempDir(), "regular"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := c.SetFDHandler(int(f.Fd()), aiosource.FDHandler{Read: read}); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("SetFDHandler(regular file) = %v, want EPERM", err)
	}

	// Removing what is not there.
	e, err := aiosource.NewEventNotifier(false)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := c.SetFDHandler(e.FD(), aiosource.FDHandler{}); !errors.Is(err, aiosource.ErrNoHandler) {
		t.Fatalf("removing an unregistered fd = %v, want ErrNoHandler", err)
	}
	if err := c.SetEventNotifier(e, nil); !errors.Is(err, aiosource.ErrNoHandler) {
		t.Fatalf("SetEventNotifier(e, nil) unregistered = %v, want ErrNoHandler", err)
	}
	if c.Poll(false) {
		t.Fatal("Poll made progress after only failed registrations")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close after failed registrations = %v, want nil", err)
	}
	if err := c.SetFDHandler(e.FD(), aiosource.FDHandler{Read: read}); !errors.Is(err, aiosource.ErrClosed) {
		t.Fatalf("SetFDHandler after Close = %v, want ErrClosed", err)
	}
	if err := c.SetPollParams(0, 0, 0); !errors.Is(err, aiosource.ErrClosed) {
		t.Fatalf("SetPollParams after Close = %v, want ErrClosed", err)
	}
	if err := c.Close(); !errors.Is(err, aiosource.ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
}

func TestMisuseLeakErrorAs(t *testing.T) {
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	c.NewBH("forgotten", func() {})
	err = c.Close()
	var le *aiosource.LeakError
	if !errors.As(err, &le) || len(le.Problems) != 1 || !strings.HasPrefix(err.Error(), "aiosource: ") {
		t.Fatalf("Close with a live BH = %v, want a *LeakError naming it", err)
	}
}

func TestMisuseNewMainLoopGoneContext(t *testing.T) {
	mc := glibloop.NewMainContext()
	mc.Unref()
	ml, err := aiosource.NewMainLoop(mc)
	if ml != nil || !errors.Is(err, glibloop.ErrContextGone) || !strings.HasPrefix(err.Error(), "aiosource: NewMainLoop: ") {
		t.Fatalf("NewMainLoop(unref'd) = %v, %v; want nil and an aiosource error that is glibloop.ErrContextGone", ml, err)
	}
}

// withNoFreeFDs runs fn while the process cannot open another fd: the soft
// RLIMIT_NOFILE is lowered to the lowest free fd number.
func withNoFreeFDs(t *testing.T, fn func()) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lowest, err := unix.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(lowest)
	lim := old
	lim.Cur = uint64(lowest)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("lowering RLIMIT_NOFILE (always allowed below the hard limit): %v", err)
	}
	defer func() {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
			t.Fatalf("restoring RLIMIT_NOFILE: %v", err)
		}
	}()
	fn()
}

// Errors of the kernel come back as an aiosource message around an *os.SyscallError
// or a syscall.Errno, so errors.Is(err, syscall.EMFILE) holds.
func TestMisuseOutOfFDs(t *testing.T) {
	var nerr, cerr error
	var e *aiosource.EventNotifier
	var c *aiosource.Context
	withNoFreeFDs(t, func() {
		e, nerr = aiosource.NewEventNotifier(false)
		c, cerr = aiosource.New()
	})
	if e != nil {
		e.Close()
	}
	if c != nil {
		c.Close()
	}
	var se *os.SyscallError
	if e != nil || !errors.Is(nerr, syscall.EMFILE) || !errors.As(nerr, &se) || se.Syscall != "eventfd" ||
		!strings.HasPrefix(nerr.Error(), "aiosource: NewEventNotifier: ") {
		t.Errorf("NewEventNotifier out of fds = %v, %v; want an aiosource error around an eventfd *os.SyscallError that is EMFILE", e, nerr)
	}
	if c != nil || !errors.Is(cerr, syscall.EMFILE) || !strings.HasPrefix(cerr.Error(), "aiosource: New: ") {
		t.Errorf("New out of fds = %v, %v; want an aiosource error that is EMFILE", c, cerr)
	}
}
