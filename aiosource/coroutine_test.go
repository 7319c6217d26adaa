package aiosource_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

// Ports of QEMU's tests/unit/test-coroutine.c: coroutines with no main loop, so every
// context is nil. A goroutine that enters coroutines outside any loop stays on its
// thread (a coroutine is bound to the thread of its first entry).

func lockThread(t *testing.T) {
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
}

// /basic/lifecycle: a coroutine runs to its end on its first entry, twice over (the
// second one from the pool).
func TestCoroutineLifecycle(t *testing.T) {
	lockThread(t)
	for i := 0; i < 2; i++ {
		done := false
		aiosource.NewCoroutine(func(*aiosource.Coroutine) { done = true }).Enter()
		if !done {
			t.Fatalf("round %d: the coroutine did not run to its end", i)
		}
	}
}

// /basic/yield: each entry runs up to the next yield.
func TestCoroutineYield(t *testing.T) {
	lockThread(t)
	done := false
	co := aiosource.NewCoroutine(func(*aiosource.Coroutine) {
		for i := 0; i < 5; i++ {
			aiosource.Yield()
		}
		done = true
	})
	i := -1
	for !done {
		co.Enter()
		i++
	}
	if i != 5 {
		t.Fatalf("entered %d times after the first, want 5", i)
	}
}

// /basic/yield with Coroutine.Yield, and Entered/Self around it: the method is the
// package's Yield for a coroutine that holds itself.
func TestCoroutineYieldMethod(t *testing.T) {
	lockThread(t)
	steps := 0
	var inside []bool
	co := aiosource.NewCoroutine(func(co *aiosource.Coroutine) {
		for i := 0; i < 3; i++ {
			inside = append(inside, co.Entered() && aiosource.Self() == co)
			co.Yield()
			steps++
		}
	})
	for i := 0; i < 4; i++ {
		if co.Entered() {
			t.Fatalf("entry %d: Entered before the entry", i)
		}
		co.Enter()
		if i < 3 && steps != i {
			t.Fatalf("entry %d: %d steps, want %d", i, steps, i)
		}
	}
	if steps != 3 || len(inside) != 3 || !inside[0] || !inside[1] || !inside[2] {
		t.Fatalf("steps %d, inside %v", steps, inside)
	}
}

// /basic/nesting: 128 coroutines, each entered by the one before.
func TestCoroutineNesting(t *testing.T) {
	lockThread(t)
	const max = 128
	var nEnter, nReturn int
	var body func(*aiosource.Coroutine)
	body = func(*aiosource.Coroutine) {
		nEnter++
		if nEnter < max {
			aiosource.NewCoroutine(body).Enter()
		}
		nReturn++
	}
	aiosource.NewCoroutine(body).Enter()
	if nEnter != max || nReturn != max {
		t.Fatalf("entered %d, returned %d; want %d each", nEnter, nReturn, max)
	}
}

// /basic/self: Self inside a coroutine is its handle, and what entry receives.
func TestCoroutineSelf(t *testing.T) {
	lockThread(t)
	var got, arg *aiosource.Coroutine
	co := aiosource.NewCoroutine(func(c *aiosource.Coroutine) { got, arg = aiosource.Self(), c })
	co.Enter()
	if got != co || arg != co {
		t.Fatalf("Self() = %p, entry's argument %p; want %p", got, arg, co)
	}
	if aiosource.Self() != nil {
		t.Fatal("Self() outside coroutines is not nil")
	}
}

// /basic/entered: a coroutine is entered while it runs and while it waits in one it
// entered, not while fresh or yielded.
func TestCoroutineEntered(t *testing.T) {
	lockThread(t)
	var outer *aiosource.Coroutine
	check := func(what string, got, want bool) {
		t.Helper()
		if got != want {
			t.Errorf("%s: Entered() = %v, want %v", what, got, want)
		}
	}
	inner := func(co *aiosource.Coroutine) {
		check("outer, from inner", outer.Entered(), true)
		check("inner, itself", co.Entered(), true)
		aiosource.Yield()
		check("outer, from inner again", outer.Entered(), true)
		check("inner, itself again", co.Entered(), true)
	}
	outer = aiosource.NewCoroutine(func(co *aiosource.Coroutine) {
		check("outer, itself", co.Entered(), true)
		in := aiosource.NewCoroutine(inner)
		check("inner, fresh", in.Entered(), false)
		in.Enter()
		check("inner, yielded", in.Entered(), false)
		in.Enter()
	})
	check("outer, fresh", outer.Entered(), false)
	outer.Enter()
}

// /basic/in_coroutine.
func TestCoroutineInCoroutine(t *testing.T) {
	lockThread(t)
	if aiosource.InCoroutine() {
		t.Fatal("InCoroutine() is true in the test")
	}
	in := false
	aiosource.NewCoroutine(func(*aiosource.Coroutine) { in = aiosource.InCoroutine() }).Enter()
	if !in {
		t.Fatal("InCoroutine() is false in the coroutine")
	}
}

// /basic/order: enter and yield alternate exactly.
func TestCoroutineOrder(t *testing.T) {
	lockThread(t)
	type rec struct{ who, seq int }
	var got []rec
	co := aiosource.NewCoroutine(func(*aiosource.Coroutine) {
		got = append(got, rec{2, 1})
		if !aiosource.InCoroutine() {
			t.Error("not in coroutine in the body")
		}
		aiosource.Yield()
		got = append(got, rec{2, 2})
	})
	got = append(got, rec{1, 1})
	co.Enter()
	got = append(got, rec{1, 2})
	co.Enter()
	got = append(got, rec{1, 3})
	want := []rec{{1, 1}, {2, 1}, {1, 2}, {2, 2}, {1, 3}}
	if len(got) != len(want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
}

// /basic/no-dangling-access: a coroutine that finishes after the one that first entered
// it has returned (and gone back to the pool) returns to its latest enterer, not to the
// old one.
func TestCoroutineNoDanglingAccess(t *testing.T) {
	lockThread(t)
	c2 := aiosource.NewCoroutine(func(*aiosource.Coroutine) { aiosource.Yield() })
	c1 := aiosource.NewCoroutine(func(*aiosource.Coroutine) { c2.Enter() })
	c1.Enter() // c1 returns while c2 has yielded; c1 goes back to the pool
	reused := false
	c3 := aiosource.NewCoroutine(func(*aiosource.Coroutine) { reused = true; aiosource.Yield() })
	c3.Enter() // may run on c1's recycled struct and worker
	c2.Enter() // finishes, back to the test
	if !reused || aiosource.InCoroutine() {
		t.Fatal("c2 did not return to the test")
	}
	c3.Enter()
}

// /locking/co-mutex: the unlock of c1 hands the mutex to c2, which runs after c1 ends.
func TestCoMutex(t *testing.T) {
	lockThread(t)
	testCoMutex(t, func(m *aiosource.CoMutex) aiosource.Lockable { return m })
}

// /locking/co-mutex/lockable: the same through a Lockable.
func TestCoMutexLockable(t *testing.T) {
	lockThread(t)
	testCoMutex(t, func(m *aiosource.CoMutex) aiosource.Lockable { return aiosource.Lockable(m) })
}

func testCoMutex(t *testing.T, lockable func(*aiosource.CoMutex) aiosource.Lockable) {
	var m aiosource.CoMutex
	l := lockable(&m)
	locked, done := false, 0
	body := func(*aiosource.Coroutine) {
		l.Lock()
		if locked {
			t.Error("two coroutines hold the mutex")
		}
		locked = true
		aiosource.Yield()
		locked = false
		l.Unlock()
		done++
	}
	c1 := aiosource.NewCoroutine(body)
	c2 := aiosource.NewCoroutine(body)
	c1.Enter()
	if !locked {
		t.Fatal("c1 does not hold the mutex")
	}
	c2.Enter() // waits for the mutex
	c1.Enter() // unlocks: c2 takes it and runs until its yield
	if done != 1 || !locked {
		t.Fatalf("after c1 ended: done %d, locked %v; want 1, true", done, locked)
	}
	c2.Enter()
	if done != 2 || locked {
		t.Fatalf("after c2 ended: done %d, locked %v; want 2, false", done, locked)
	}
}

// /locking/co-rwlock/upgrade: the upgrade of the only reader queues behind a writer
// that came first.
func TestCoRwlockUpgrade(t *testing.T) {
	lockThread(t)
	var l aiosource.CoRwlock
	c1Done, c2Done := false, false
	c1 := aiosource.NewCoroutine(func(*aiosource.Coroutine) {
		l.RdLock()
		aiosource.Yield()
		l.Upgrade()
		l.Unlock()
		c1Done = true
	})
	c2 := aiosource.NewCoroutine(func(*aiosource.Coroutine) {
		l.WrLock()
		aiosource.Yield()
		l.Unlock()
		c2Done = true
	})
	c1.Enter()
	c2.Enter()
	c1.Enter() // the upgrade admits c2, which stops at its yield
	if c1Done || c2Done {
		t.Fatalf("c1 done %v, c2 done %v; want both false", c1Done, c2Done)
	}
	c2.Enter() // c2's unlock admits c1
	if !c1Done || !c2Done {
		t.Fatalf("c1 done %v, c2 done %v; want both true", c1Done, c2Done)
	}
}

// /locking/co-rwlock/downgrade: a chain of admissions, each by the one before.
func TestCoRwlockDowngrade(t *testing.T) {
	lockThread(t)
	var l aiosource.CoRwlock
	var done [4]bool
	c1 := aiosource.NewCoroutine(func(*aiosource.Coroutine) {
		l.RdLock()
		aiosource.Yield()
		l.Unlock()
		aiosource.Yield()
		done[0] = true
	})
	c2 := aiosource.NewCoroutine(func(*aiosource.Coroutine) {
		l.WrLock()
		l.Downgrade()
		l.Unlock()
		done[1] = true
	})
	c3 := aiosource.NewCoroutine(func(*aiosource.Coroutine) {
		l.RdLock()
		l.Unlock()
		done[2] = true
	})
	c4 := aiosource.NewCoroutine(func(*aiosource.Coroutine) {
		l.WrLock()
		l.Unlock()
		done[3] = true
	})
	c1.Enter()
	c2.Enter()
	c3.Enter()
	c4.Enter()
	if done != [4]bool{} {
		t.Fatalf("done %v before c1 unlocks", done)
	}
	c1.Enter()
	if done != [4]bool{false, true, true, true} {
		t.Fatalf("done %v after c1 unlocked, want c2, c3, c4", done)
	}
	c1.Enter()
	if !done[0] {
		t.Fatal("c1 did not finish")
	}
}

// QEMU's aborts are panics with its messages.
func TestCoroutineMisuse(t *testing.T) {
	lockThread(t)
	mustPanicWith(t, "Co-routine is yielding to no one", aiosource.Yield)
	mustPanicWith(t, "nil entry", func() { aiosource.NewCoroutine(nil) })
	mustPanicWith(t, "nil coroutine", func() { (*aiosource.Coroutine)(nil).Enter() })
	// Coroutine.Yield of a coroutine that never ran, of one suspended, and from the
	// coroutine it entered: none of them is the running coroutine.
	fresh := aiosource.NewCoroutine(func(*aiosource.Coroutine) {})
	mustPanicWith(t, "Co-routine is yielding to no one", fresh.Yield)
	fresh.Enter()
	suspended := aiosource.NewCoroutine(func(co *aiosource.Coroutine) { co.Yield() })
	suspended.Enter()
	mustPanicWith(t, "Co-routine is yielding to no one", suspended.Yield)
	mustPanicWith(t, "Co-routine is yielding to no one", func() {
		aiosource.NewCoroutine(func(*aiosource.Coroutine) { suspended.Yield() }).Enter()
	})
	suspended.Enter() // it returns
	mustPanicWith(t, "re-entered recursively", func() {
		aiosource.NewCoroutine(func(co *aiosource.Coroutine) { co.Enter() }).Enter()
	})
	mustPanicWith(t, "qemu_co_mutex_lock: not in a coroutine", func() {
		var m aiosource.CoMutex
		m.Lock()
	})
	mustPanicWith(t, "1 lock(s) held", func() {
		var m aiosource.CoMutex
		aiosource.NewCoroutine(func(*aiosource.Coroutine) { m.Lock() }).Enter()
	})
	mustPanicWith(t, "not held by this coroutine", func() {
		var m aiosource.CoMutex
		aiosource.NewCoroutine(func(*aiosource.Coroutine) { m.Unlock() }).Enter()
	})
	// The thread is usable after each of those.
	ran := false
	aiosource.NewCoroutine(func(*aiosource.Coroutine) { ran = true }).Enter()
	if !ran || aiosource.InCoroutine() {
		t.Fatal("coroutines broken after a misuse panic")
	}
}

// mustPanicWith checks that fn panics with a message that contains want; a panic in a
// coroutine comes out of Enter as a *glibloop.PanicError.
func mustPanicWith(t *testing.T, want string, fn func()) {
	t.Helper()
	var r any
	func() {
		defer func() { r = recover() }()
		fn()
	}()
	if pe, ok := r.(*glibloop.PanicError); ok {
		r = pe.Value
	}
	if r == nil || !strings.Contains(fmt.Sprint(r), want) {
		t.Fatalf("panic %v, want one that says %q", r, want)
	}
}
