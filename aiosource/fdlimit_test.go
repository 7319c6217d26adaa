package aiosource_test

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/cshim"
	"github.com/glibaio/glibaio/glibloop"
)

// fdLimitChild is set in the environment of the subprocess that runs the fd-limit
// cases: they use up the process's fds, which would break tests running beside them.
const fdLimitChild = "GLIBAIO_FDLIMIT_CHILD"

// At the fd limit the constructors fail with an error that wraps EMFILE and leak
// neither fds nor cgo handles; with enough fds they succeed. Each is tried with 0, 1,
// 2, ... free fds until it succeeds, so every step that makes an fd meets the limit
// once. The thread pool makes no fd: Submit works, and completes, with none free. The
// cases run in a subprocess (this test binary again), which lowers RLIMIT_NOFILE and
// fills the fd table with dups of /dev/null.
func TestFDLimitConstructors(t *testing.T) {
	if runChild(t, "TestFDLimitConstructors") {
		return
	}
	// Go's runtime makes its netpoller (two fds) at the first timer: New makes sure it
	// exists (TestFDLimitNetpoll). Make it here, so that the fds counted below are the
	// constructors' own.
	time.AfterFunc(time.Hour, func() {}).Stop()
	lowerNofile(t)

	mc := glibloop.NewMainContext() // NewMainLoop's caller makes the GMainContext
	defer mc.Unref()
	newIOThread := func() (func() error, error) {
		th, err := aiosource.NewIOThread("fdlimit")
		if err != nil {
			return nil, err
		}
		return th.Stop, nil
	}
	// NewIOThread runs first, before anything made GLib's global default context: its
	// first success makes it, and that context keeps its wakeup fd for the life of the
	// process (grow: 1). The second run shows that nothing else stayed.
	cases := []struct {
		name string
		grow int
		try  func() (closeIt func() error, err error)
	}{
		{"NewIOThread", 1, newIOThread},
		{"NewIOThreadAgain", 0, newIOThread},
		{"New", 0, func() (func() error, error) {
			c, err := aiosource.New()
			if err != nil {
				return nil, err
			}
			return c.Close, nil
		}},
		{"NewEventNotifier", 0, func() (func() error, error) {
			e, err := aiosource.NewEventNotifier(true)
			if err != nil {
				return nil, err
			}
			return e.Close, nil
		}},
		{"NewMainLoop", 0, func() (func() error, error) {
			l, err := aiosource.NewMainLoop(mc)
			if err != nil {
				return nil, err
			}
			return l.Close, nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for free := 0; ; free++ {
				if free > 8 {
					t.Fatalf("still failing with %d fds free", free)
				}
				fds, handles := countFDs(t), cshim.LiveHandles()
				release := useUpFDs(t, free)
				closeIt, err := tc.try()
				release()
				if err != nil {
					if !errors.Is(err, syscall.EMFILE) {
						t.Fatalf("%d fds free: error %v does not wrap EMFILE", free, err)
					}
					if n, h := countFDs(t), cshim.LiveHandles(); n != fds || h != handles {
						t.Fatalf("%d fds free: failed with %v but left %d fds (was %d) and %d cgo handles (was %d)", free, err, n, fds, h, handles)
					}
					t.Logf("%d fds free: %v", free, err)
					continue
				}
				if err := closeIt(); err != nil {
					t.Fatalf("close: %v", err)
				}
				if n, h := countFDs(t), cshim.LiveHandles(); n != fds+tc.grow || h != handles {
					t.Fatalf("after close: %d fds (was %d), %d cgo handles (was %d)", n, fds, h, handles)
				}
				if free == 0 {
					t.Fatal("succeeded with no fd free")
				}
				t.Logf("succeeds with %d fds free", free)
				return
			}
		})
	}
	t.Run("ThreadPool", func(t *testing.T) {
		c, err := aiosource.New()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		release := useUpFDs(t, 0)
		var ran, completed bool
		c.Submit(func() error { ran = true; return nil }, func(err error) { completed = err == nil })
		for deadline := time.Now().Add(10 * time.Second); !completed && time.Now().Before(deadline); {
			c.Poll(true)
		}
		release()
		if !ran || !completed {
			t.Fatalf("with no fd free: work ran %v, completed %v", ran, completed)
		}
	})
}

// runChild runs test in a subprocess (this test binary again) and reports true, or,
// in that subprocess, reports false so that the test runs its cases.
func runChild(t *testing.T, test string) bool {
	t.Helper()
	if os.Getenv(fdLimitChild) != "" {
		return false
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), fdLimitChild+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("subprocess:\n%s", out)
	if err != nil {
		t.Fatalf("subprocess: %v", err)
	}
	return true
}

// lowerNofile lowers the soft RLIMIT_NOFILE to 64 above the fds open now, so that
// useUpFDs makes few dups; the cleanup restores it.
func lowerNofile(t *testing.T) {
	t.Helper()
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	low := rl
	low.Cur = uint64(countFDs(t)) + 64
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &rl) })
}

// In a process whose runtime has not made its netpoller yet (no timer so far), New at
// the fd limit fails with EMFILE rather than letting the runtime throw, and once New
// succeeded, the thread pool's timers work with no fd free.
func TestFDLimitNetpoll(t *testing.T) {
	if runChild(t, "TestFDLimitNetpoll") {
		return
	}
	lowerNofile(t)
	for free := 0; free < 2; free++ {
		release := useUpFDs(t, free)
		_, err := aiosource.New()
		release()
		if !errors.Is(err, syscall.EMFILE) {
			t.Fatalf("%d fds free, no netpoller yet: New returned %v, want EMFILE", free, err)
		}
	}
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	release := useUpFDs(t, 0)
	defer release()
	// Work on the pool, then its worker idles: the idle reaper is a Go timer.
	done := 0
	for range 3 {
		c.Submit(func() error { return nil }, func(error) { done++ })
	}
	for deadline := time.Now().Add(10 * time.Second); done < 3 && time.Now().Before(deadline); {
		c.Poll(true)
	}
	time.Sleep(20 * time.Millisecond) // a Go timer of the test's own, at the limit
	if done != 3 {
		t.Fatalf("%d of 3 completions", done)
	}
}

// countFDs counts the process's open fds.
func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1 // ReadDir's own fd
}

// useUpFDs fills the fd table with dups of /dev/null up to RLIMIT_NOFILE, leaving free
// fds unused, and returns the function that closes the dups.
func useUpFDs(t *testing.T, free int) (release func()) {
	t.Helper()
	null, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	dups := []int{null}
	for {
		fd, err := unix.FcntlInt(uintptr(null), unix.F_DUPFD_CLOEXEC, 0)
		if errors.Is(err, unix.EMFILE) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		dups = append(dups, fd)
	}
	if len(dups) <= free {
		t.Fatalf("only %d fds to use up", len(dups))
	}
	for _, fd := range dups[len(dups)-free:] {
		unix.Close(fd)
	}
	dups = dups[:len(dups)-free]
	return func() {
		for _, fd := range dups {
			unix.Close(fd)
		}
	}
}
