package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/coroutine"
)

// The command table. A command is a name and a handler that gets a qmpCall; a command
// that answers later (from a timer, the thread pool, or a coroutine) takes the reply
// function from qmpCall.async, which holds the client's later requests back until it
// has answered, so replies keep request order, as QEMU's monitor does without
// out-of-band execution. Add a command by adding an entry to qmpCommandList.

// qmpCommand is one entry of the table (QEMU's QmpCommand, which qmp_register_command
// puts in qmp_commands).
type qmpCommand struct {
	name string
	fn   func(q *qmpCall)
}

// qmpCall is one command being run: the server, the client, the request and its
// arguments.
type qmpCall struct {
	s    *server
	c    *client
	req  *request
	args *args
}

// ret answers {"return": v}.
func (q *qmpCall) ret(v any) {
	q.c.reply(&response{Return: v, ID: q.req.ID, HasID: q.req.HasID})
}

// fail answers {"error": e}.
func (q *qmpCall) fail(e *qmpError) {
	q.c.reply(&response{Error: e, ID: q.req.ID, HasID: q.req.HasID})
}

// checked runs the argument checks: it answers the first error and reports false.
func (q *qmpCall) checked(errs ...*qmpError) bool {
	for _, e := range errs {
		if e != nil {
			q.fail(e)
			return false
		}
	}
	if e := q.args.done(); e != nil {
		q.fail(e)
		return false
	}
	return true
}

// goTask runs fn as the client's command in flight, a coroutine Task on the main
// AioContext: the client's going away cancels it (client.close), and a shutdown waits
// for it (server.taskDone).
func (q *qmpCall) goTask(fn func(tk *coroutine.Task) error) {
	ctx, cancel := context.WithCancel(context.Background())
	q.c.cancelTask = cancel
	q.s.tasks++
	coroutine.Go(ctx, q.s.aio, func(tk *coroutine.Task) error {
		defer func() { q.s.taskDone(); cancel() }()
		return fn(tk)
	})
}

// async marks the command as answered later and returns the function that answers it
// (a value, or an error when e is not nil) and lets the client's next requests run.
// Call that function once, on the loop thread. A client that went away meanwhile
// drops the answer.
func (q *qmpCall) async() func(v any, e *qmpError) {
	c := q.c
	c.busy = true
	return func(v any, e *qmpError) {
		c.busy = false
		if e != nil {
			q.fail(e)
		} else {
			q.ret(v)
		}
		c.drainQueue()
	}
}

// qmpCommandList is the table, in the order query-commands lists it.
var qmpCommandList = []qmpCommand{
	{"qmp_capabilities", cmdQMPCapabilities},
	{"query-version", func(q *qmpCall) {
		if q.checked() {
			q.ret(aiodemoVersion)
		}
	}},
	{"query-commands", cmdQueryCommands},
	{"query-status", func(q *qmpCall) {
		if q.checked() {
			q.ret(q.s.status())
		}
	}},
	{"echo", func(q *qmpCall) {
		data, e := q.args.any("data", true)
		if q.checked(e) {
			q.ret(map[string]any{"data": data})
		}
	}},
	{"sleep", cmdSleep},
	{"sha256", cmdSHA256},
	{"sha256-file", cmdSHA256File}, // hashfile.go
	{"subscribe", cmdSubscribe},
	{"query-callbacks", func(q *qmpCall) {
		if q.checked() {
			q.ret(map[string]any{"aio-context": callbackTable(q.s.aio), "io-handler": callbackTable(q.s.ioh)})
		}
	}},
	{"quit", func(q *qmpCall) {
		if q.checked() {
			// As in QEMU, the SHUTDOWN event goes out before quit's own reply.
			q.s.shutdown("quit command", "host-qmp-quit")
			q.ret(struct{}{})
		}
	}},
}

// qmpCommands finds a command by name (qmp_find_command), and qmpCommandNames lists
// them in table order; both are built from qmpCommandList.
var (
	qmpCommands     = map[string]*qmpCommand{}
	qmpCommandNames []string
)

func init() {
	for i := range qmpCommandList {
		qmpCommands[qmpCommandList[i].name] = &qmpCommandList[i]
		qmpCommandNames = append(qmpCommandNames, qmpCommandList[i].name)
	}
}

// dispatch runs a checked request: qmp_dispatch's command lookup, with the
// capabilities-negotiation mode of monitor_qmp_dispatch in front of it.
func (s *server) dispatch(c *client, req *request) {
	q := &qmpCall{s: s, c: c, req: req, args: newArgs(req.Args)}
	if !c.negotiated && req.Execute != "qmp_capabilities" {
		q.fail(&qmpError{Class: classCommandNotFound, Desc: "Expecting capabilities negotiation with 'qmp_capabilities'"})
		return
	}
	cmd := qmpCommands[req.Execute]
	if cmd == nil {
		q.fail(&qmpError{Class: classCommandNotFound, Desc: fmt.Sprintf("The command %s has not been found", req.Execute)})
		return
	}
	cmd.fn(q)
}

// cmdQMPCapabilities ends capabilities negotiation (qmp_qmp_capabilities). Its
// optional "enable" lists capabilities to turn on; aiodemo offers none, so "oob" is
// refused as QEMU refuses a capability its monitor did not offer (qmp_caps_accept).
func cmdQMPCapabilities(q *qmpCall) {
	enable, e := q.args.list("enable", false)
	if !q.checked(e) {
		return
	}
	for i, v := range enable {
		s, ok := v.(string)
		if !ok {
			q.fail(genericError("Invalid parameter type for 'enable[%d]', expected: string", i))
			return
		}
		if s != "oob" {
			q.fail(genericError("Parameter 'enable[%d]' does not accept value '%s'", i, s))
			return
		}
	}
	if q.c.negotiated {
		q.fail(&qmpError{Class: classCommandNotFound, Desc: "Capabilities negotiation is already complete, command ignored"})
		return
	}
	if len(enable) > 0 {
		q.fail(genericError("Capability oob not available"))
		return
	}
	q.c.negotiated = true
	q.ret(struct{}{})
}

// cmdQueryCommands lists the commands (qmp_query_commands): [{"name": ...}, ...].
func cmdQueryCommands(q *qmpCall) {
	if !q.checked() {
		return
	}
	type commandInfo struct {
		Name string `json:"name"`
	}
	out := make([]commandInfo, 0, len(qmpCommandNames))
	for _, name := range qmpCommandNames {
		out = append(out, commandInfo{Name: name})
	}
	q.ret(out)
}

// cmdSleep answers after ms milliseconds, from an AIO timer on the main context.
func cmdSleep(q *qmpCall) {
	ms, e := q.args.integer("ms", true, 0, 0, 60000)
	if !q.checked(e) {
		return
	}
	c := q.c
	answer := q.async()
	c.sleep = q.s.aio.NewTimer(aiosource.ClockRealtime, aiosource.ScaleMS, func() {
		c.sleep = nil
		answer(map[string]int64{"slept_ms": ms}, nil)
	})
	c.sleep.Mod(aiosource.ClockNS(aiosource.ClockRealtime)/aiosource.ScaleMS + ms)
}

// sha256Slice is how much cmdSHA256 hashes per trip to the thread pool.
const sha256Slice = 1 << 20

// cmdSHA256 hashes data repeated repeat times. It is a coroutine on the loop
// (coroutine.Task) that reads top to bottom: each slice of up to 1 MiB is hashed on the
// thread pool (Task.Await, QEMU's thread_pool_submit_co), and the answer is sent from
// the loop thread. A client that goes away cancels it at its next slice.
func cmdSHA256(q *qmpCall) {
	data, e1 := q.args.str("data", true)
	repeat, e2 := q.args.integer("repeat", false, 1, 1, maxHashBytes)
	if !q.checked(e1, e2) {
		return
	}
	if int64(len(data))*repeat > maxHashBytes {
		q.fail(genericError("sha256 input of %d bytes exceeds the limit of %d bytes", int64(len(data))*repeat, maxHashBytes))
		return
	}
	answer := q.async()
	c := q.c
	q.goTask(func(tk *coroutine.Task) error {
		h := sha256.New()
		b := []byte(data)
		perSlice := max(sha256Slice/max(int64(len(b)), 1), 1)
		for left := repeat; left > 0; left -= perSlice {
			n := min(left, perSlice)
			if err := tk.Await(func() error {
				for i := int64(0); i < n; i++ {
					h.Write(b)
				}
				return nil
			}); err != nil {
				if !c.gone {
					answer(nil, genericError("sha256: %v", err))
				}
				return err
			}
		}
		if !c.gone {
			answer(map[string]any{"sha256": hex.EncodeToString(h.Sum(nil)), "bytes": int64(len(data)) * repeat}, nil)
		}
		return nil
	})
}

// cmdSubscribe starts, changes or (0) stops the client's TICK events.
func cmdSubscribe(q *qmpCall) {
	ms, e := q.args.integer("interval_ms", true, 0, 0, 60000)
	if e == nil && ms != 0 && ms < 10 {
		e = genericError("Parameter 'interval_ms' expects 0 (stop) or a value between 10 and 60000")
	}
	if !q.checked(e) {
		return
	}
	q.c.subscribe(time.Duration(ms) * time.Millisecond)
	q.ret(struct{}{})
}
