package benchsuite

import (
	"fmt"
	"runtime"
	"time"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/cshim"
	"github.com/glibaio/glibaio/internal/cbaseline"
	"github.com/glibaio/glibaio/internal/watch"
)

// DefaultSlackNS is the kernel's default timer slack (init_task's timer_slack_ns): the
// slack of a thread nobody set it on, so the slack under which Poll waited before it
// set 1 ns itself.
const DefaultSlackNS = 50000

// PollTimerLateness re-arms a period timer rounds times on an AioContext driven by
// Poll(true) on a locked OS thread, with no fds (its poll backend, whose waits end on the
// context's timerfd, polled from Go), and returns how late each expiry ran.
//
// The thread starts as one glibaio never touched: the kernel's default slack, not yet
// set by glibaio, so Poll sets 1 ns itself before its first wait, as it does on any
// thread. With defaultSlack the slack is pinned at DefaultSlackNS instead, which Poll
// leaves alone: the waits of Poll before it set the slack. Either way the thread is left
// undecided, so a later wait on it sets 1 ns. A timerfd expiry gets no slack, so the two
// measure the same since Poll waits on one.
func PollTimerLateness(period time.Duration, rounds int, defaultSlack bool) ([]time.Duration, error) {
	return pollTimerLateness(period, rounds, defaultSlack, nil)
}

// pollTimerLateness is PollTimerLateness; the tests' inTimer runs in each timer
// callback, on the loop thread.
func pollTimerLateness(period time.Duration, rounds int, defaultSlack bool, inTimer func()) ([]time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cshim.SetTimerSlack(DefaultSlackNS); err != nil {
		return nil, err
	}
	defer cshim.ForgetTimerSlack()
	if !defaultSlack {
		cshim.ForgetTimerSlack()
	}
	c, err := aiosource.New()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	out := make([]time.Duration, 0, rounds)
	var expire int64
	t := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() {
		out = append(out, time.Duration(aiosource.ClockNS(aiosource.ClockRealtime)-expire))
		if inTimer != nil {
			inTimer()
		}
	})
	defer t.Del()
	for len(out) < rounds {
		n := len(out)
		expire = aiosource.ClockNS(aiosource.ClockRealtime) + int64(period)
		t.ModNS(expire)
		for len(out) == n {
			c.Poll(true)
		}
	}
	return out, nil
}

// BareTimerLateness runs a bare C timer wait (cbaseline.TimerBareFD or TimerBarePPoll)
// rounds times on a locked OS thread whose timer slack is 1 ns, as the thread of
// PollTimerLateness has: the floor that Poll(true) is compared with.
func BareTimerLateness(mode int, period time.Duration, rounds int) ([]time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cshim.SetTimerSlack(1); err != nil {
		return nil, err
	}
	return cbaseline.TimerLateness(nil, mode, period, rounds)
}

// CgoPPollLateness waits rounds times from Go, on a locked OS thread with slack 1 ns,
// for a ppoll timeout in C (cbaseline.PPollUntil) period from now, and returns how late
// Go saw each one end: the floor of any Go loop whose wait ends on a ppoll timeout in C,
// the bare ppoll plus the runtime's return from cgo. Poll no longer waits that way (it
// waits on a timerfd, from Go), so this is no longer its floor: it shows what the
// timerfd and the wait from Go saved.
func CgoPPollLateness(period time.Duration, rounds int) ([]time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cshim.SetTimerSlack(1); err != nil {
		return nil, err
	}
	fds, err := eventfds(1)
	if err != nil {
		return nil, err
	}
	defer closeAll(fds)
	out := make([]time.Duration, rounds)
	for i := range out {
		expire := watch.Nanotime() + int64(period)
		if err := cbaseline.PPollUntil(fds[0], expire); err != nil {
			return nil, err
		}
		out[i] = time.Duration(watch.Nanotime() - expire)
	}
	return out, nil
}

// pollTimerRows measures a 1.5 ms AIO timer under Poll(true) against its floor, a bare
// timerfd wait, both on threads with slack 1 ns, in rotating chunks together with Poll
// under the kernel's default slack (what the slack buys: nothing since Poll waits on a
// timerfd), the peer, a bare ppoll timeout (QEMU's aio_poll waits so, in qemu_poll_ns),
// and the same ppoll timed from Go (the floor of a Go loop that waits for it in C), so
// drift in the VM's wakeup latency hits all five alike. Each reports the percentiles of
// all its chunks' expiries together.
func pollTimerRows(cfg Config) ([]Row, error) {
	rounds := 2000
	if cfg.Quick {
		rounds = 300
	}
	period := 1500 * time.Microsecond
	var ours, unslacked, tfd, pp, cgo []time.Duration
	runs := []func(n int) error{
		func(n int) error {
			d, err := PollTimerLateness(period, n, false)
			ours = append(ours, d...)
			return err
		},
		func(n int) error {
			d, err := PollTimerLateness(period, n, true)
			unslacked = append(unslacked, d...)
			return err
		},
		func(n int) error {
			d, err := BareTimerLateness(cbaseline.TimerBareFD, period, n)
			tfd = append(tfd, d...)
			return err
		},
		func(n int) error {
			d, err := BareTimerLateness(cbaseline.TimerBarePPoll, period, n)
			pp = append(pp, d...)
			return err
		},
		func(n int) error {
			d, err := CgoPPollLateness(period, n)
			cgo = append(cgo, d...)
			return err
		},
	}
	// 20 short chunks each (0.15 s at full size), rotating which runs first: the VM's
	// wakeup latency drifts within seconds on a shared machine.
	const chunks = 20
	for k := 0; k < chunks; k++ {
		for i := range runs {
			if err := runs[(i+k)%len(runs)](max(rounds/chunks, 1)); err != nil {
				return nil, err
			}
		}
	}
	var rows []Row
	for _, q := range []struct {
		p      float64
		target float64
	}{{50, 1.15}, {99, 1.5}} {
		o, f, b := lateUS(ours, q.p), lateUS(tfd, q.p), lateUS(pp, q.p)
		rows = append(rows, Row{
			Name: fmt.Sprintf("1.5 ms AIO timer under Poll(true), lateness p%.0f (slack 1 ns)", q.p), Unit: "µs", OursNS: o,
			Floor: "bare timerfd wait, thread slack 1 ns", FloorNS: f, FloorRatio: o / f, FloorMax: q.target,
			Baseline: "bare ppoll timeout in C (QEMU's qemu_poll_ns), thread slack 1 ns", BaselineNS: b, Ratio: o / b,
			Notes: []Note{
				{Name: "Poll with the default 50 µs slack", Value: lateUS(unslacked, q.p), Unit: "µs"},
				{Name: "the ppoll timed from Go", Value: lateUS(cgo, q.p), Unit: "µs"},
			},
		})
	}
	return rows, nil
}

// lateUS returns the p-th percentile of d in µs.
func lateUS(d []time.Duration, p float64) float64 {
	v := make([]float64, len(d))
	for i, x := range d {
		v[i] = float64(x) / 1e3
	}
	return Percentile(v, p)
}
