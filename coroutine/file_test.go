package coroutine_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/coroutine"
)

// skipWithoutIOUring skips the test on a kernel that refuses io_uring when
// GLIBAIO_TEST_NO_IOURING says so, as aiosource's file tests do; without it the test
// goes on, and fails there.
func skipWithoutIOUring(t *testing.T) {
	t.Helper()
	if os.Getenv("GLIBAIO_TEST_NO_IOURING") == "" {
		return
	}
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetAIOEngine(aiosource.AIOIOUring); err != nil || c.AIOEngine() != aiosource.AIOIOUring {
		t.Skipf("io_uring unavailable (GLIBAIO_TEST_NO_IOURING is set): %v", c.IOUringError())
	}
}

// A Task awaits file I/O on the loop's engine: a write, fsync, fdatasync and a read
// back, each step on the loop thread; then errors, as pread reports them.
func TestTaskFile(t *testing.T) {
	for _, engine := range []aiosource.AIOEngine{aiosource.AIOIOUring, aiosource.AIOThreads} {
		t.Run(engine.String(), func(t *testing.T) {
			if engine == aiosource.AIOIOUring {
				skipWithoutIOUring(t)
			}
			p := filepath.Join(t.TempDir(), "f")
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fd := int(f.Fd())
			data := bytes.Repeat([]byte("glibaio "), 5000)
			var got []byte
			var errs []error
			var tids []int
			loopTid := runLoop(t, func(ml *aiosource.MainLoop) []*coroutine.Task {
				if err := ml.AioContext().SetAIOEngine(engine); err != nil {
					t.Fatal(err)
				}
				if e := ml.AioContext().AIOEngine(); e != engine {
					t.Fatalf("engine %v: %v", e, ml.AioContext().IOUringError())
				}
				return []*coroutine.Task{coroutine.Go(context.Background(), ml.AioContext(), func(tk *coroutine.Task) error {
					n, err := tk.WriteAt(fd, data, 10)
					if err != nil || n != len(data) {
						t.Errorf("WriteAt: %d, %v", n, err)
					}
					tids = append(tids, unix.Gettid())
					errs = append(errs, tk.Fsync(fd), tk.Fdatasync(fd))
					tids = append(tids, unix.Gettid())
					buf := make([]byte, len(data)+100)
					n, err = tk.ReadAt(fd, buf, 10)
					got = buf[:n]
					errs = append(errs, err)
					_, err = tk.ReadAt(-1, buf, 0)
					errs = append(errs, err)
					tids = append(tids, unix.Gettid())
					return nil
				})}
			})
			if !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, not the %d written", len(got), len(data))
			}
			if errs[0] != nil || errs[1] != nil || errs[2] != nil || errs[3] != unix.EBADF {
				t.Fatalf("errors %v; want nil, nil, nil, EBADF", errs)
			}
			for _, tid := range tids {
				if tid != loopTid {
					t.Fatalf("a step ran on thread %d, the loop on %d", tid, loopTid)
				}
			}
		})
	}
}

// The Task's context ends while it awaits a read that cannot complete (an empty pipe,
// on io_uring): the read is cancelled, and the Task gets the context's error only once
// the kernel has let go of the buffer; the pipe keeps its data. With the context
// already done, nothing is read at all.
func TestTaskFileCancel(t *testing.T) {
	skipWithoutIOUring(t)
	var pfd [2]int
	if err := unix.Pipe2(pfd[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pfd[0])
	defer unix.Close(pfd[1])
	var waited, early error
	var waitedN int
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	runLoop(t, func(ml *aiosource.MainLoop) []*coroutine.Task {
		if e := ml.AioContext().AIOEngine(); e != aiosource.AIOIOUring {
			t.Fatalf("engine %v: %v", e, ml.AioContext().IOUringError())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		t.Cleanup(cancel)
		return []*coroutine.Task{
			coroutine.Go(ctx, ml.AioContext(), func(tk *coroutine.Task) error {
				waitedN, waited = tk.ReadAt(pfd[0], make([]byte, 4), 0)
				return nil
			}),
			coroutine.Go(cancelled, ml.AioContext(), func(tk *coroutine.Task) error {
				_, early = tk.ReadAt(pfd[0], make([]byte, 4), 0)
				return nil
			}),
		}
	})
	if !errors.Is(waited, context.DeadlineExceeded) || waitedN != 0 {
		t.Fatalf("a read cancelled by the Task's deadline: %d, %v", waitedN, waited)
	}
	if !errors.Is(early, context.Canceled) {
		t.Fatalf("a read with the context already done: %v", early)
	}
	unix.Write(pfd[1], []byte("kept"))
	buf := make([]byte, 8)
	if n, err := unix.Read(pfd[0], buf); err != nil || string(buf[:n]) != "kept" {
		t.Fatalf("the pipe after the cancelled reads: %q, %v", buf[:n], err)
	}
}
