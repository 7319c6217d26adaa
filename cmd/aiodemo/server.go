package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/cshim"
	"github.com/glibaio/glibaio/glibloop"
)

// serverConfig is what `aiodemo serve` takes.
type serverConfig struct {
	Socket        string        // unix socket path ("" for none)
	TCP           string        // host:port to listen on as well ("" for none)
	StatsInterval time.Duration // the GLib timeout that logs statistics (0: off)
	Stall         time.Duration // report callbacks that run longer than this (0: off)
	MaxClients    int
	Log           *slog.Logger
	Ready         chan<- struct{} // closed once the sockets listen (for the demo and tests)
}

// Output back-pressure: while a client's buffered output is above this, the server
// stops reading its requests; TICK events for it are dropped and counted.
const outHighWater = 1 << 20

// maxQueued bounds the requests a client may queue behind a command in flight before
// the server stops reading from it.
const maxQueued = 64

// server is the monitor: listeners and clients are fd handlers on the iohandler
// context, as QEMU's chardevs are; timers and the thread pool live on the main
// AioContext; a plain GLib timeout on the same GMainContext logs statistics.
type server struct {
	cfg     serverConfig
	log     *slog.Logger
	mc      *glibloop.MainContext
	ml      *aiosource.MainLoop
	aio     *aiosource.Context
	ioh     *aiosource.Context
	start   time.Time
	lfds    []int
	sockID  socketID // the socket file this server bound (removed at shutdown if still ours)
	clients map[int]*client
	nextID  int
	sig     *signalPipe
	statsID uint
	rbuf    []byte

	closing      bool
	deadline     *aiosource.Timer
	drainExpired bool // the shutdown closed the clients that did not drain in time
	tasks        int  // coroutine Tasks that have not returned

	fdl acceptLimit // accept at the fd limit (accept.go)

	requests, errors, events, dropped, accepted uint64
}

type client struct {
	s          *server
	fd, id     int
	parser     *jsonMessageParser // the request stream (monitor_qmp_read's JSONMessageParser)
	pending    []byte             // bytes read but not yet fed: the queue was full
	queue      []qmpMessage       // requests waiting behind a command in flight
	busy       bool               // a command's reply is still to come: replies keep request order
	sleep      *aiosource.Timer
	out        []byte
	writing    bool // the write handler is installed
	readOff    bool // reading paused for back-pressure
	negotiated bool
	tick       *aiosource.Timer
	tickEvery  time.Duration
	tickSeq    int64
	eof        bool // the client shut down its writing side: finish its requests, then close
	gone       bool
	cancelTask context.CancelFunc // cancels the coroutine of the command in flight, if any
}

// serve runs the monitor until quit, SIGINT/SIGTERM or ctx ends, then shuts down
// cleanly: listeners close, clients are flushed and closed, and both AioContexts close
// with nothing left alive (any leak Close reports is returned as an error).
func serve(ctx context.Context, cfg serverConfig) error {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = 4096
	}
	s := &server{cfg: cfg, log: cfg.Log, start: time.Now(), clients: map[int]*client{}, rbuf: make([]byte, 64<<10)}
	s.mc = glibloop.NewMainContext()
	defer s.mc.Unref()
	ml, err := aiosource.NewMainLoop(s.mc)
	if err != nil {
		return err
	}
	s.ml, s.aio, s.ioh = ml, ml.AioContext(), ml.IOHandler()
	s.fdl.init(s)

	if err := s.listen(); err != nil {
		s.closeListeners()
		s.fdl.close()
		ml.Close()
		return err
	}
	if s.sig, err = newSignalPipe(s.ioh, s.onSignal); err != nil {
		s.closeListeners()
		s.fdl.close()
		ml.Close()
		return err
	}
	if cfg.StatsInterval > 0 {
		s.statsID = glibloop.TimeoutAdd(s.mc, cfg.StatsInterval, func() bool { s.logStats(); return true })
	}
	if cfg.Stall > 0 {
		glibloop.SetStallWatchdog(cfg.Stall, func(st glibloop.Stall) {
			s.log.Warn("aiodemo: stalled callback", "kind", st.Kind, "name", st.Name,
				"running_for", st.Duration.Round(time.Microsecond).String(), "stack", string(st.Stack))
		})
		defer glibloop.SetStallWatchdog(0, nil)
	}
	if cfg.Ready != nil {
		close(cfg.Ready)
	}
	s.log.Info("aiodemo: listening", "socket", cfg.Socket, "tcp", cfg.TCP)

	runErr := ml.Run(ctx)
	if runErr != nil && !errors.Is(runErr, context.Canceled) && !errors.Is(runErr, context.DeadlineExceeded) {
		return runErr
	}
	return s.teardown()
}

// listen opens the optional TCP socket, then the unix socket (mode 0600): once the unix
// socket accepts connections, everything listens.
func (s *server) listen() error {
	if s.cfg.TCP != "" {
		ap, err := parseTCP(s.cfg.TCP)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		s.lfds = append(s.lfds, fd)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
			return fmt.Errorf("bind %s: %w", ap, err)
		}
		if err := unix.Listen(fd, 1024); err != nil {
			return err
		}
		if err := s.ioh.SetFDHandler(fd, aiosource.FDHandler{Read: func() { s.accept(fd) }}); err != nil {
			return err
		}
	}
	if s.cfg.Socket != "" {
		fd, id, err := bindUnixSocket(s.cfg.Socket)
		if err != nil {
			return err
		}
		s.lfds = append(s.lfds, fd)
		s.sockID = id
		if err := s.ioh.SetFDHandler(fd, aiosource.FDHandler{Read: func() { s.accept(fd) }}); err != nil {
			return err
		}
	}
	if len(s.lfds) == 0 {
		return errors.New("nothing to listen on: give --socket or --tcp")
	}
	return nil
}

// parseTCP accepts "HOST:PORT" or ":PORT"/"PORT" (loopback: 127.0.0.1). Only IPv4.
func parseTCP(addr string) (netip.AddrPort, error) {
	if !strings.Contains(addr, ":") {
		addr = ":" + addr
	}
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return netip.AddrPort{}, fmt.Errorf("--tcp %q: want IPv4 HOST:PORT", addr)
	}
	return ap, nil
}

// accept takes the pending connections of a listener and greets each (qmp_greeting).
// When accept fails for want of fds or memory, the listener leaves the loop for a
// while (acceptLimit.pause) rather than spin on a socket that stays readable.
func (s *server) accept(lfd int) {
	for {
		fd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			switch {
			case errors.Is(err, unix.EAGAIN):
				s.fdl.drained()
			case errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
			default:
				s.fdl.pause(lfd, err)
			}
			return
		}
		if s.closing || len(s.clients) >= s.cfg.MaxClients {
			unix.Close(fd)
			continue
		}
		s.nextID++
		s.accepted++
		c := &client{s: s, fd: fd, id: s.nextID}
		c.parser = newJSONMessageParser(maxRequest, c.onMessage)
		s.clients[fd] = c
		c.send(greeting())
		c.updateHandler()
	}
}

// updateHandler installs the fd handler the client's state calls for: read unless
// paused, write only while output is buffered.
func (c *client) updateHandler() {
	if c.gone {
		return
	}
	var h aiosource.FDHandler
	if !c.readOff {
		h.Read = c.onReadable
	}
	if len(c.out) > 0 {
		h.Write = c.onWritable
	}
	c.writing = h.Write != nil
	if h.Read == nil && h.Write == nil {
		// Paused with nothing to write: the client waits, unwatched, until its command in
		// flight completes and reading resumes.
		c.s.ioh.SetFDHandler(c.fd, aiosource.FDHandler{})
		return
	}
	if err := c.s.ioh.SetFDHandler(c.fd, h); err != nil {
		c.s.log.Warn("aiodemo: client handler", "client", c.id, "err", err)
		c.close()
	}
}

func (c *client) onReadable() {
	n, err := unix.Read(c.fd, c.s.rbuf)
	if err != nil {
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			c.close() // a reset: the client went away
		}
		return
	}
	if n == 0 {
		// End of requests. The replies to the ones already read still go out (a client
		// may half-close after its last request); then the connection closes. A request
		// left incomplete is dropped, as QEMU's monitor drops its parser's state.
		c.eof = true
		c.readOff = true
		c.updateHandler()
		c.maybeDone()
		return
	}
	c.feed(c.s.rbuf[:n])
	c.backPressure()
}

// feed runs bytes through the client's stream parser; whatever the parser did not take
// (the queue filled up) waits in pending, and reading stays off until it is fed.
func (c *client) feed(data []byte) {
	n := c.parser.feed(data)
	if c.gone {
		return
	}
	if n < len(data) {
		c.pending = append(c.pending, data[n:]...)
	}
}

// onMessage is the parser's emit callback (handle_qmp_command): each message runs now
// or queues behind the command in flight.
func (c *client) onMessage(v any, perr *qmpError, _ []byte) {
	var m qmpMessage
	if perr != nil {
		m.err = perr
	} else {
		m = checkRequest(v)
	}
	c.enqueue(m)
	if c.gone || len(c.queue) >= maxQueued {
		c.parser.pause = true
	}
}

// enqueue runs a message now, or queues it behind the command in flight.
func (c *client) enqueue(m qmpMessage) {
	if c.busy || len(c.queue) > 0 {
		c.queue = append(c.queue, m)
		return
	}
	c.handleMessage(m)
}

// backPressure pauses reading while too much is queued or buffered, and resumes it.
func (c *client) backPressure() {
	if c.gone {
		return
	}
	pause := c.eof || len(c.pending) > 0 || len(c.queue) >= maxQueued || len(c.out) >= outHighWater
	if pause != c.readOff {
		c.readOff = pause
		c.updateHandler()
	}
}

// drainQueue runs queued requests until one goes asynchronous, then feeds the bytes
// that waited for room in the queue.
func (c *client) drainQueue() {
	for !c.gone {
		for !c.busy && len(c.queue) > 0 && !c.gone {
			m := c.queue[0]
			c.queue[0] = qmpMessage{}
			c.queue = c.queue[1:]
			c.handleMessage(m)
		}
		if c.busy || c.gone || len(c.pending) == 0 || len(c.queue) >= maxQueued {
			break
		}
		data := c.pending
		c.pending = nil
		c.feed(data)
	}
	c.backPressure()
	c.maybeDone()
}

// maybeDone closes a client that half-closed once everything it asked for is answered
// and flushed.
func (c *client) maybeDone() {
	if c.eof && !c.gone && !c.busy && len(c.queue) == 0 && len(c.pending) == 0 && len(c.out) == 0 {
		c.close()
	}
}

// handleMessage answers a message the parser or checkRequest refused, or dispatches
// the request.
func (c *client) handleMessage(m qmpMessage) {
	c.s.requests++
	if m.err != nil {
		r := &response{Error: m.err}
		if m.req != nil {
			r.ID, r.HasID = m.req.ID, m.req.HasID
		}
		c.reply(r)
		return
	}
	c.s.dispatch(c, m.req)
}

// callbackTable lists a context's callbacks that ran, the longest first, for
// query-callbacks: what a stall hunt looks at.
func callbackTable(c *aiosource.Context) []map[string]any {
	out := []map[string]any{}
	for _, cs := range c.CallbackStats() {
		if cs.Count == 0 {
			continue
		}
		out = append(out, map[string]any{
			"kind": cs.Kind, "name": cs.Name, "count": cs.Count,
			"mean_us": cs.Mean().Microseconds(), "max_us": cs.Max.Microseconds(),
		})
		if len(out) == 8 {
			break
		}
	}
	return out
}

func (s *server) status() map[string]any {
	aio, ioh := s.aio.Stats(), s.ioh.Stats()
	return map[string]any{
		"status":    "running",
		"running":   true,
		"uptime_ms": time.Since(s.start).Milliseconds(),
		"clients":   len(s.clients),
		"loop": map[string]uint64{
			"aio_dispatches":  aio.Dispatches,
			"bhs":             aio.BHs,
			"timers":          aio.Timers,
			"fd_handlers":     ioh.Handlers,
			"ioh_dispatches":  ioh.Dispatches,
			"eventfd_wakeups": aio.Kicks + ioh.Kicks,
		},
		"requests": s.requests,
		"errors":   s.errors,
		"events":   s.events,
		"process": map[string]int64{
			"goroutines":  int64(runtime.NumGoroutine()),
			"cgo_handles": cshim.LiveHandles(),
			"rss_kb":      rssKB(),
		},
	}
}

// rssKB reads the resident set size from /proc (0 if unavailable).
func rssKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb
		}
	}
	return 0
}

// subscribe starts, changes or (every == 0) stops the client's TICK events, which an
// AIO timer on the main context produces.
func (c *client) subscribe(every time.Duration) {
	if c.tick != nil {
		c.tick.Del()
		c.tick = nil
	}
	c.tickEvery = every
	if every == 0 {
		return
	}
	c.tick = c.s.aio.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() {
		c.tickSeq++
		c.event("TICK", map[string]int64{"seq": c.tickSeq, "interval_ms": c.tickEvery.Milliseconds()})
		c.tick.ModNS(aiosource.ClockNS(aiosource.ClockRealtime) + int64(c.tickEvery))
	})
	c.tick.ModNS(aiosource.ClockNS(aiosource.ClockRealtime) + int64(every))
}

func (c *client) reply(r *response) {
	if r.Error != nil {
		c.s.errors++
	}
	c.send(r)
}

func (c *client) event(name string, data any) {
	if len(c.out) >= outHighWater {
		c.s.dropped++ // a client that does not read loses events, never replies
		return
	}
	c.s.events++
	c.send(&event{Event: name, Data: data, Timestamp: now()})
}

// send buffers one JSON object, and a newline, and makes sure the write handler is
// installed.
func (c *client) send(v any) {
	if c.gone {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(&response{Error: genericError("internal error: %v", err)})
	}
	c.out = append(c.out, b...)
	c.out = append(c.out, '\n')
	if !c.writing {
		c.updateHandler()
	}
}

func (c *client) onWritable() {
	for len(c.out) > 0 {
		n, err := unix.SendmsgN(c.fd, c.out, nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				return
			}
			c.close() // EPIPE, ECONNRESET: gone in the middle of a reply
			return
		}
		c.out = c.out[n:]
	}
	c.out = nil // drop the big array once flushed
	c.updateHandler()
	c.backPressure()
	c.maybeDone()
	if c.s.closing {
		c.s.maybeFinish()
	}
}

// close forgets the client: its handler, fd, timers; replies still in flight are
// dropped when they complete.
func (c *client) close() {
	if c.gone {
		return
	}
	c.gone = true
	c.s.ioh.SetFDHandler(c.fd, aiosource.FDHandler{})
	unix.Close(c.fd)
	delete(c.s.clients, c.fd)
	c.s.fdl.fdFreed()
	if c.tick != nil {
		c.tick.Del()
		c.tick = nil
	}
	if c.sleep != nil {
		c.sleep.Del()
		c.sleep = nil
	}
	if c.cancelTask != nil {
		c.cancelTask()
		c.cancelTask = nil
	}
	c.queue, c.out, c.pending = nil, nil, nil
	if c.s.closing {
		c.s.maybeFinish()
	}
}

func (s *server) onSignal(sig syscall.Signal) {
	s.log.Info("aiodemo: signal", "signal", sig.String())
	s.shutdown("signal "+sig.String(), "host-signal")
}

// shutdown sends the SHUTDOWN event (qapi_event_send_shutdown) with QEMU's reason
// ("host-qmp-quit", "host-signal") to every client past negotiation, stops accepting
// and lets every client's output drain (up to 2 s), then ends the loop.
func (s *server) shutdown(why, reason string) {
	if s.closing {
		return
	}
	s.closing = true
	s.log.Info("aiodemo: shutting down", "reason", why)
	for _, c := range s.clients {
		if c.negotiated {
			s.events++ // never dropped, unlike TICK
			c.send(&event{Event: "SHUTDOWN", Data: map[string]any{"guest": false, "reason": reason}, Timestamp: now()})
		}
	}
	s.closeListeners()
	for _, c := range s.clients {
		if c.tick != nil {
			c.tick.Del()
			c.tick = nil
		}
		c.readOff = true
		c.updateHandler()
	}
	s.deadline = s.aio.NewTimer(aiosource.ClockRealtime, aiosource.ScaleMS, func() {
		if s.drainExpired {
			s.log.Warn("aiodemo: cancelled commands did not return in time", "tasks", s.tasks)
			s.ml.Quit()
			return
		}
		// Close the clients while the loop still runs: their cancelled Tasks must resume
		// at the callback level where they were entered, which Run's walks are; a loop
		// iterated after Run has returned would never run them.
		s.log.Warn("aiodemo: clients did not drain in time; closing them")
		s.drainExpired = true
		for _, c := range s.clients {
			c.close()
		}
		s.deadline.Mod(aiosource.ClockNS(aiosource.ClockRealtime)/aiosource.ScaleMS + 5000)
		s.maybeFinish()
	})
	s.deadline.Mod(aiosource.ClockNS(aiosource.ClockRealtime)/aiosource.ScaleMS + 2000)
	s.maybeFinish()
}

// maybeFinish ends the loop once every client flushed its output, no command is in
// flight and every coroutine Task has returned.
func (s *server) maybeFinish() {
	for _, c := range s.clients {
		if len(c.out) > 0 || c.busy {
			return
		}
	}
	if s.tasks > 0 {
		return
	}
	s.ml.Quit()
}

// taskDone counts a command's coroutine Task out; a shutdown may be waiting for it.
func (s *server) taskDone() {
	s.tasks--
	if s.closing && s.tasks == 0 {
		s.maybeFinish()
	}
}

// closeListeners stops accepting. The socket file goes first, while the listener is
// still open: a bound socket pins its inode, so a path with the same device and inode
// is this server's socket and not a newer file that reused a freed inode number.
func (s *server) closeListeners() {
	if s.cfg.Socket != "" && s.sockID != (socketID{}) {
		if ok, why := removeOwnSocket(s.cfg.Socket, s.sockID); !ok {
			s.log.Warn("aiodemo: socket left in place", "socket", s.cfg.Socket, "why", why)
		}
		s.sockID = socketID{}
	}
	for _, fd := range s.lfds {
		s.ioh.SetFDHandler(fd, aiosource.FDHandler{})
		unix.Close(fd)
	}
	s.lfds = nil
	s.fdl.forget()
}

// teardown runs after the loop ended: every client, timer, BH and source goes, and the
// contexts must close with nothing alive.
func (s *server) teardown() error {
	s.closing = true
	s.closeListeners()
	for _, c := range s.clients {
		c.close()
	}
	// The clients' cancelled Tasks return at their next wait. A shutdown lets them do so
	// before Run returns; when Run ended otherwise (its context), the Tasks of the run's
	// walks cannot resume here (see Callback levels in package aiosource), so this waits
	// at most a little, without blocking in the loop.
	for end := time.Now().Add(time.Second); s.tasks > 0 && time.Now().Before(end); {
		if !s.mc.Iteration(false) {
			time.Sleep(time.Millisecond)
		}
	}
	if s.deadline != nil {
		s.deadline.Del()
	}
	if s.statsID != 0 {
		s.mc.RemoveSource(s.statsID)
	}
	if s.sig != nil {
		s.sig.close()
	}
	s.fdl.close()
	s.logStats()
	if err := s.ml.Close(); err != nil {
		return fmt.Errorf("contexts closed with live work: %w", err)
	}
	return nil
}

func (s *server) logStats() {
	aio, ioh := s.aio.Stats(), s.ioh.Stats()
	s.log.Info("aiodemo: stats",
		"uptime", time.Since(s.start).Round(time.Millisecond).String(),
		"clients", len(s.clients), "accepted", s.accepted,
		"requests", s.requests, "errors", s.errors, "events", s.events, "dropped_events", s.dropped,
		"aio_dispatches", aio.Dispatches, "bhs", aio.BHs, "timers", aio.Timers,
		"ioh_dispatches", ioh.Dispatches, "fd_handlers", ioh.Handlers,
		"eventfd_wakeups", aio.Kicks+ioh.Kicks)
}
