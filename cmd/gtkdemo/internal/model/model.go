// Package model is gtkdemo's AIO wiring, free of GTK so that it is tested without a
// display and without compiling GTK: the window (package main) implements View.
package model

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/coroutine"
	"github.com/glibaio/glibaio/glibloop"
)

// View is what the model shows; the GTK window implements it, and so does the test's
// fake. Every method is called on the GLib loop thread.
type View interface {
	SetFDEvents(events, bytes int64)
	SetProgress(done, total int)
	SetFlood(text string)
	SetLateness(text string)
	SetChecksum(text string)
}

// Model is the demo's AIO wiring, free of GTK: a child process's pipe watched by an fd
// handler on io-handler, Submit jobs on the thread pool, a BH flood and a 16 ms AIO timer
// whose lateness is measured, all on the MainLoop attached to the GTK context.
type Model struct {
	ml *aiosource.MainLoop
	v  View

	child     *exec.Cmd
	pipe      int
	fdEvents  int64
	fdBytes   int64
	jobsDone  int
	jobsTotal int

	timer   *aiosource.Timer
	expire  int64
	samples []time.Duration

	flooding  bool
	floodRan  int
	floodDone int           // BHs of the last flood that finished (0: none yet)
	floodTook time.Duration // how long it took

	checksum       *coroutine.Task
	cancelChecksum context.CancelFunc
}

const timerPeriod = 16 * time.Millisecond

// New attaches an aiosource MainLoop to mc and arms the 16 ms timer.
func New(mc *glibloop.MainContext, v View) (*Model, error) {
	ml, err := aiosource.NewMainLoop(mc)
	if err != nil {
		return nil, err
	}
	m := &Model{ml: ml, v: v, pipe: -1}
	m.timer = ml.AioContext().NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, m.onTimer)
	m.armTimer()
	return m, nil
}

// StartChild runs a child process that writes a line every 20 ms; its pipe is an fd
// handler on io-handler, as a chardev in QEMU.
func (m *Model) StartChild() error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return err
	}
	w := os.NewFile(uintptr(p[1]), "child-stdout")
	m.child = exec.Command("sh", "-c", "while :; do echo tick; sleep 0.02; done")
	m.child.Stdout = w
	if err := m.child.Start(); err != nil {
		w.Close()
		unix.Close(p[0])
		return err
	}
	w.Close()
	m.pipe = p[0]
	return m.ml.SetFDHandler(m.pipe, m.onPipe, nil)
}

func (m *Model) onPipe() {
	var buf [4096]byte
	n, err := unix.Read(m.pipe, buf[:])
	if n <= 0 && err != unix.EAGAIN {
		m.ml.SetFDHandler(m.pipe, nil, nil) // the child is gone
		return
	}
	if n > 0 {
		m.fdEvents++
		m.fdBytes += int64(n)
		m.v.SetFDEvents(m.fdEvents, m.fdBytes)
	}
}

// StartJobs submits n blocking jobs to the thread pool; each completion, on the loop,
// moves the progress bar.
func (m *Model) StartJobs(n int, each time.Duration) {
	m.jobsTotal += n
	m.v.SetProgress(m.jobsDone, m.jobsTotal)
	for i := 0; i < n; i++ {
		m.ml.AioContext().Submit(func() error {
			time.Sleep(each) // blocking work, off the loop
			return nil
		}, func(error) {
			m.jobsDone++
			m.v.SetProgress(m.jobsDone, m.jobsTotal)
		})
	}
}

// Flood schedules n oneshot BHs from 4 goroutines and reports the throughput when the
// last one has run. The window stays responsive: BH passes interleave with GTK events.
func (m *Model) Flood(n int) {
	if m.flooding {
		return
	}
	m.flooding, m.floodRan = true, 0
	m.v.SetFlood(fmt.Sprintf("flooding %d BHs...", n))
	ctx := m.ml.AioContext()
	start := time.Now()
	done := func() {
		m.floodRan++
		if m.floodRan == n {
			el := time.Since(start)
			m.flooding = false
			m.floodDone, m.floodTook = n, el
			m.v.SetFlood(fmt.Sprintf("%d BHs in %v: %.1f M BHs/s", n, el.Round(time.Millisecond), float64(n)/el.Seconds()/1e6))
		}
	}
	per := n / 4
	for g := 0; g < 4; g++ {
		k := per
		if g == 3 {
			k = n - 3*per
		}
		go func() {
			for i := 0; i < k; i++ {
				ctx.ScheduleOneshot(done)
			}
		}()
	}
}

// LastFlood returns the size of the last flood that finished and how long it took;
// n is 0 while none has finished. Call it on the loop thread.
func (m *Model) LastFlood() (n int, took time.Duration) { return m.floodDone, m.floodTook }

func (m *Model) armTimer() {
	m.expire = aiosource.ClockNS(aiosource.ClockRealtime) + int64(timerPeriod)
	m.timer.ModNS(m.expire)
}

// onTimer measures how late the 16 ms timer runs and shows p50 and max of the last
// 60 expiries.
func (m *Model) onTimer() {
	late := time.Duration(aiosource.ClockNS(aiosource.ClockRealtime) - m.expire)
	m.samples = append(m.samples, late)
	if len(m.samples) > 60 {
		m.samples = m.samples[1:]
	}
	s := slices.Clone(m.samples)
	slices.Sort(s)
	m.v.SetLateness(fmt.Sprintf("16 ms AIO timer lateness: p50 %v, max %v", s[len(s)/2].Round(time.Microsecond), s[len(s)-1].Round(time.Microsecond)))
	m.armTimer()
}

// Checksum hashes the file at path with SHA-256 in a coroutine on the loop thread,
// written top to bottom: each 1 MiB chunk is read and hashed on the thread pool
// (Task.Await), and between chunks the Task, back on the GTK thread, shows its progress
// and lets the window breathe for a frame. CancelChecksum, or a new Checksum, stops it
// at its next wait. Written the other way, each step would be a goroutine's closure
// handed to glib.IdleAdd.
func (m *Model) Checksum(path string) *coroutine.Task {
	m.CancelChecksum()
	ctx, cancel := context.WithCancel(context.Background())
	m.cancelChecksum = cancel
	m.checksum = coroutine.Go(ctx, m.ml.AioContext(), func(tk *coroutine.Task) error {
		err := m.hashFile(tk, path)
		if errors.Is(err, context.Canceled) {
			m.v.SetChecksum("sha256: cancelled")
		} else if err != nil {
			m.v.SetChecksum("sha256: " + err.Error())
		}
		return err
	})
	return m.checksum
}

func (m *Model) hashFile(tk *coroutine.Task, path string) error {
	var f *os.File
	var size int64
	if err := tk.Await(func() (err error) {
		if f, err = os.Open(path); err == nil {
			var fi os.FileInfo
			if fi, err = f.Stat(); err == nil {
				size = fi.Size()
			}
		}
		return err
	}); err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var done int64
	for {
		var n int
		err := tk.Await(func() (err error) { // the blocking part, off the GTK thread
			n, err = io.ReadFull(f, buf)
			h.Write(buf[:n])
			return err
		})
		done += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
		m.v.SetChecksum(fmt.Sprintf("sha256: %d%% of %d bytes", percent(done, size), size))
		if err := tk.Sleep(timerPeriod); err != nil { // one frame for the window
			return err
		}
	}
	m.v.SetChecksum(fmt.Sprintf("sha256: %x (%d bytes)", h.Sum(nil), done))
	return nil
}

func percent(done, size int64) int64 {
	if size == 0 {
		return 100
	}
	return 100 * done / size
}

// Stop cancels a running Checksum and calls then on the loop thread once its Task has
// returned. Call it while the loop still runs (before gtk.MainQuit): a Task resumes
// only at the callback level it began at, gtk.Main's dispatch, so once gtk.Main has
// returned it can no longer finish.
func (m *Model) Stop(then func()) {
	t := m.checksum
	m.CancelChecksum()
	if t == nil {
		then()
		return
	}
	coroutine.Go(context.Background(), m.ml.AioContext(), func(tk *coroutine.Task) error {
		_, _, err := coroutine.Recv(tk, t.Done()) // closed when the checksum Task returns
		then()
		return err
	})
}

// CancelChecksum stops a running Checksum at its next wait.
func (m *Model) CancelChecksum() {
	if m.cancelChecksum != nil {
		m.cancelChecksum()
		m.cancelChecksum = nil
	}
}

// Close stops the child and closes the contexts; it reports anything left alive.
func (m *Model) Close() error {
	m.CancelChecksum()
	if m.checksum != nil { // let a cancelled Task return (Stop is the way under gtk.Main)
		timeout := time.After(5 * time.Second)
	wait:
		for {
			select {
			case <-m.checksum.Done():
				break wait
			case <-timeout:
				break wait
			default:
				m.ml.MainContext().Iteration(true)
			}
		}
	}
	m.timer.Del()
	if m.child != nil {
		m.child.Process.Kill()
		m.child.Wait()
		m.ml.SetFDHandler(m.pipe, nil, nil)
		unix.Close(m.pipe)
	}
	return m.ml.Close()
}
