package main

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
)

// Accepting at the fd limit. When accept(2) fails with EMFILE or ENFILE (or ENOBUFS,
// ENOMEM), the connection stays in the listener's backlog and the listening socket
// stays readable: a level-triggered loop that kept the listener would dispatch it
// again at once, for ever, and log every failure. QEMU's own listeners
// (qio_net_listener_channel_func) simply return and are called again. Here the
// listener leaves the loop instead: its fd handler is removed, and an AIO timer puts
// it back after a backoff that doubles from acceptBackoffMin to acceptBackoffMax.
// When the server closes one of its own fds (a client goes), a BH puts it back at
// once, so the clients waiting in the backlog are greeted as soon as an fd is free.
// The condition is logged when it starts, then at most once per acceptLogInterval
// with the number of failures since the last line, and once more when the backlog is
// empty again.
const (
	acceptBackoffMin  = 5 * time.Millisecond
	acceptBackoffMax  = 500 * time.Millisecond
	acceptLogInterval = 10 * time.Second
)

// acceptLimit is the server's state for accept failures (all on the loop thread).
type acceptLimit struct {
	s        *server
	paused   map[int]bool // listener fds whose handler is off the loop
	backoff  time.Duration
	timer    *aiosource.Timer // puts the listeners back after the backoff
	resume   *aiosource.BH    // puts them back when the server frees an fd
	since    time.Time        // when this episode began (zero: accept works)
	failures uint64           // failures in this episode
	unlogged uint64           // failures not yet counted in a log line
	lastLog  time.Time
}

func (l *acceptLimit) init(s *server) {
	l.s = s
	l.paused = map[int]bool{}
	l.backoff = acceptBackoffMin
	l.timer = s.aio.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, l.resumeAll)
	l.resume = s.aio.NewBH("accept-resume", l.resumeAll)
}

// pause takes the listener lfd off the loop after accept failed with err, and arms
// the timer that puts it back.
func (l *acceptLimit) pause(lfd int, err error) {
	if !l.paused[lfd] {
		l.s.ioh.SetFDHandler(lfd, aiosource.FDHandler{})
		l.paused[lfd] = true
	}
	l.failures++
	l.unlogged++
	now := time.Now()
	switch {
	case l.since.IsZero():
		l.since, l.lastLog, l.unlogged = now, now, 0
		l.s.log.Warn("aiodemo: accept failed; the listener leaves the loop and comes back after a backoff",
			"err", err, "clients", len(l.s.clients), "rlimit_nofile", rlimitNofile())
	case now.Sub(l.lastLog) >= acceptLogInterval:
		l.s.log.Warn("aiodemo: accept still failing", "err", err, "failures", l.unlogged,
			"for", now.Sub(l.since).Round(time.Millisecond).String(), "clients", len(l.s.clients))
		l.lastLog, l.unlogged = now, 0
	}
	if !l.timer.Pending() {
		l.timer.ModNS(aiosource.ClockNS(aiosource.ClockRealtime) + int64(l.backoff))
		l.backoff = min(2*l.backoff, acceptBackoffMax)
	}
}

// drained notes that accept found the backlog empty (EAGAIN): every waiting client
// got its fd, and an episode of failures, if any, is over. An accept that succeeds
// between two failures does not end it: at the limit, each fd that comes free lets one
// client in, and that is no reason for another log line.
func (l *acceptLimit) drained() {
	if l.since.IsZero() {
		return
	}
	l.s.log.Info("aiodemo: accept works again", "after", time.Since(l.since).Round(time.Millisecond).String(),
		"failures", l.failures)
	l.since, l.failures, l.unlogged = time.Time{}, 0, 0
	l.backoff = acceptBackoffMin
}

// fdFreed is called when the server closed one of its fds: paused listeners come
// back at once (from a BH, outside the caller's dispatch).
func (l *acceptLimit) fdFreed() {
	if len(l.paused) > 0 {
		l.resume.Schedule()
	}
}

// resumeAll puts the paused listeners back on the loop; the next accept tells whether
// the condition is over.
func (l *acceptLimit) resumeAll() {
	if l.s.closing {
		return
	}
	for lfd := range l.paused {
		delete(l.paused, lfd)
		if err := l.s.ioh.SetFDHandler(lfd, aiosource.FDHandler{Read: func() { l.s.accept(lfd) }}); err != nil {
			l.s.log.Warn("aiodemo: listener handler", "err", err)
		}
	}
}

// forget drops the paused listeners (they are being closed).
func (l *acceptLimit) forget() {
	clear(l.paused)
	if l.timer != nil {
		l.timer.Del()
	}
}

// close deletes the timer and the BH, before the contexts close.
func (l *acceptLimit) close() {
	if l.timer == nil {
		return
	}
	l.timer.Del()
	l.resume.Delete()
	l.timer, l.resume = nil, nil
}

// rlimitNofile returns the soft RLIMIT_NOFILE, for the log.
func rlimitNofile() uint64 {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) != nil {
		return 0
	}
	return rl.Cur
}
