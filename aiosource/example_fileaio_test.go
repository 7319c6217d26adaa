package aiosource_test

import (
	"fmt"
	"os"

	"github.com/glibaio/glibaio/aiosource"
)

// File I/O on the loop, as QEMU's aio=io_uring: the read goes to the context's ring (or,
// where the kernel refuses io_uring, to its thread pool) and its callback runs on the
// loop. A write, then fsync from its callback, then a read of what was written.
func ExampleContext_ReadAt() {
	f, err := os.CreateTemp("", "glibaio-example-")
	if err != nil {
		panic(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	fd := int(f.Fd())

	c, err := aiosource.New()
	if err != nil {
		panic(err)
	}
	defer c.Close()
	buf := make([]byte, 5)
	done := false
	c.WriteAt(fd, []byte("hello, ring"), 0, func(n int, err error) {
		fmt.Println("wrote", n, err)
		c.Fsync(fd, func(_ int, err error) {
			fmt.Println("fsync", err)
			c.ReadAt(fd, buf, 7, func(n int, err error) {
				fmt.Printf("read %d %q %v\n", n, buf[:n], err)
				c.ReadAt(fd, buf, 100, func(n int, err error) {
					fmt.Println("past the end:", n, err) // as pread: 0 bytes, no error
					done = true
				})
			})
		})
	})
	for !done {
		c.Poll(true)
	}
	// Output:
	// wrote 11 <nil>
	// fsync <nil>
	// read 4 "ring" <nil>
	// past the end: 0 <nil>
}

// A coroutine awaits each file operation (QEMU's luring_co_submit): it yields, and the
// completion resumes it on the loop's thread.
func ExampleReadAtCo() {
	f, err := os.CreateTemp("", "glibaio-example-")
	if err != nil {
		panic(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	f.WriteString("coroutines read top to bottom")
	fd := int(f.Fd())

	c, err := aiosource.New()
	if err != nil {
		panic(err)
	}
	defer c.Close()
	done := false
	c.ScheduleOneshot(func() {
		aiosource.NewCoroutine(func(*aiosource.Coroutine) {
			buf := make([]byte, 10)
			n, err := aiosource.ReadAtCo(fd, buf, 0)
			fmt.Printf("%q %v\n", buf[:n], err)
			_, err = aiosource.ReadAtCo(-1, buf, 0)
			fmt.Println("fd -1:", err)
			done = true
		}).Enter()
	})
	for !done {
		c.Poll(true)
	}
	// Output:
	// "coroutines" <nil>
	// fd -1: bad file descriptor
}

// Which engine a context's file I/O uses, and why not io_uring if it does not. The
// thread-pool engine can be forced, here or with GLIBAIO_AIO=threads.
func ExampleContext_AIOEngine() {
	c, err := aiosource.New()
	if err != nil {
		panic(err)
	}
	defer c.Close()
	if err := c.SetAIOEngine(aiosource.AIOThreads); err != nil {
		panic(err)
	}
	fmt.Println(c.AIOEngine())
	fmt.Println(c.IOUringError())
	// Output:
	// threads
	// aiosource: io_uring not used: SetAIOEngine(AIOThreads)
}
