package aiosource_test

import (
	"fmt"
	"runtime"

	"github.com/glibaio/glibaio/aiosource"
)

// Enter runs a coroutine until it yields; entering it again resumes it there.
func ExampleYield() {
	runtime.LockOSThread() // a coroutine stays on the thread of its first entry
	defer runtime.UnlockOSThread()
	co := aiosource.NewCoroutine(func(*aiosource.Coroutine) {
		fmt.Println("coroutine: step 1")
		aiosource.Yield()
		fmt.Println("coroutine: step 2")
	})
	co.Enter()
	fmt.Println("caller: between")
	co.Enter()
	// Output:
	// coroutine: step 1
	// caller: between
	// coroutine: step 2
}

// A coroutine that holds itself (its entry's argument) yields with the method, which
// skips Yield's look-up of the running coroutine.
func ExampleCoroutine_Yield() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	co := aiosource.NewCoroutine(func(self *aiosource.Coroutine) {
		for i := 1; i <= 3; i++ {
			fmt.Println("coroutine: step", i)
			self.Yield()
		}
	})
	for i := 0; i < 3; i++ {
		co.Enter()
	}
	fmt.Println("entered:", co.Entered())
	co.Enter() // it returns
	// Output:
	// coroutine: step 1
	// coroutine: step 2
	// coroutine: step 3
	// entered: false
}

// QEMU's block-layer shape: a coroutine hands work to the thread pool and yields; the
// completion resumes it on the loop's thread.
func ExampleSubmitCo() {
	c, err := aiosource.New()
	if err != nil {
		panic(err)
	}
	defer c.Close()
	done := false
	c.ScheduleOneshot(func() {
		aiosource.NewCoroutine(func(*aiosource.Coroutine) {
			err := aiosource.SubmitCo(func() error {
				fmt.Println("work runs on a pool thread")
				return nil
			})
			fmt.Println("coroutine resumed on the loop:", err)
			done = true
		}).Enter()
	})
	for !done {
		c.Poll(true)
	}
	// Output:
	// work runs on a pool thread
	// coroutine resumed on the loop: <nil>
}

// A CoMutex hands the lock to the coroutine that waited longest; waiting yields, so
// the thread goes on with other work.
func ExampleCoMutex() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var mu aiosource.CoMutex
	worker := func(name string) *aiosource.Coroutine {
		return aiosource.NewCoroutine(func(*aiosource.Coroutine) {
			mu.Lock()
			fmt.Println(name, "holds the lock")
			aiosource.Yield() // still holding it
			mu.Unlock()
		})
	}
	a, b := worker("a"), worker("b")
	a.Enter()
	b.Enter() // waits: a holds the lock
	fmt.Println("b waits")
	a.Enter() // a unlocks: b takes the lock and runs up to its yield
	b.Enter()
	// Output:
	// a holds the lock
	// b waits
	// b holds the lock
}
