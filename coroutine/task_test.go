package coroutine_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/coroutine"
	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/leakcheck"
	"github.com/glibaio/glibaio/internal/testutil"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// newMainLoop returns a MainLoop on a GMainContext of its own, closed (and checked for
// leaks) when the test ends.
func newMainLoop(t *testing.T) (*aiosource.MainLoop, *glibloop.MainContext) {
	t.Helper()
	leakcheck.Handles(t)
	mc := glibloop.NewMainContext()
	ml, err := aiosource.NewMainLoop(mc)
	if err != nil {
		mc.Unref()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ml.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		mc.Unref()
	})
	return ml, mc
}

// runLoop runs a MainLoop on the calling (locked) goroutine until the tasks that start
// starts have finished, and returns the loop thread's id.
func runLoop(t *testing.T, start func(ml *aiosource.MainLoop) []*coroutine.Task) int {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ml, _ := newMainLoop(t)
	tasks := start(ml)
	go func() {
		for _, tk := range tasks {
			<-tk.Done()
		}
		ml.Quit()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := ml.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return unix.Gettid()
}

// A Task reads top to bottom: it sleeps, awaits pool work, waits for an fd and for a
// value from a goroutine, and every step runs on the loop's thread.
func TestTaskSteps(t *testing.T) {
	var tids []int
	var results []string
	efd := testutil.Eventfd(t)
	ch := make(chan string)
	loopTid := runLoop(t, func(ml *aiosource.MainLoop) []*coroutine.Task {
		step := func(what string) {
			tids = append(tids, unix.Gettid())
			results = append(results, what)
		}
		tk := coroutine.Go(context.Background(), ml.AioContext(), func(tk *coroutine.Task) error {
			step("start")
			if err := tk.Sleep(time.Millisecond); err != nil {
				return err
			}
			step("slept")
			workTid := 0
			if err := tk.Await(func() error { workTid = unix.Gettid(); return nil }); err != nil {
				return err
			}
			if workTid == unix.Gettid() {
				return errors.New("the pool work ran on the loop thread")
			}
			step("awaited")
			go testutil.EfdWrite(t, efd)
			if err := tk.WaitReadable(efd); err != nil {
				return err
			}
			testutil.EfdDrain(efd)
			step("readable")
			go func() { ch <- "hello" }()
			v, ok, err := coroutine.Recv(tk, ch)
			if err != nil || !ok {
				return err
			}
			step(v)
			return nil
		})
		return []*coroutine.Task{tk}
	})
	want := []string{"start", "slept", "awaited", "readable", "hello"}
	if len(results) != len(want) {
		t.Fatalf("steps %v, want %v", results, want)
	}
	for i := range want {
		if results[i] != want[i] || tids[i] != loopTid {
			t.Fatalf("step %d: %s on thread %d; want %s on the loop's %d", i, results[i], tids[i], want[i], loopTid)
		}
	}
}

// A cancelled Task is woken with the context's error at its current wait, whatever it
// waits for, and its next wait fails at once; nothing is taken from a channel.
func TestTaskCancel(t *testing.T) {
	efd := testutil.Eventfd(t)
	ch := make(chan int, 1)
	waits := map[string]func(tk *coroutine.Task) error{
		"Sleep": func(tk *coroutine.Task) error { return tk.Sleep(time.Hour) },
		"Await": func(tk *coroutine.Task) error {
			return tk.Await(func() error { time.Sleep(50 * time.Millisecond); return nil })
		},
		"WaitReadable": func(tk *coroutine.Task) error { return tk.WaitReadable(efd) },
		"Recv": func(tk *coroutine.Task) error {
			_, _, err := coroutine.Recv(tk, ch)
			return err
		},
	}
	for name, wait := range waits {
		t.Run(name, func(t *testing.T) {
			var got, next error
			runLoop(t, func(ml *aiosource.MainLoop) []*coroutine.Task {
				ctx, cancel := context.WithCancel(context.Background())
				tk := coroutine.Go(ctx, ml.AioContext(), func(tk *coroutine.Task) error {
					time.AfterFunc(5*time.Millisecond, cancel)
					got = wait(tk)
					next = tk.Sleep(time.Millisecond)
					return got
				})
				return []*coroutine.Task{tk}
			})
			if !errors.Is(got, context.Canceled) || !errors.Is(next, context.Canceled) {
				t.Fatalf("the wait returned %v, the next one %v; want context.Canceled for both", got, next)
			}
		})
	}
	ch <- 7
	select {
	case v := <-ch:
		if v != 7 {
			t.Fatalf("channel held %d", v)
		}
	default:
		t.Fatal("a cancelled Recv took the value sent later")
	}
}

// A panic in a Task comes out of the loop that runs it, and the Task ends with it.
func TestTaskPanic(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ml, mc := newMainLoop(t)
	tk := coroutine.Go(context.Background(), ml.AioContext(), func(*coroutine.Task) error { panic("task boom") })
	var r any
	func() {
		defer func() { r = recover() }()
		for tk.Err() == nil {
			mc.Iteration(true)
		}
	}()
	pe, ok := r.(*glibloop.PanicError)
	if !ok || pe.Value != "task boom" {
		t.Fatalf("the loop raised %v, want a PanicError of the task's", r)
	}
	if !errors.As(tk.Err(), &pe) {
		t.Fatalf("Task.Err() = %v, want the PanicError", tk.Err())
	}
}

// Misuse: waits outside the Task's coroutine panic.
func TestTaskMisuse(t *testing.T) {
	leakcheck.Handles(t)
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ready := make(chan *coroutine.Task, 1)
	tk := coroutine.Go(context.Background(), c, func(tk *coroutine.Task) error { ready <- tk; return nil })
	for tk.Err() == nil && len(ready) == 0 {
		c.Poll(true)
	}
	testutil.MustPanic(t, "coroutine: Sleep: called outside the Task's own coroutine", func() { _ = tk.Sleep(time.Millisecond) })
}

// Go on a closed context ends the Task at once with ErrClosed.
func TestTaskClosedContext(t *testing.T) {
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	tk := coroutine.Go(context.Background(), c, func(*coroutine.Task) error { return nil })
	if err := tk.Wait(); !errors.Is(err, aiosource.ErrClosed) {
		t.Fatalf("Wait() = %v, want ErrClosed", err)
	}
}
