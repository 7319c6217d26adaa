package aiosource_test

// A model-based test of the file I/O engine: random batches of reads, writes, fsyncs
// and fdatasyncs, some cancelled, issued from outside the loop, from a BH or from
// another goroutine, on either engine and either drive mode, checked against a
// reference file that sees the same operations through pread and pwrite.

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"pgregory.net/rapid"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/leakcheck"
)

const (
	modelFileMax = 64 << 10 // offsets drawn up to a little past it
	modelOpMax   = 6000     // bytes per read or write
)

type fileModelOp struct {
	kind   string // read, write, fsync, fdatasync
	off    int64
	n      int
	seed   byte
	cancel bool

	buf []byte
	res ioResult
}

// clashes reports whether the outcome of a and b in flight together depends on their
// order: a write and a read or write of a common byte, or a write that grows the file
// (of size bytes) and a read past its end, which a hole would fill.
func (a *fileModelOp) clashes(b *fileModelOp, size int64) bool {
	if a.kind != "write" {
		a, b = b, a
	}
	if a.kind != "write" || (b.kind != "read" && b.kind != "write") || a.off < 0 || b.off < 0 {
		return false
	}
	aEnd, bEnd := a.off+int64(a.n), b.off+int64(b.n)
	overlap := a.n > 0 && b.n > 0 && a.off < bEnd && b.off < aEnd
	grows := b.kind == "read" && aEnd > size && bEnd > size && b.n > 0
	return overlap || grows
}

func TestFileModel(t *testing.T) {
	leakcheck.Handles(t)
	dir := t.TempDir()
	rapid.Check(t, func(rt *rapid.T) {
		engine := rapid.SampledFrom(engines).Draw(rt, "engine")
		glib := rapid.Bool().Draw(rt, "glib")
		c, err := aiosource.New()
		if err != nil {
			rt.Fatal(err)
		}
		defer c.Close() // when a check fails; the end of the check closes it and checks
		m := &mode{ctx: c, iterate: c.Poll}
		if glib {
			mc := glibloop.NewMainContext()
			defer mc.Unref()
			c.Attach(mc)
			m.iterate = mc.Iteration
		}
		if err := c.SetAIOEngine(engine); err != nil {
			rt.Fatal(err)
		}
		if e := c.AIOEngine(); e != engine && os.Getenv(noIOUringOK) == "" {
			rt.Fatalf("engine %v, want %v: %v", e, engine, c.IOUringError())
		}
		f, err := os.OpenFile(filepath.Join(dir, "model"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			rt.Fatal(err)
		}
		defer f.Close()
		ref, err := os.OpenFile(filepath.Join(dir, "ref"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			rt.Fatal(err)
		}
		defer ref.Close()
		fd, rfd := int(f.Fd()), int(ref.Fd())

		batches := rapid.IntRange(1, 12).Draw(rt, "batches")
		for b := 0; b < batches; b++ {
			var st unix.Stat_t
			if err := unix.Fstat(rfd, &st); err != nil {
				rt.Fatal(err)
			}
			var ops []*fileModelOp
			for i, n := 0, rapid.IntRange(1, 8).Draw(rt, "ops"); i < n; i++ {
				op := &fileModelOp{
					kind:   rapid.SampledFrom([]string{"read", "read", "write", "write", "fsync", "fdatasync"}).Draw(rt, "kind"),
					off:    int64(rapid.IntRange(-1, modelFileMax+4096).Draw(rt, "off")),
					n:      rapid.IntRange(0, modelOpMax).Draw(rt, "n"),
					seed:   byte(rapid.IntRange(0, 255).Draw(rt, "seed")),
					cancel: rapid.IntRange(0, 7).Draw(rt, "cancel") == 0,
				}
				clash := false
				for _, o := range ops {
					clash = clash || op.clashes(o, st.Size)
				}
				if !clash {
					ops = append(ops, op)
				}
			}
			// What the reads must see: the reference before this batch's writes, which
			// touch none of their bytes.
			want := make([][]byte, len(ops))
			wantErr := make([]error, len(ops))
			for i, op := range ops {
				if op.kind == "read" {
					want[i] = make([]byte, op.n)
					n, err := unix.Pread(rfd, want[i], op.off)
					if err != nil {
						n = 0
					}
					want[i], wantErr[i] = want[i][:n], err
				}
				if op.kind == "write" {
					op.buf = pattern(op.n, op.seed)
				} else {
					op.buf = make([]byte, op.n)
				}
			}
			issue := func() {
				for _, op := range ops {
					var req aiosource.FileRequest
					switch op.kind {
					case "read":
						req = c.ReadAt(fd, op.buf, op.off, op.res.done)
					case "write":
						req = c.WriteAt(fd, op.buf, op.off, op.res.done)
					case "fsync":
						req = c.Fsync(fd, op.res.done)
					default:
						req = c.Fdatasync(fd, op.res.done)
					}
					if op.cancel {
						req.Cancel()
					}
				}
			}
			switch rapid.IntRange(0, 2).Draw(rt, "from") {
			case 0:
				issue()
			case 1:
				c.ScheduleOneshot(issue)
			default:
				done := make(chan struct{})
				go func() { issue(); close(done) }()
				<-done
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				all := true
				for _, op := range ops {
					all = all && op.res.calls > 0
				}
				if all {
					break
				}
				if time.Now().After(deadline) {
					rt.Fatal("timed out")
				}
				m.iterate(true)
			}
			for i, op := range ops {
				r := op.res
				if r.calls != 1 {
					rt.Fatalf("%s: callback ran %d times", op.kind, r.calls)
				}
				if op.cancel && r.err == unix.ECANCELED && r.n == 0 {
					continue // cancelled before it ran: the reference skips it too
				}
				if op.off < 0 && (op.kind == "read" || op.kind == "write") {
					if r.err != unix.EINVAL {
						rt.Fatalf("%s at %d: %+v, want EINVAL", op.kind, op.off, r)
					}
					continue
				}
				switch op.kind {
				case "read":
					if r.err != wantErr[i] || !bytes.Equal(op.buf[:r.n], want[i]) {
						rt.Fatalf("read %d at %d: %d bytes, %v; pread of the reference: %d bytes, %v", op.n, op.off, r.n, r.err, len(want[i]), wantErr[i])
					}
				case "write":
					if r.err != nil || r.n != op.n {
						rt.Fatalf("write %d at %d: %+v", op.n, op.off, r)
					}
					if _, err := unix.Pwrite(rfd, op.buf, op.off); err != nil {
						rt.Fatal(err)
					}
				default:
					if r.err != nil || r.n != 0 {
						rt.Fatalf("%s: %+v", op.kind, r)
					}
				}
			}
		}
		got, _ := os.ReadFile(f.Name())
		exp, _ := os.ReadFile(ref.Name())
		if !bytes.Equal(got, exp) {
			rt.Fatalf("the file (%d bytes) differs from the reference (%d bytes)", len(got), len(exp))
		}
		if live, pinned, _, _ := aiosource.FileAIOState(c); live != 0 || pinned != 0 {
			rt.Fatalf("after the batches: %d live, %d pinned", live, pinned)
		}
		if err := c.Close(); err != nil {
			rt.Fatal(err)
		}
	})
}
