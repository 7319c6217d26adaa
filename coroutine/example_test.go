package coroutine_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/coroutine"
	"github.com/glibaio/glibaio/glibloop"
)

// A Task reads top to bottom and runs on the loop's thread. In a gotk3 program, make
// the MainLoop on GTK's context (gotk3.Wrap(glib.MainContextDefault()), package
// glibloop/gotk3), start Tasks from signal handlers, and let gtk.Main drive the loop:
// each step may touch widgets.
func ExampleGo() {
	mc := glibloop.NewMainContext()
	defer mc.Unref()
	ml, err := aiosource.NewMainLoop(mc)
	if err != nil {
		panic(err)
	}
	defer ml.Close()

	tk := coroutine.Go(context.Background(), ml.AioContext(), func(tk *coroutine.Task) error {
		fmt.Println("loading...")
		var size int64
		err := tk.Await(func() error { // a pool thread does the blocking part
			fi, err := os.Stat(os.Args[0])
			if err == nil {
				size = fi.Size()
			}
			return err
		})
		if err != nil {
			return err
		}
		fmt.Println("loaded:", size > 0) // back on the loop thread
		if err := tk.Sleep(10 * time.Millisecond); err != nil {
			return err
		}
		fmt.Println("done")
		ml.Quit()
		return nil
	})
	if err := ml.Run(context.Background()); err != nil {
		panic(err)
	}
	fmt.Println("task:", tk.Err())
	// Output:
	// loading...
	// loaded: true
	// done
	// task: <nil>
}

// A goroutine computes; the Task, on the loop thread, receives each result.
func ExampleRecv() {
	c, err := aiosource.New()
	if err != nil {
		panic(err)
	}
	defer c.Close()
	results := make(chan int)
	go func() {
		for i := 1; i <= 3; i++ {
			results <- i * i
		}
		close(results)
	}()
	tk := coroutine.Go(context.Background(), c, func(tk *coroutine.Task) error {
		for {
			v, ok, err := coroutine.Recv(tk, results)
			if err != nil || !ok {
				return err
			}
			fmt.Println("got", v)
		}
	})
	for tk.Err() == nil && !isDone(tk) {
		c.Poll(true)
	}
	// Output:
	// got 1
	// got 4
	// got 9
}

func isDone(tk *coroutine.Task) bool {
	select {
	case <-tk.Done():
		return true
	default:
		return false
	}
}

// A Task copies a file through the loop's file I/O engine (io_uring where the kernel
// allows it): each read and write suspends the Task, never the loop.
func ExampleTask_ReadAt() {
	src, _ := os.CreateTemp("", "glibaio-src-")
	defer os.Remove(src.Name())
	defer src.Close()
	dst, _ := os.CreateTemp("", "glibaio-dst-")
	defer os.Remove(dst.Name())
	defer dst.Close()
	src.WriteString("copied through the ring, 8 bytes at a time")

	mc := glibloop.NewMainContext()
	defer mc.Unref()
	ml, err := aiosource.NewMainLoop(mc)
	if err != nil {
		panic(err)
	}
	defer ml.Close()
	tk := coroutine.Go(context.Background(), ml.AioContext(), func(tk *coroutine.Task) error {
		defer ml.Quit()
		buf := make([]byte, 8)
		var off int64
		for {
			n, err := tk.ReadAt(int(src.Fd()), buf, off)
			if err != nil || n == 0 {
				return err
			}
			if _, err := tk.WriteAt(int(dst.Fd()), buf[:n], off); err != nil {
				return err
			}
			off += int64(n)
		}
	})
	if err := ml.Run(context.Background()); err != nil {
		panic(err)
	}
	out, _ := os.ReadFile(dst.Name())
	fmt.Printf("%q %v\n", out, tk.Err())
	// Output: "copied through the ring, 8 bytes at a time" <nil>
}
