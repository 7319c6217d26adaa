package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/coroutine"
)

// sha256FileChunk is how much sha256-file reads per request.
const sha256FileChunk = 1 << 20

// cmdSHA256File hashes a file read through the main context's file I/O engine
// (io_uring, as QEMU's aio=io_uring, or its thread-pool fallback). It is a coroutine
// Task, shaped as cmdSHA256: each 1 MiB chunk is read with Task.ReadAt (the loop does
// not wait for the disk) and hashed on the thread pool with Task.Await (the loop does
// not wait for the CPU either). Every progress_mib MiB it sends the client a
// SHA256_FILE_PROGRESS event; the reply gives the digest, the bytes read and the engine.
// A client that goes away cancels it: its read in flight is cancelled too.
func cmdSHA256File(q *qmpCall) {
	path, e1 := q.args.str("path", true)
	step, e2 := q.args.integer("progress_mib", false, 16, 1, 1<<20)
	if !q.checked(e1, e2) {
		return
	}
	f, size, e := openForHash(path)
	if e != nil {
		q.fail(e)
		return
	}
	answer := q.async()
	c := q.c
	q.goTask(func(tk *coroutine.Task) error {
		defer f.Close()
		fd := int(f.Fd())
		h := sha256.New()
		buf := make([]byte, sha256FileChunk)
		var off int64
		next := step << 20
		for {
			n, err := tk.ReadAt(fd, buf, off)
			if err != nil {
				if !c.gone {
					answer(nil, genericError("Could not read '%s' at offset %d: %s", path, off, strerror(err)))
				}
				return err
			}
			if n == 0 {
				break
			}
			chunk := buf[:n]
			if err := tk.Await(func() error { h.Write(chunk); return nil }); err != nil {
				if !c.gone {
					answer(nil, genericError("sha256-file: %v", err))
				}
				return err
			}
			off += int64(n)
			if off >= next {
				c.event("SHA256_FILE_PROGRESS", map[string]any{"path": path, "offset": off, "size": size})
				next = (off/(step<<20) + 1) * (step << 20)
			}
		}
		if !c.gone {
			answer(map[string]any{"sha256": hex.EncodeToString(h.Sum(nil)), "bytes": off, "engine": q.s.aio.AIOEngine().String()}, nil)
		}
		return nil
	})
}

// openForHash checks path and opens it for reading, answering what is wrong in QMP
// errors in QEMU's words ("Could not open 'x': No such file or directory", as
// raw_open_common says it). It takes a regular file or a block device: a directory, a
// FIFO, a socket or a character device is refused. The open is non-blocking, so a
// FIFO without a writer cannot hold the loop up, and the flag is cleared again for
// the reads (io_uring would otherwise fail a read that misses the page cache with
// EAGAIN).
func openForHash(path string) (*os.File, int64, *qmpError) {
	switch {
	case path == "":
		return nil, 0, genericError("Parameter 'path' expects a non-empty file name")
	case strings.IndexByte(path, 0) >= 0:
		return nil, 0, genericError("Parameter 'path' expects a file name without NUL bytes")
	case !utf8.ValidString(path):
		return nil, 0, genericError("Parameter 'path' expects a file name in UTF-8")
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, genericError("Could not open '%s': %s", path, strerror(err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, 0, genericError("Could not open '%s': %s", path, strerror(err))
	}
	size := st.Size
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFBLK:
		if n, err := unix.IoctlGetInt(fd, unix.BLKGETSIZE64); err == nil {
			size = int64(n)
		}
	case unix.S_IFDIR:
		unix.Close(fd)
		return nil, 0, genericError("'%s' is a directory, not a file", path)
	default:
		unix.Close(fd)
		return nil, 0, genericError("'%s' is not a regular file or a block device", path)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, 0); err != nil {
		unix.Close(fd)
		return nil, 0, genericError("Could not open '%s': %s", path, strerror(err))
	}
	return os.NewFile(uintptr(fd), path), size, nil
}

// strerror is the C library's text for an errno, capitalised as QEMU's messages show
// it ("No such file or directory"); other errors as they are.
func strerror(err error) string {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return err.Error()
	}
	s := errno.Error()
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return strings.ToUpper(string(r)) + s[n:]
}
