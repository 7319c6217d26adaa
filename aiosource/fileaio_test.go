package aiosource_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/leakcheck"
	"github.com/glibaio/glibaio/internal/testutil"
)

// The file I/O engine (fileaio.go): ReadAt, WriteAt, Fsync and Fdatasync on io_uring
// and on its thread-pool fallback, through both drive modes.

// noIOUringOK is set by whoever runs the tests on a kernel that refuses io_uring: the
// io_uring cases are then skipped with the kernel's reason. Without it they fail there,
// so a fallback that happens by mistake never passes for io_uring.
const noIOUringOK = "GLIBAIO_TEST_NO_IOURING"

var engines = []aiosource.AIOEngine{aiosource.AIOIOUring, aiosource.AIOThreads}

// newPipe returns a pipe's read and write ends, closed when the test ends.
func newPipe(t *testing.T) [2]int {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Close(p[0])
		unix.Close(p[1])
	})
	return p
}

// useEngine sets c's engine and checks that it is the one in use.
func useEngine(t *testing.T, c *aiosource.Context, e aiosource.AIOEngine) {
	t.Helper()
	if err := c.SetAIOEngine(e); err != nil {
		t.Fatal(err)
	}
	if got := c.AIOEngine(); got != e {
		if e == aiosource.AIOIOUring && os.Getenv(noIOUringOK) != "" {
			t.Skipf("io_uring unavailable (%s is set): %v", noIOUringOK, c.IOUringError())
		}
		t.Fatalf("engine %v, want %v: %v", got, e, c.IOUringError())
	}
}

// eachEngine runs fn as a subtest per engine and drive mode, each with a fresh context.
func eachEngine(t *testing.T, fn func(t *testing.T, m *mode)) {
	t.Helper()
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			eachMode(t, func(t *testing.T, m *mode) {
				useEngine(t, m.ctx, e)
				fn(t, m)
			})
		})
	}
}

// until drives m until cond holds, failing t after 20 s. A ticker notifies the context
// meanwhile, so a blocking iteration never outlasts the deadline.
func (m *mode) until(t *testing.T, cond func() bool) {
	t.Helper()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				m.ctx.Notify()
			}
		}
	}()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for file I/O completions")
		}
		m.iterate(true)
	}
}

// ioResult is what one completion callback received; calls counts its runs.
type ioResult struct {
	n     int
	err   error
	calls int
}

func (r *ioResult) done(n int, err error) { r.n, r.err = n, err; r.calls++ }

// do runs one operation through m and returns its result, checking that the callback
// ran exactly once, on the loop.
func (m *mode) do(t *testing.T, op func(done func(int, error))) ioResult {
	t.Helper()
	var r ioResult
	op(r.done)
	m.until(t, func() bool { return r.calls > 0 })
	m.flush()
	if r.calls != 1 {
		t.Fatalf("callback ran %d times", r.calls)
	}
	return r
}

func tempFile(t *testing.T, data []byte) (*os.File, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, p
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ seed
	}
	return b
}

// Reads and writes land at their offsets, as pread and pwrite, and the callback gets the
// byte count; a read from the loop sees what an earlier write wrote.
func TestFileReadWriteAt(t *testing.T) {
	leakcheck.Handles(t)
	eachEngine(t, func(t *testing.T, m *mode) {
		f, _ := tempFile(t, pattern(64<<10, 1))
		fd := int(f.Fd())
		for _, tc := range []struct {
			off int64
			n   int
		}{{0, 4096}, {4096 * 3, 4096}, {12345, 777}, {65535, 1}, {100, 0}} {
			buf := make([]byte, tc.n)
			r := m.do(t, func(done func(int, error)) { m.ctx.ReadAt(fd, buf, tc.off, done) })
			if r.err != nil || r.n != tc.n {
				t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", tc.n, tc.off, r.n, r.err)
			}
			want := make([]byte, tc.n)
			if _, err := unix.Pread(fd, want, tc.off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf, want) {
				t.Fatalf("ReadAt(%d bytes at %d) read other bytes than pread", tc.n, tc.off)
			}
		}
		// Writes, one of them past the end (a hole before it), then read back.
		for _, tc := range []struct {
			off int64
			n   int
		}{{10, 100}, {8190, 8192}, {100 << 10, 3000}} {
			data := pattern(tc.n, byte(tc.off))
			r := m.do(t, func(done func(int, error)) { m.ctx.WriteAt(fd, data, tc.off, done) })
			if r.err != nil || r.n != tc.n {
				t.Fatalf("WriteAt(%d bytes at %d) = %d, %v", tc.n, tc.off, r.n, r.err)
			}
			back := make([]byte, tc.n)
			r = m.do(t, func(done func(int, error)) { m.ctx.ReadAt(fd, back, tc.off, done) })
			if r.err != nil || r.n != tc.n || !bytes.Equal(back, data) {
				t.Fatalf("reading back %d bytes at %d: %d, %v, equal %v", tc.n, tc.off, r.n, r.err, bytes.Equal(back, data))
			}
			if got, err := unix.Pread(fd, back, tc.off); err != nil || got != tc.n || !bytes.Equal(back, data) {
				t.Fatalf("pread after WriteAt(%d bytes at %d): %d, %v", tc.n, tc.off, got, err)
			}
		}
		if st, err := f.Stat(); err != nil || st.Size() != 100<<10+3000 {
			t.Fatalf("size after a write past the end: %v, %v", st.Size(), err)
		}
	})
}

// Short reads at the end of the file and zero past it, as pread reports them.
func TestFileShortReadEOF(t *testing.T) {
	eachEngine(t, func(t *testing.T, m *mode) {
		f, _ := tempFile(t, []byte("0123456789"))
		fd := int(f.Fd())
		for _, tc := range []struct {
			off  int64
			want string
		}{{6, "6789"}, {9, "9"}, {10, ""}, {1 << 40, ""}} {
			buf := make([]byte, 8)
			r := m.do(t, func(done func(int, error)) { m.ctx.ReadAt(fd, buf, tc.off, done) })
			pn, perr := unix.Pread(fd, make([]byte, 8), tc.off)
			if r.err != nil || string(buf[:r.n]) != tc.want || r.n != pn || perr != nil {
				t.Fatalf("ReadAt(8 at %d) = %d %q, %v; want %q (pread: %d, %v)", tc.off, r.n, buf[:r.n], r.err, tc.want, pn, perr)
			}
		}
	})
}

// Errors are syscall.Errno values, the ones pread, pwrite and fsync give.
func TestFileErrors(t *testing.T) {
	eachEngine(t, func(t *testing.T, m *mode) {
		f, p := tempFile(t, []byte("data"))
		ro, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		// A closed fd: a number far above the ones in use, which no open takes meanwhile.
		cfd, err := unix.FcntlInt(ro.Fd(), unix.F_DUPFD_CLOEXEC, 4000)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(cfd)
		dir, err := os.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer dir.Close()
		buf := make([]byte, 4)
		for _, tc := range []struct {
			name string
			op   func(done func(int, error))
			want syscall.Errno
		}{
			{"read of a closed fd", func(d func(int, error)) { m.ctx.ReadAt(cfd, buf, 0, d) }, unix.EBADF},
			{"read of fd -1", func(d func(int, error)) { m.ctx.ReadAt(-1, buf, 0, d) }, unix.EBADF},
			{"read of an fd past int32", func(d func(int, error)) { m.ctx.ReadAt(1<<40, buf, 0, d) }, unix.EBADF},
			{"write to a read-only fd", func(d func(int, error)) { m.ctx.WriteAt(int(ro.Fd()), buf, 0, d) }, unix.EBADF},
			{"fsync of a closed fd", func(d func(int, error)) { m.ctx.Fsync(cfd, d) }, unix.EBADF},
			{"fdatasync of a closed fd", func(d func(int, error)) { m.ctx.Fdatasync(cfd, d) }, unix.EBADF},
			{"read at a negative offset", func(d func(int, error)) { m.ctx.ReadAt(int(f.Fd()), buf, -1, d) }, unix.EINVAL},
			{"write at a negative offset", func(d func(int, error)) { m.ctx.WriteAt(int(f.Fd()), buf, -4096, d) }, unix.EINVAL},
			{"read of a directory", func(d func(int, error)) { m.ctx.ReadAt(int(dir.Fd()), buf, 0, d) }, unix.EISDIR},
		} {
			r := m.do(t, tc.op)
			if r.n != 0 || r.err != tc.want {
				t.Errorf("%s: %d, %#v; want 0, %v", tc.name, r.n, r.err, tc.want)
			}
			var errno syscall.Errno
			if !errors.As(r.err, &errno) {
				t.Errorf("%s: %T is not a syscall.Errno", tc.name, r.err)
			}
		}
		// pread's own answers, for the record of the cases above.
		if _, err := unix.Pread(int(f.Fd()), buf, -1); err != unix.EINVAL {
			t.Errorf("pread at -1: %v, the test expects EINVAL", err)
		}
		if _, err := unix.Pread(int(dir.Fd()), buf, 0); err != unix.EISDIR {
			t.Errorf("pread of a directory: %v, the test expects EISDIR", err)
		}
	})
}

// A write, then fsync and fdatasync from its callback, then a read of what was written,
// through the loop and through a new file description.
func TestFileWriteFsyncReadBack(t *testing.T) {
	eachEngine(t, func(t *testing.T, m *mode) {
		f, p := tempFile(t, nil)
		fd := int(f.Fd())
		data := pattern(256<<10, 7)
		back := make([]byte, len(data))
		var steps []string
		var final ioResult
		m.ctx.WriteAt(fd, data, 4096, func(n int, err error) {
			steps = append(steps, fmt.Sprintf("write %d %v", n, err))
			m.ctx.Fsync(fd, func(n int, err error) {
				steps = append(steps, fmt.Sprintf("fsync %d %v", n, err))
				m.ctx.Fdatasync(fd, func(n int, err error) {
					steps = append(steps, fmt.Sprintf("fdatasync %d %v", n, err))
					m.ctx.ReadAt(fd, back, 4096, final.done)
				})
			})
		})
		m.until(t, func() bool { return final.calls > 0 })
		want := []string{fmt.Sprintf("write %d <nil>", len(data)), "fsync 0 <nil>", "fdatasync 0 <nil>"}
		if strings.Join(steps, "; ") != strings.Join(want, "; ") {
			t.Fatalf("steps %q, want %q", steps, want)
		}
		if final.err != nil || final.n != len(data) || !bytes.Equal(back, data) {
			t.Fatalf("read back: %d, %v, equal %v", final.n, final.err, bytes.Equal(back, data))
		}
		onDisk, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(onDisk) != 4096+len(data) || !bytes.Equal(onDisk[4096:], data) || !bytes.Equal(onDisk[:4096], make([]byte, 4096)) {
			t.Fatalf("the file holds %d bytes, not the hole and the data written", len(onDisk))
		}
	})
}

// directFile finds a filesystem that enforces O_DIRECT's alignment, as pread sees it:
// the test's temporary directory (tmpfs, since Linux 6.6, accepts O_DIRECT without
// checking alignment), then a directory next to the package (the checkout's disk),
// then /var/tmp. It returns an O_DIRECT fd of a file of size bytes there and the
// filesystems it looked at.
func directFile(t *testing.T, size int) (fd int, where string, looked []string) {
	t.Helper()
	var dirs []string
	dirs = append(dirs, t.TempDir())
	if d, err := os.MkdirTemp(".", ".odirect-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(d) })
		dirs = append(dirs, d)
	}
	if d, err := os.MkdirTemp("/var/tmp", "glibaio-odirect-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(d) })
		dirs = append(dirs, d)
	}
	probe := alignedBuf(t, 8192)
	for _, d := range dirs {
		var st unix.Statfs_t
		unix.Statfs(d, &st)
		name := fmt.Sprintf("%s (fs magic %#x)", d, st.Type)
		p := filepath.Join(d, "direct")
		if err := os.WriteFile(p, pattern(size, 3), 0o644); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Open(p, unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0)
		if err != nil {
			looked = append(looked, name+": no O_DIRECT: "+err.Error())
			continue
		}
		if _, err := unix.Pread(fd, probe[:4096], 1); err != unix.EINVAL {
			unix.Close(fd)
			looked = append(looked, fmt.Sprintf("%s: an O_DIRECT pread at offset 1 gives %v, not EINVAL", name, err))
			continue
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd, name, looked
	}
	return -1, "", looked
}

// alignedBuf returns n bytes of page-aligned memory from mmap (C memory, which a read
// into it does not pin).
func alignedBuf(t *testing.T, n int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

// An O_DIRECT request that is not aligned fails with EINVAL, as pread does; an aligned
// one reads the data. tmpfs does not check alignment, so the test looks for a
// filesystem that does and says which one it used; without one, the EINVAL case cannot
// be exercised and the test says so (the aligned reads still run).
func TestFileODirect(t *testing.T) {
	eachEngine(t, func(t *testing.T, m *mode) {
		fd, where, looked := directFile(t, 64<<10)
		for _, l := range looked {
			t.Log("O_DIRECT probe:", l)
		}
		if fd < 0 {
			t.Skipf("no filesystem here enforces O_DIRECT alignment, so EINVAL cannot be tested: %s", strings.Join(looked, "; "))
		}
		t.Logf("O_DIRECT file on %s", where)
		buf := alignedBuf(t, 16384)
		want := pattern(64<<10, 3)
		r := m.do(t, func(done func(int, error)) { m.ctx.ReadAt(fd, buf[:8192], 4096, done) })
		if r.err != nil || r.n != 8192 || !bytes.Equal(buf[:8192], want[4096:4096+8192]) {
			t.Fatalf("aligned O_DIRECT read: %d, %v", r.n, r.err)
		}
		// The offset and length must be aligned to the device's logical block; the
		// buffer to its DMA alignment, which may be as small as 4 bytes (virtio-blk,
		// NVMe): pread says which cases fail here, and ours must fail the same way.
		einval := 0
		for _, tc := range []struct {
			name string
			buf  []byte
			off  int64
		}{
			{"unaligned offset", buf[:4096], 1},
			{"unaligned length", buf[:4095], 0},
			{"buffer unaligned by 1", buf[1:4097], 0},
			{"buffer unaligned by 256", buf[256 : 256+4096], 0},
		} {
			pn, perr := unix.Pread(fd, tc.buf, tc.off)
			if perr != nil {
				pn = 0
			}
			r := m.do(t, func(done func(int, error)) { m.ctx.ReadAt(fd, tc.buf, tc.off, done) })
			if r.err != perr || r.n != pn {
				t.Errorf("O_DIRECT read, %s: %d, %v; pread: %d, %v", tc.name, r.n, r.err, pn, perr)
			}
			if perr == unix.EINVAL {
				einval++
				r = m.do(t, func(done func(int, error)) { m.ctx.WriteAt(fd, tc.buf, tc.off, done) })
				if r.err != unix.EINVAL || r.n != 0 {
					t.Errorf("O_DIRECT write, %s: %d, %v; want EINVAL", tc.name, r.n, r.err)
				}
			}
			t.Logf("O_DIRECT %s: pread and ReadAt give %d, %v", tc.name, pn, perr)
		}
		if einval == 0 {
			t.Fatal("no unaligned case gave EINVAL, though the probe's offset 1 did")
		}
	})
}

// The thread-pool engine, forced with SetAIOEngine or the environment, says why it is
// in use, and choosing the engine is refused once it is set up.
func TestFileEngineChoice(t *testing.T) {
	c := newCtx(t)
	if err := c.SetAIOEngine(aiosource.AIOEngine(7)); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("SetAIOEngine(7): %v, want os.ErrInvalid", err)
	}
	if err := c.SetAIOEngine(aiosource.AIOThreads); err != nil {
		t.Fatal(err)
	}
	if e, err := c.AIOEngine(), c.IOUringError(); e != aiosource.AIOThreads || err == nil || !strings.Contains(err.Error(), "SetAIOEngine(AIOThreads)") {
		t.Fatalf("forced: engine %v, reason %v", e, err)
	}
	if err := c.SetAIOEngine(aiosource.AIOIOUring); !errors.Is(err, os.ErrExist) {
		t.Errorf("SetAIOEngine(AIOIOUring) once the pool is in use: %v, want os.ErrExist", err)
	}
	if err := c.SetAIOEngine(aiosource.AIOThreads); err != nil {
		t.Errorf("SetAIOEngine of the engine in use: %v", err)
	}
	if s := aiosource.AIOIOUring.String() + " " + aiosource.AIOThreads.String() + " " + aiosource.AIOEngine(9).String(); s != "io_uring threads AIOEngine(9)" {
		t.Errorf("String: %q", s)
	}

	t.Setenv(aiosource.AIOEngineEnv, "threads")
	c2 := newCtx(t)
	if e, err := c2.AIOEngine(), c2.IOUringError(); e != aiosource.AIOThreads || err == nil || !strings.Contains(err.Error(), "GLIBAIO_AIO=threads") {
		t.Fatalf("%s=threads: engine %v, reason %v", aiosource.AIOEngineEnv, e, err)
	}
	if err := c2.SetAIOEngine(aiosource.AIOIOUring); !errors.Is(err, os.ErrExist) {
		t.Errorf("SetAIOEngine(AIOIOUring) once %s=threads set the pool up: %v, want os.ErrExist", aiosource.AIOEngineEnv, err)
	}
	c3 := newCtx(t)
	if err := c3.SetAIOEngine(aiosource.AIOIOUring); err != nil { // overrides the environment
		t.Fatal(err)
	}
	if e := c3.AIOEngine(); e != aiosource.AIOIOUring && os.Getenv(noIOUringOK) == "" {
		t.Fatalf("SetAIOEngine(AIOIOUring) over %s=threads: %v (%v)", aiosource.AIOEngineEnv, e, c3.IOUringError())
	}
	t.Setenv(aiosource.AIOEngineEnv, "bogus")
	c4 := newCtx(t)
	var reported []error
	c4.SetErrorHandler(func(err error) { reported = append(reported, err) })
	if e, err := c4.AIOEngine(), c4.IOUringError(); (e != aiosource.AIOIOUring || err != nil) && os.Getenv(noIOUringOK) == "" {
		t.Fatalf("%s=bogus: engine %v, reason %v; want the default", aiosource.AIOEngineEnv, e, err)
	}
	if len(reported) != 1 || !strings.Contains(reported[0].Error(), `GLIBAIO_AIO="bogus" is neither`) {
		t.Fatalf("%s=bogus: reported %v", aiosource.AIOEngineEnv, reported)
	}

	c.Close()
	if err := c.SetAIOEngine(aiosource.AIOThreads); err != aiosource.ErrClosed {
		t.Errorf("SetAIOEngine after Close: %v", err)
	}
	c5 := newCtx(t)
	c5.Close()
	if e, err := c5.AIOEngine(), c5.IOUringError(); e != aiosource.AIOThreads || err != aiosource.ErrClosed {
		t.Errorf("AIOEngine of a context closed before any file I/O: %v, %v", e, err)
	}
}

// fileChild is set in the environment of the subprocess that runs a case under a
// seccomp filter, which would bind every thread of the test process.
const fileChild = "GLIBAIO_FILEAIO_CHILD"

// Where the kernel refuses io_uring, file I/O falls back to the thread pool by itself
// and says why. A seccomp filter makes io_uring_setup fail with EPERM, as Docker's
// default profile and kernel.io_uring_disabled=2 do; it binds every thread of the
// process, so the case runs in a subprocess.
func TestFileFallbackSeccomp(t *testing.T) {
	if os.Getenv(fileChild) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFileFallbackSeccomp$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), fileChild+"=1")
		out, err := cmd.CombinedOutput()
		t.Logf("subprocess:\n%s", out)
		if err != nil {
			t.Fatalf("subprocess: %v", err)
		}
		if !bytes.Contains(out, []byte("--- PASS: TestFileFallbackSeccomp")) {
			t.Fatal("the subprocess did not run the case")
		}
		return
	}
	denyIOUringSetup(t)
	eachMode(t, func(t *testing.T, m *mode) {
		if e, err := m.ctx.AIOEngine(), m.ctx.IOUringError(); e != aiosource.AIOThreads || !errors.Is(err, unix.EPERM) {
			t.Fatalf("io_uring_setup denied: engine %v, reason %v; want threads, EPERM", e, err)
		} else {
			t.Logf("engine %v: %v", e, err)
		}
		f, _ := tempFile(t, []byte("through the pool"))
		buf := make([]byte, 7)
		r := m.do(t, func(done func(int, error)) { m.ctx.ReadAt(int(f.Fd()), buf, 8, done) })
		if r.err != nil || string(buf[:r.n]) != "the poo" {
			t.Fatalf("ReadAt on the fallback: %d %q, %v", r.n, buf[:r.n], r.err)
		}
	})
}

// denyIOUringSetup installs a seccomp filter on every thread of the process that fails
// io_uring_setup with EPERM.
func denyIOUringSetup(t *testing.T) {
	t.Helper()
	const (
		seccompSetModeFilter   = 1
		seccompFilterFlagTsync = 1
		seccompRetErrno        = 0x00050000
		seccompRetAllow        = 0x7fff0000
	)
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_IO_URING_SETUP, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: seccompRetErrno | uint32(unix.EPERM)},
		{Code: unix.BPF_RET | unix.BPF_K, K: seccompRetAllow},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, seccompSetModeFilter, seccompFilterFlagTsync, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		t.Fatalf("seccomp: %v", errno)
	}
	if _, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, 0, 0); errno != unix.EPERM {
		t.Fatalf("io_uring_setup under the filter: %v, want EPERM", errno)
	}
}

// ownModes is modes for tests that close the context themselves: a context driven by
// Poll, and one attached to a GMainContext of its own and driven by its iterations.
func ownModes(t *testing.T) []*mode {
	t.Helper()
	var out []*mode
	for _, glib := range []bool{false, true} {
		c, err := aiosource.New()
		if err != nil {
			t.Fatal(err)
		}
		m := &mode{name: "Poll", ctx: c, glib: glib, iterate: c.Poll}
		if glib {
			mc := testutil.NewContext(t)
			c.Attach(mc)
			m.name, m.iterate = "GLib", mc.Iteration
		}
		t.Cleanup(func() { c.Close() })
		out = append(out, m)
	}
	return out
}

// Close with 10,000 operations in flight: the ones still queued never reach the kernel,
// those in the kernel are cancelled (io_uring_prep_cancel), and Close waits for every
// completion. Each callback runs exactly once, with ECANCELED or with its result, and
// nothing is lost: the pipe holds exactly the bytes no read returned. Afterwards no
// buffer is pinned, and the ring, its eventfd and every cgo handle are gone.
func TestFileCloseInFlight(t *testing.T) {
	leakcheck.Handles(t)
	const total, fileReads, pipeData = 10000, 1000, 100
	for _, m := range ownModes(t) {
		t.Run(m.name, func(t *testing.T) {
			rings, fds := countFDsTo(t, "anon_inode:[io_uring]"), countFDs(t)
			useEngine(t, m.ctx, aiosource.AIOIOUring)
			if n := countFDsTo(t, "anon_inode:[io_uring]"); n != rings+1 {
				t.Fatalf("%d io_uring fds with the ring, %d before", n, rings)
			}
			f, _ := tempFile(t, pattern(1<<20, 9))
			p := newPipe(t)
			pipeBuf := make([]byte, total) // every pipe read pins the same array
			results := make([]ioResult, total)
			isFile := func(i int) bool { return i%(total/fileReads) == 0 }
			var afterClose []error
			for i := 0; i < total; i++ {
				done := func(n int, err error) {
					results[i].done(n, err)
					if m.ctx.Closed() && len(afterClose) < 3 {
						m.ctx.ReadAt(int(f.Fd()), make([]byte, 1), 0, func(_ int, err error) { afterClose = append(afterClose, err) })
					}
				}
				if isFile(i) {
					m.ctx.ReadAt(int(f.Fd()), make([]byte, 4096), int64(i)*64, done)
				} else {
					m.ctx.ReadAt(p[0], pipeBuf[i:i+1], 0, done)
				}
			}
			m.iterate(false) // one pass: the ring fills; most stay queued
			if _, err := unix.Write(p[1], pattern(pipeData, 1)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
			early := 0
			for _, r := range results {
				early += r.calls
			}
			if live, pinned, ring, _ := aiosource.FileAIOState(m.ctx); live != total-early || pinned != live || !ring || live < total-fileReads {
				t.Fatalf("before Close: %d completed, %d live, %d pinned, ring %v", early, live, pinned, ring)
			}
			if err := m.ctx.Close(); err != nil {
				t.Fatal(err)
			}
			var cancelled, read, pipeRead int
			for i, r := range results {
				switch {
				case r.calls != 1:
					t.Fatalf("operation %d: callback ran %d times", i, r.calls)
				case r.err == unix.ECANCELED && r.n == 0:
					cancelled++
				case r.err != nil:
					t.Fatalf("operation %d: %d, %v", i, r.n, r.err)
				case isFile(i) && r.n == 4096:
					read++
				case !isFile(i) && r.n == 1:
					pipeRead++
				default:
					t.Fatalf("operation %d: %d bytes", i, r.n)
				}
			}
			unix.SetNonblock(p[0], true) // the write end is open: EAGAIN when empty
			left, _ := unix.Read(p[0], make([]byte, 2*pipeData))
			if pipeRead+max(left, 0) != pipeData {
				t.Fatalf("%d pipe reads returned a byte and %d bytes are left: %d written", pipeRead, left, pipeData)
			}
			t.Logf("%d cancelled, %d file reads and %d pipe reads completed", cancelled, read, pipeRead)
			if cancelled < total-fileReads-pipeData {
				t.Fatalf("only %d cancelled", cancelled)
			}
			if len(afterClose) == 0 || afterClose[0] != aiosource.ErrClosed {
				t.Fatalf("ReadAt from a callback during Close: %v, want ErrClosed at once", afterClose)
			}
			if live, pinned, ring, _ := aiosource.FileAIOState(m.ctx); live != 0 || pinned != 0 || ring {
				t.Fatalf("after Close: %d live, %d pinned, ring %v", live, pinned, ring)
			}
			f.Close()
			// The pipe is still open; the context's own fds (made before fds was counted),
			// the ring and its eventfd are closed.
			if n, r := countFDs(t), countFDsTo(t, "anon_inode:[io_uring]"); n > fds || r != rings {
				t.Fatalf("after Close: %d fds open (%d before the ring, the file and the pipe), %d io_uring fds (%d before)", n, fds, r, rings)
			}
		})
	}
}

// The same on the thread-pool engine: work that has not started is cancelled, work
// that runs completes with its result.
func TestFileCloseInFlightThreads(t *testing.T) {
	leakcheck.Handles(t)
	const total = 10000
	for _, m := range ownModes(t) {
		t.Run(m.name, func(t *testing.T) {
			useEngine(t, m.ctx, aiosource.AIOThreads)
			if err := m.ctx.SetThreadPoolSize(2); err != nil {
				t.Fatal(err)
			}
			f, _ := tempFile(t, pattern(1<<20, 9))
			// Both workers are busy until shortly after Close has begun.
			release := make(chan struct{})
			for range 2 {
				m.ctx.Submit(func() error { <-release; return nil }, nil)
			}
			results := make([]ioResult, total)
			for i := 0; i < total; i++ {
				m.ctx.ReadAt(int(f.Fd()), make([]byte, 4096), int64(i)*64, results[i].done)
			}
			m.iterate(false)
			time.AfterFunc(50*time.Millisecond, func() { close(release) })
			if err := m.ctx.Close(); err != nil {
				t.Fatal(err)
			}
			var cancelled int
			for i, r := range results {
				switch {
				case r.calls != 1:
					t.Fatalf("operation %d: callback ran %d times", i, r.calls)
				case r.err == unix.ECANCELED && r.n == 0:
					cancelled++
				case r.err != nil || r.n != 4096:
					t.Fatalf("operation %d: %d, %v", i, r.n, r.err)
				}
			}
			t.Logf("%d of %d cancelled", cancelled, total)
			if cancelled != total {
				t.Fatalf("%d of %d cancelled, though no worker was free before Close", cancelled, total)
			}
			if live, pinned, _, _ := aiosource.FileAIOState(m.ctx); live != 0 || pinned != 0 {
				t.Fatalf("after Close: %d live, %d pinned", live, pinned)
			}
		})
	}
}

// countFDsTo counts the process's open fds whose /proc/self/fd link is target.
func countFDsTo(t *testing.T, target string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == target {
			n++
		}
	}
	return n
}

// Cancel: a request still queued never reaches the kernel; one in the kernel is
// cancelled there; either way its callback runs once, with ECANCELED. A completed
// request, or the zero FileRequest, cancels nothing.
func TestFileCancel(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		useEngine(t, m.ctx, aiosource.AIOIOUring)
		p := newPipe(t)
		buf := make([]byte, 8)
		var queued, inKernel, later ioResult
		req := m.ctx.ReadAt(p[0], buf[:1], 0, queued.done)
		req.Cancel() // before any pass: it is still queued
		req2 := m.ctx.ReadAt(p[0], buf[1:2], 0, inKernel.done)
		m.iterate(false) // submits it; the pipe is empty, so it waits in the kernel
		if queued.calls != 1 || queued.err != unix.ECANCELED {
			t.Fatalf("cancelled while queued: %+v", queued)
		}
		if inKernel.calls != 0 {
			t.Fatalf("a read of an empty pipe completed: %+v", inKernel)
		}
		go req2.Cancel() // from another goroutine
		m.until(t, func() bool { return inKernel.calls > 0 })
		if inKernel.calls != 1 || inKernel.err != unix.ECANCELED || inKernel.n != 0 {
			t.Fatalf("cancelled in the kernel: %+v", inKernel)
		}
		// Neither read took a byte: the next read gets the first one written.
		unix.Write(p[1], []byte("ab"))
		r := m.do(t, func(done func(int, error)) { m.ctx.ReadAt(p[0], buf[2:3], 0, done) })
		if r.n != 1 || r.err != nil || buf[2] != 'a' {
			t.Fatalf("read after the cancels: %d, %v, %q", r.n, r.err, buf[2])
		}
		// A completed request: Cancel does nothing, even once its slot is reused.
		req3 := m.ctx.ReadAt(p[0], buf[3:4], 0, later.done)
		m.until(t, func() bool { return later.calls > 0 })
		var next ioResult
		m.ctx.ReadAt(p[0], buf[4:5], 0, next.done) // takes req3's slot
		req3.Cancel()
		req.Cancel()
		aiosource.FileRequest{}.Cancel()
		unix.Write(p[1], []byte("c"))
		m.until(t, func() bool { return next.calls > 0 })
		if later.calls != 1 || later.n != 1 || buf[3] != 'b' {
			t.Fatalf("the read before Cancel: %+v %q", later, buf[3])
		}
		if next.calls != 1 || next.n != 1 || next.err != nil || buf[4] != 'c' {
			t.Fatalf("a stale Cancel reached the request that reused its slot: %+v %q", next, buf[4])
		}
		m.flush()
	})
	t.Run("threads", func(t *testing.T) {
		eachMode(t, func(t *testing.T, m *mode) {
			useEngine(t, m.ctx, aiosource.AIOThreads)
			if err := m.ctx.SetThreadPoolSize(1); err != nil {
				t.Fatal(err)
			}
			f, _ := tempFile(t, []byte("threads"))
			release := make(chan struct{})
			var blocker, running, queued ioResult
			m.ctx.Submit(func() error { <-release; return nil }, func(error) { blocker.calls++ })
			req := m.ctx.ReadAt(int(f.Fd()), make([]byte, 7), 0, queued.done)
			req.Cancel() // the only worker is busy: the read has not started
			close(release)
			m.until(t, func() bool { return queued.calls > 0 && blocker.calls > 0 })
			if queued.err != unix.ECANCELED || queued.n != 0 {
				t.Fatalf("cancelled before it started: %+v", queued)
			}
			req = m.ctx.ReadAt(int(f.Fd()), make([]byte, 7), 0, running.done)
			m.until(t, func() bool { return running.calls > 0 })
			req.Cancel() // completed: nothing
			if running.calls != 1 || running.err != nil || running.n != 7 {
				t.Fatalf("a read left alone: %+v", running)
			}
		})
	})
}

// On io_uring, a read of a pipe ignores the offset and waits for data, as read(2);
// pread, and so the thread-pool engine, fail with ESPIPE. The difference is
// documented on ReadAt.
func TestFilePipe(t *testing.T) {
	eachEngine(t, func(t *testing.T, m *mode) {
		p := newPipe(t)
		buf := make([]byte, 4)
		var r ioResult
		m.ctx.ReadAt(p[0], buf, 0, r.done)
		if m.ctx.AIOEngine() == aiosource.AIOThreads {
			m.until(t, func() bool { return r.calls > 0 })
			if r.err != unix.ESPIPE {
				t.Fatalf("pread of a pipe on the pool: %+v, want ESPIPE", r)
			}
			return
		}
		m.iterate(false)
		time.Sleep(5 * time.Millisecond)
		m.iterate(false)
		if r.calls != 0 {
			t.Fatalf("a read of an empty pipe completed: %+v", r)
		}
		unix.Write(p[1], []byte("pipe"))
		m.until(t, func() bool { return r.calls > 0 })
		if r.err != nil || string(buf[:r.n]) != "pipe" {
			t.Fatalf("read of a pipe on io_uring: %d %q, %v", r.n, buf[:r.n], r.err)
		}
	})
}

// Requests made during one pass go to the kernel with one io_uring_submit (QEMU's
// luring_io_plug/unplug): 32 reads from one BH, or from another goroutine before the
// loop runs, are one submit. Their callbacks run on the loop thread, in a walk of the
// context.
func TestFileBatching(t *testing.T) {
	eachMode(t, func(t *testing.T, m *mode) {
		useEngine(t, m.ctx, aiosource.AIOIOUring)
		f, _ := tempFile(t, pattern(128<<10, 5))
		fd := int(f.Fd())
		const n = 32
		var results [n]ioResult
		wrongThread := 0
		issue := func() {
			for i := range results {
				results[i] = ioResult{}
				m.ctx.ReadAt(fd, make([]byte, 4096), int64(i)*4096, func(n int, err error) {
					if aiosource.CurrentContext() != m.ctx {
						wrongThread++
					}
					results[i].done(n, err)
				})
			}
		}
		all := func() bool {
			for _, r := range results {
				if r.calls == 0 {
					return false
				}
			}
			return true
		}
		for _, from := range []string{"a BH", "another goroutine"} {
			_, _, _, before := aiosource.FileAIOState(m.ctx)
			if from == "a BH" {
				m.ctx.ScheduleOneshot(issue)
			} else {
				done := make(chan struct{})
				go func() { issue(); close(done) }()
				<-done
			}
			m.until(t, all)
			m.flush()
			_, _, _, after := aiosource.FileAIOState(m.ctx)
			for i, r := range results {
				if r.calls != 1 || r.err != nil || r.n != 4096 {
					t.Fatalf("from %s: read %d: %+v", from, i, r)
				}
			}
			if after-before != 1 {
				t.Errorf("from %s: %d reads took %d io_uring_submit calls, want 1", from, n, after-before)
			}
		}
		if wrongThread != 0 {
			t.Errorf("%d callbacks ran outside the context's walk", wrongThread)
		}
	})
}

// A panic in a completion callback comes out of the call that drives the context, as a
// *glibloop.PanicError with the original value; the completions behind it are delivered
// in a later pass, and nothing leaks.
func TestFileCallbackPanic(t *testing.T) {
	leakcheck.Handles(t)
	eachEngine(t, func(t *testing.T, m *mode) {
		f, _ := tempFile(t, pattern(64<<10, 5))
		fd := int(f.Fd())
		var before, after ioResult
		m.ctx.ReadAt(fd, make([]byte, 10), 0, before.done)
		m.ctx.ReadAt(fd, make([]byte, 10), 10, func(int, error) { panic("file-boom") })
		m.ctx.ReadAt(fd, make([]byte, 10), 20, after.done)
		var pe *glibloop.PanicError
		for deadline := time.Now().Add(10 * time.Second); pe == nil && time.Now().Before(deadline); {
			pe, _ = catch(func() { m.iterate(true) })
		}
		if pe == nil || pe.Value != "file-boom" {
			t.Fatalf("want file-boom as a PanicError, got %v", pe)
		}
		m.until(t, func() bool { return before.calls > 0 && after.calls > 0 })
		m.flush()
		if before.calls != 1 || after.calls != 1 || before.n != 10 || after.n != 10 {
			t.Fatalf("the other completions: %+v, %+v", before, after)
		}
		if live, pinned, _, _ := aiosource.FileAIOState(m.ctx); live != 0 || pinned != 0 {
			t.Fatalf("after the panic: %d live, %d pinned", live, pinned)
		}
	})
}

// Many goroutines submit reads and writes while the loop runs on an IOThread; every
// write lands and every read sees its own region.
func TestFileConcurrentSubmit(t *testing.T) {
	leakcheck.Handles(t)
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			th, err := aiosource.NewIOThread("fileaio")
			if err != nil {
				t.Fatal(err)
			}
			defer th.Stop()
			useEngine(t, th.Context(), e)
			f, _ := tempFile(t, nil)
			fd := int(f.Fd())
			const goroutines, each, size = 8, 50, 1000
			errs := make(chan error, goroutines)
			for g := 0; g < goroutines; g++ {
				go func() {
					for i := 0; i < each; i++ {
						off := int64(g*each+i) * size
						data := pattern(size, byte(g*each+i))
						done := make(chan error, 1)
						th.Context().WriteAt(fd, data, off, func(n int, err error) {
							if err == nil && n != size {
								err = fmt.Errorf("short write %d", n)
							}
							done <- err
						})
						if err := <-done; err != nil {
							errs <- err
							return
						}
						back := make([]byte, size)
						th.Context().ReadAt(fd, back, off, func(n int, err error) {
							if err == nil && (n != size || !bytes.Equal(back, data)) {
								err = fmt.Errorf("read back %d bytes, equal %v", n, bytes.Equal(back[:n], data[:n]))
							}
							done <- err
						})
						if err := <-done; err != nil {
							errs <- err
							return
						}
					}
					errs <- nil
				}()
			}
			for g := 0; g < goroutines; g++ {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// A coroutine awaits each operation (luring_co_submit): it yields until the completion
// resumes it on the loop's thread, and gets the result as its return values.
func TestFileCoroutine(t *testing.T) {
	leakcheck.Handles(t)
	eachEngine(t, func(t *testing.T, m *mode) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid := unix.Gettid()
		f, _ := tempFile(t, nil)
		fd := int(f.Fd())
		data := pattern(20000, 4)
		var steps []string
		finished := false
		m.ctx.ScheduleOneshot(func() {
			aiosource.NewCoroutine(func(*aiosource.Coroutine) {
				note := func(s string, n int, err error) {
					steps = append(steps, fmt.Sprintf("%s %d %v", s, n, err))
					if unix.Gettid() != tid {
						steps = append(steps, "on another thread")
					}
				}
				n, err := aiosource.WriteAtCo(fd, data, 100)
				note("write", n, err)
				note("fsync", 0, aiosource.FsyncCo(fd))
				note("fdatasync", 0, aiosource.FdatasyncCo(fd))
				back := make([]byte, len(data)+50)
				n, err = aiosource.ReadAtCo(fd, back, 100)
				if !bytes.Equal(back[:n], data) {
					steps = append(steps, "read other bytes")
				}
				note("read", n, err)
				n, err = aiosource.ReadAtCo(-1, back, 0)
				note("read -1", n, err)
				finished = true
			}).Enter()
		})
		for !finished {
			m.iterate(true)
		}
		want := []string{"write 20000 <nil>", "fsync 0 <nil>", "fdatasync 0 <nil>", "read 20000 <nil>", "read -1 0 bad file descriptor"}
		if strings.Join(steps, "; ") != strings.Join(want, "; ") {
			t.Fatalf("steps %q, want %q", steps, want)
		}
		if live, pinned, _, _ := aiosource.FileAIOState(m.ctx); live != 0 || pinned != 0 {
			t.Fatalf("after the coroutine: %d live, %d pinned", live, pinned)
		}
	})
}

// Misuse: a nil callback panics with the operation's name; outside a coroutine the
// awaiting forms panic; after Close the callback gets ErrClosed at once, on the calling
// goroutine, and the awaiting forms return it.
func TestFileMisuse(t *testing.T) {
	c := newCtx(t)
	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"aiosource: ReadAt: nil done", func() { c.ReadAt(0, nil, 0, nil) }},
		{"aiosource: WriteAt: nil done", func() { c.WriteAt(0, nil, 0, nil) }},
		{"aiosource: Fsync: nil done", func() { c.Fsync(0, nil) }},
		{"aiosource: Fdatasync: nil done", func() { c.Fdatasync(0, nil) }},
		{"aiosource: ReadAtCo: not in a coroutine", func() { aiosource.ReadAtCo(0, nil, 0) }},
		{"aiosource: WriteAtCo: not in a coroutine", func() { aiosource.WriteAtCo(0, nil, 0) }},
		{"aiosource: FsyncCo: not in a coroutine", func() { aiosource.FsyncCo(0) }},
		{"aiosource: FdatasyncCo: not in a coroutine", func() { aiosource.FdatasyncCo(0) }},
	} {
		mustPanicWith(t, tc.name, tc.fn)
	}
	for _, e := range engines {
		c := newCtx(t)
		useEngine(t, c, e)
		c.Close()
		var r ioResult
		c.ReadAt(0, make([]byte, 1), 0, r.done)
		c.WriteAt(0, make([]byte, 1), 0, r.done)
		c.Fsync(0, r.done).Cancel()
		c.Fdatasync(0, r.done)
		if r.calls != 4 || r.err != aiosource.ErrClosed {
			t.Errorf("%v: after Close: %+v", e, r)
		}
		// A coroutine outside any walk: its context is nil, so the awaiting forms name
		// the problem.
		runtime.LockOSThread()
		mustPanicWith(t, "aiosource: ReadAtCo: the coroutine runs in no context's walk", func() {
			aiosource.NewCoroutine(func(*aiosource.Coroutine) { aiosource.ReadAtCo(0, nil, 0) }).Enter()
		})
		runtime.UnlockOSThread()
	}
}

// Close from a completion callback, on the loop's thread, with other requests in
// flight: the rest complete (with ECANCELED or their result) inside Close, the engine
// run that called the callback ends quietly, and nothing stays pinned.
func TestFileCloseFromCallback(t *testing.T) {
	leakcheck.Handles(t)
	for _, m := range ownModes(t) {
		t.Run(m.name, func(t *testing.T) {
			useEngine(t, m.ctx, aiosource.AIOIOUring)
			f, _ := tempFile(t, pattern(1<<20, 1))
			p := newPipe(t)
			results := make([]ioResult, 100)
			var closeErr error
			closed := false
			for i := range results {
				fd, buf := int(f.Fd()), make([]byte, 512)
				if i%2 == 1 {
					fd, buf = p[0], buf[:1] // waits in the kernel until Close cancels it
				}
				m.ctx.ReadAt(fd, buf, int64(i)*512, func(n int, err error) {
					results[i].done(n, err)
					if !closed {
						closed = true
						closeErr = m.ctx.Close()
					}
				})
			}
			m.until(t, func() bool { return closed })
			if closeErr != nil {
				t.Fatal(closeErr)
			}
			for i, r := range results {
				if r.calls != 1 || (r.err != nil && r.err != unix.ECANCELED) {
					t.Fatalf("request %d: %+v", i, r)
				}
			}
			if live, pinned, ring, _ := aiosource.FileAIOState(m.ctx); live != 0 || pinned != 0 || ring {
				t.Fatalf("after Close: %d live, %d pinned, ring %v", live, pinned, ring)
			}
			m.iterate(false) // a closed context: nothing happens
		})
	}
}

// A slot's generation wraps within 31 bits: a request's user_data never takes the bit
// that marks a cancel's own completion, whose result is dropped, so requests complete
// across the wrap, and a stale FileRequest cancels nothing.
func TestFileGenerationWrap(t *testing.T) {
	eachMode(t, func(t *testing.T, m *mode) {
		useEngine(t, m.ctx, aiosource.AIOIOUring)
		f, _ := tempFile(t, pattern(4096, 1))
		buf := make([]byte, 16)
		m.do(t, func(done func(int, error)) { m.ctx.ReadAt(int(f.Fd()), buf, 0, done) }) // makes a slot
		aiosource.SetFileAIOGenerations(m.ctx, 1<<31-3)
		var stale aiosource.FileRequest
		for i := 0; i < 6; i++ {
			var r ioResult
			req := m.ctx.ReadAt(int(f.Fd()), buf, int64(i), r.done)
			stale.Cancel()
			m.until(t, func() bool { return r.calls > 0 })
			if r.calls != 1 || r.err != nil || r.n != len(buf) {
				t.Fatalf("read %d across the generation wrap: %+v", i, r)
			}
			stale = req
		}
	})
}
