package coroutine

import (
	"context"
	"errors"
	"syscall"

	"github.com/glibaio/glibaio/aiosource"
)

// ReadAt reads len(buf) bytes of fd at offset off into buf and suspends the Task until
// the read has completed, returning what pread(2) returns: n bytes (fewer at the end of
// the file) and nil, or a syscall.Errno. It goes through the loop's file I/O engine,
// io_uring where the kernel allows it (aiosource.Context.ReadAt, QEMU's
// luring_co_submit), so no thread waits for it.
//
// If the Task's context is done first, the read is cancelled (io_uring_prep_cancel),
// and ReadAt still waits until the kernel has let go of buf: it returns the context's
// error if the cancel came first, and otherwise the read's result, which then already
// is in buf. It returns the context's error at once, reading nothing, if the context
// is done when it is called.
func (t *Task) ReadAt(fd int, buf []byte, off int64) (int, error) {
	return t.file("ReadAt", func(done func(int, error)) aiosource.FileRequest {
		return t.ac.ReadAt(fd, buf, off, done)
	})
}

// WriteAt writes buf to fd at offset off and suspends the Task until the write has
// completed, returning what pwrite(2) returns; as ReadAt otherwise. A write that the
// context's end did not cancel in time has happened: WriteAt then returns its result,
// not the context's error.
func (t *Task) WriteAt(fd int, buf []byte, off int64) (int, error) {
	return t.file("WriteAt", func(done func(int, error)) aiosource.FileRequest {
		return t.ac.WriteAt(fd, buf, off, done)
	})
}

// Fsync flushes fd to its device, as fsync(2), and suspends the Task until it has
// completed; as ReadAt otherwise.
func (t *Task) Fsync(fd int) error {
	_, err := t.file("Fsync", func(done func(int, error)) aiosource.FileRequest {
		return t.ac.Fsync(fd, done)
	})
	return err
}

// Fdatasync is Fsync as fdatasync(2).
func (t *Task) Fdatasync(fd int) error {
	_, err := t.file("Fdatasync", func(done func(int, error)) aiosource.FileRequest {
		return t.ac.Fdatasync(fd, done)
	})
	return err
}

// file starts one file operation and waits for its completion, which alone resumes the
// Task: the context's end only cancels the operation, so the buffer is never left to
// the kernel behind the Task's back.
func (t *Task) file(op string, start func(done func(int, error)) aiosource.FileRequest) (int, error) {
	w, err := t.begin(op)
	if err != nil {
		return 0, err
	}
	var (
		n        int
		res      error
		finished bool // the completion and this coroutine run on one thread
	)
	req := start(func(rn int, rerr error) {
		n, res, finished = rn, rerr, true
		w.wake()
	})
	if !finished { // after the loop's Close the completion comes at once
		stop := context.AfterFunc(t.ctx, req.Cancel)
		t.co.Yield()
		stop()
	}
	if errors.Is(res, syscall.ECANCELED) && t.ctx.Err() != nil {
		return n, t.ctx.Err()
	}
	return n, res
}
