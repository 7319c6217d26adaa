package main

import (
	"encoding/binary"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
)

// signalPipe delivers SIGINT and SIGTERM to an fd handler on the iohandler context, as
// QEMU's main loop does with a signalfd. A real signalfd cannot work in a Go program:
// the runtime unblocks SIGINT and SIGTERM on every thread it starts, so the signals
// would reach its handler and never the signalfd. This is QEMU's own fallback instead
// (qemu_signalfd_compat): signals arrive elsewhere and are written into a pipe as
// 128-byte struct signalfd_siginfo records, which the handler reads exactly as it would
// read a signalfd.
type signalPipe struct {
	ctx      *aiosource.Context
	r, w     int
	ch       chan os.Signal
	done     chan struct{}
	finished chan struct{}
}

const siginfoSize = 128 // sizeof(struct signalfd_siginfo)

func newSignalPipe(ctx *aiosource.Context, handle func(syscall.Signal)) (*signalPipe, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	sp := &signalPipe{ctx: ctx, r: p[0], w: p[1], ch: make(chan os.Signal, 4), done: make(chan struct{}), finished: make(chan struct{})}
	if err := ctx.SetFDHandler(sp.r, aiosource.FDHandler{Read: func() {
		var rec [siginfoSize]byte
		for {
			n, _ := unix.Read(sp.r, rec[:])
			if n != siginfoSize {
				return
			}
			handle(syscall.Signal(binary.LittleEndian.Uint32(rec[0:4]))) // ssi_signo
		}
	}}); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, err
	}
	signal.Notify(sp.ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		defer close(sp.finished)
		for {
			select {
			case sig := <-sp.ch:
				var rec [siginfoSize]byte
				binary.LittleEndian.PutUint32(rec[0:4], uint32(sig.(syscall.Signal)))
				binary.LittleEndian.PutUint32(rec[12:16], uint32(os.Getpid())) // ssi_pid
				unix.Write(sp.w, rec[:])
			case <-sp.done:
				return
			}
		}
	}()
	return sp, nil
}

func (sp *signalPipe) close() {
	signal.Stop(sp.ch)
	close(sp.done)
	<-sp.finished
	sp.ctx.SetFDHandler(sp.r, aiosource.FDHandler{})
	unix.Close(sp.r)
	unix.Close(sp.w)
}
