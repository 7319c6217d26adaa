package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func cmdDemo(argv []string) error {
	dir, err := os.MkdirTemp("", "aiodemo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "aiodemo.sock")
	out := os.Stdout

	fmt.Fprintln(out, "aiodemo: a QEMU-monitor-style server on glibaio's AIO main loop")
	fmt.Fprintln(out, "  client sockets are fd handlers on the \"io-handler\" AioContext; sleep, subscribe and")
	fmt.Fprintln(out, "  shutdown use AIO timers on \"aio-context\"; sha256 runs on its thread pool; sha256-file reads")
	fmt.Fprintln(out, "  through its io_uring; a plain GLib timeout source on the same GMainContext logs statistics.")
	fmt.Fprintf(out, "  server socket: %s\n\n", socket)

	ready := make(chan struct{})
	served := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(prefixWriter{w: out, prefix: "  [server] "}, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	go func() {
		served <- serve(context.Background(), serverConfig{Socket: socket, StatsInterval: 250 * time.Millisecond,
			Stall: 250 * time.Millisecond, Log: logger, Ready: ready})
	}()
	select {
	case <-ready:
	case err := <-served:
		return fmt.Errorf("server did not start: %w", err)
	}

	if err := runScript(socket, out, true); err != nil {
		return err
	}
	select {
	case err := <-served:
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
	case <-time.After(10 * time.Second):
		return errors.New("server did not shut down after quit")
	}
	fmt.Fprintln(out, "\nThe server shut down cleanly: clients flushed, both AioContexts closed with nothing left alive.")
	fmt.Fprintf(out, `
Run it yourself:
  go run ./cmd/aiodemo serve &                   # listens on %s
  go run ./cmd/aiodemo client                    # then type: qmp_capabilities, query-status, sleep ms=500, ...
  go run ./cmd/aiodemo load --clients 100 --requests 200
`, defaultSocket())
	return nil
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			fmt.Fprint(p.w, p.prefix+line)
		}
	}
	return len(b), nil
}

// transcript prints what each client sends and receives.
type transcript struct {
	w       io.Writer
	narrate bool
}

func (t transcript) note(format string, args ...any) {
	if t.narrate {
		fmt.Fprintf(t.w, "\n# "+format+"\n", args...)
	}
}
func (t transcript) sent(who string, line []byte) { fmt.Fprintf(t.w, "%s -> %s\n", who, line) }
func (t transcript) got(who string, line []byte)  { fmt.Fprintf(t.w, "%s <- %s\n", who, line) }

// scriptConn is one scripted client.
type scriptConn struct {
	*monitorConn
	name string
	t    transcript
}

func (c *scriptConn) send(line string) error {
	c.t.sent(c.name, []byte(line))
	return c.sendLine([]byte(line))
}

// exchange sends a line and prints the events and the reply that follow.
func (c *scriptConn) exchange(line string) ([]byte, error) {
	if err := c.send(line); err != nil {
		return nil, err
	}
	reply, events, err := c.readReply()
	for _, e := range events {
		c.t.got(c.name, e)
	}
	if err != nil {
		return nil, err
	}
	c.t.got(c.name, reply)
	return reply, nil
}

// expect checks that a reply has the wanted kind ("return" or an error class).
func expect(reply []byte, want string) error {
	var r struct {
		Return json.RawMessage `json:"return"`
		Error  *qmpError       `json:"error"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return fmt.Errorf("bad reply %s", reply)
	}
	switch {
	case want == "return" && r.Return != nil:
		return nil
	case r.Error != nil && r.Error.Class == want:
		return nil
	}
	return fmt.Errorf("reply %s, want %s", reply, want)
}

// runScript drives a running server with a session that covers every command and
// every kind of bad input, printing the transcript. With narrate it explains each step.
func runScript(socket string, w io.Writer, narrate bool) error {
	t := transcript{w: w, narrate: narrate}
	connect := func(name string) (*scriptConn, error) {
		m, greeting, err := dial(socket, "")
		if err != nil {
			return nil, err
		}
		t.got(name, greeting)
		return &scriptConn{monitorConn: m, name: name, t: t}, nil
	}
	step := func(c *scriptConn, line, want string) error {
		reply, err := c.exchange(line)
		if err != nil {
			return err
		}
		return expect(reply, want)
	}
	// stepN sends a line that carries several requests and checks their replies.
	stepN := func(c *scriptConn, line string, wants ...string) error {
		if err := c.send(line); err != nil {
			return err
		}
		for _, want := range wants {
			reply, events, err := c.readReply()
			for _, e := range events {
				c.t.got(c.name, e)
			}
			if err != nil {
				return err
			}
			c.t.got(c.name, reply)
			if err := expect(reply, want); err != nil {
				return err
			}
		}
		return nil
	}

	t.note("client A connects and gets the greeting; commands need capabilities negotiation first")
	a, err := connect("A")
	if err != nil {
		return err
	}
	defer a.Close()
	for _, s := range []struct{ line, want string }{
		{`{"execute":"query-status"}`, "CommandNotFound"},
		{`{"execute":"qmp_capabilities"}`, "return"},
		{`{"execute":"query-version","id":"v"}`, "return"},
		{`{"execute":"query-commands","id":"c"}`, "return"},
		{`{"execute":"echo","arguments":{"data":{"hello":"world","n":[1,2,3]}},"id":1}`, "return"},
		{`{"execute":"query-status","id":2}`, "return"},
	} {
		if err := step(a, s.line, s.want); err != nil {
			return err
		}
	}

	t.note("A sleeps 300 ms (an AIO timer answers later); client B is not blocked meanwhile")
	b, err := connect("B")
	if err != nil {
		return err
	}
	defer b.Close()
	if err := step(b, `{"execute":"qmp_capabilities"}`, "return"); err != nil {
		return err
	}
	start := time.Now()
	if err := a.send(`{"execute":"sleep","arguments":{"ms":300},"id":3}`); err != nil {
		return err
	}
	if err := step(b, `{"execute":"echo","arguments":{"data":"B is not blocked"},"id":"b1"}`, "return"); err != nil {
		return err
	}
	bTook := time.Since(start)
	reply, _, err := a.readReply()
	if err != nil {
		return err
	}
	a.t.got("A", reply)
	if err := expect(reply, "return"); err != nil {
		return err
	}
	t.note("B's echo took %v while A's sleep took %v", bTook.Round(time.Microsecond), time.Since(start).Round(time.Millisecond))

	t.note("sha256 of 3,000,000 bytes: a coroutine awaits the thread pool; the answer comes from the loop")
	if err := step(a, `{"execute":"sha256","arguments":{"data":"abc","repeat":1000000},"id":4}`, "return"); err != nil {
		return err
	}
	if err := step(a, `{"execute":"sha256","arguments":{"data":"abc","repeat":30000000},"id":5}`, "GenericError"); err != nil {
		return err
	}

	if err := hashFileSteps(t, a, filepath.Join(filepath.Dir(socket), "files"), step); err != nil {
		return err
	}

	t.note("subscribe: TICK events every 100 ms from an AIO timer, then stop them")
	if err := step(a, `{"execute":"subscribe","arguments":{"interval_ms":100},"id":6}`, "return"); err != nil {
		return err
	}
	for i := 0; i < 3; i++ {
		line, err := a.readMessage()
		if err != nil {
			return err
		}
		a.t.got("A", line)
	}
	if err := step(a, `{"execute":"subscribe","arguments":{"interval_ms":0},"id":7}`, "return"); err != nil {
		return err
	}

	t.note("QMP is a JSON stream: two requests on one line, one request over two lines")
	if err := stepN(a, `{"execute":"echo","arguments":{"data":"one"},"id":"s1"}{"execute":"echo","arguments":{"data":"two"},"id":"s2"}`, "return", "return"); err != nil {
		return err
	}
	if err := a.send(`{"execute": "echo",`); err != nil {
		return err
	}
	if err := step(a, `  "arguments": {"data": "split"}, "id": "s3"}`, "return"); err != nil {
		return err
	}

	t.note("bad input gets QEMU's errors, and the parser recovers as QEMU's json-streamer does")
	if err := stepN(a, `{"execute":"echo","arguments":{"data":"ok"},"id":"s4"}}`, "return", "GenericError"); err != nil {
		return err
	}
	if err := stepN(a, `XYZ {"execute":"echo","arguments":{"data":"after garbage"},"id":"s5"}`, "GenericError", "return"); err != nil {
		return err
	}
	for _, s := range []struct{ line, want string }{
		{`["not","an","object"]`, "GenericError"},
		{`{"execute":"frobnicate","id":8}`, "CommandNotFound"},
		{`{"execute":"sleep","id":9}`, "GenericError"},
		{`{"execute":"sleep","arguments":{"ms":"soon"},"id":10}`, "GenericError"},
		{`{"execute":"echo","arguments":{"data":1,"extra":2},"id":11}`, "GenericError"},
		{`{"execute":"echo","arguments":{"data":1},"bogus":true}`, "GenericError"},
	} {
		if err := step(a, s.line, s.want); err != nil {
			return err
		}
	}
	long := `{"execute":"echo","arguments":{"data":"` + strings.Repeat("x", 70<<10) + `"}}`
	t.sent("A", []byte(fmt.Sprintf("(a %d-byte request)", len(long))))
	if err := a.sendLine([]byte(long)); err != nil {
		return err
	}
	reply, _, err = a.readReply()
	if err != nil {
		return err
	}
	a.t.got("A", reply)
	if err := expect(reply, "GenericError"); err != nil {
		return err
	}
	if err := step(a, `{"execute":"echo","arguments":{"data":"still here"},"id":12}`, "return"); err != nil {
		return err
	}

	t.note("client C disconnects in the middle of a reply; the server carries on")
	c, err := connect("C")
	if err != nil {
		return err
	}
	c.sendLine([]byte(`{"execute":"qmp_capabilities"}`))
	c.sendLine([]byte(`{"execute":"sha256","arguments":{"data":"abc","repeat":1000000}}`))
	t.sent("C", []byte(`(qmp_capabilities, sha256, then hang up)`))
	c.Close()
	b.Close()
	time.Sleep(100 * time.Millisecond)
	reply, err = a.exchange(`{"execute":"query-status","id":13}`)
	if err != nil {
		return err
	}
	if err := expect(reply, "return"); err != nil {
		return err
	}
	if narrate {
		printStatus(w, reply)
	}
	t.note("query-callbacks: per-callback statistics, the longest first (what a stall hunt looks at)")
	if err := step(a, `{"execute":"query-callbacks","id":"cb"}`, "return"); err != nil {
		return err
	}

	t.note("quit: the server sends the SHUTDOWN event, answers, flushes every client and shuts down")
	if err := step(a, `{"execute":"quit","id":14}`, "return"); err != nil {
		return err
	}
	if _, err := a.readMessage(); err == nil {
		return errors.New("the server kept the connection open after quit")
	}
	t.note("connection closed by the server")
	return nil
}

// printStatus renders a query-status reply as a small table.
func printStatus(w io.Writer, reply []byte) {
	var r struct {
		Return map[string]any `json:"return"`
	}
	if json.Unmarshal(reply, &r) != nil {
		return
	}
	fmt.Fprintln(w, "\n# statistics (query-status)")
	for _, k := range []string{"uptime_ms", "clients", "requests", "errors", "events"} {
		fmt.Fprintf(w, "#   %-16s %v\n", k, r.Return[k])
	}
	if loop, ok := r.Return["loop"].(map[string]any); ok {
		for _, k := range []string{"ioh_dispatches", "fd_handlers", "aio_dispatches", "bhs", "timers", "eventfd_wakeups"} {
			fmt.Fprintf(w, "#   %-16s %v\n", k, loop[k])
		}
	}
}

// hashFileSteps is the script's sha256-file part: a 3 MiB file in dir, read through the
// server's ring with a progress event per MiB, its digest checked against crypto/sha256;
// then the errors of a missing file and of a directory.
func hashFileSteps(t transcript, a *scriptConn, dir string, step func(*scriptConn, string, string) error) error {
	t.note("sha256-file: a coroutine reads a file through the main context's io_uring, 1 MiB per read,\n" +
		"# hashes each MiB on the thread pool, and sends a progress event per MiB")
	if err := os.MkdirAll(filepath.Join(dir, "folder"), 0o755); err != nil {
		return err
	}
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>16)
	}
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, data, 0o644); err != nil {
		return err
	}
	quote := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	reply, err := a.exchange(`{"execute":"sha256-file","arguments":{"path":` + quote(img) + `,"progress_mib":1},"id":"f1"}`)
	if err != nil {
		return err
	}
	var r struct {
		Return struct {
			SHA256 string `json:"sha256"`
			Bytes  int64  `json:"bytes"`
		} `json:"return"`
	}
	sum := sha256.Sum256(data)
	if json.Unmarshal(reply, &r) != nil || r.Return.SHA256 != hex.EncodeToString(sum[:]) || r.Return.Bytes != int64(len(data)) {
		return fmt.Errorf("sha256-file of %s: %s, want %x over %d bytes", img, reply, sum, len(data))
	}
	for _, line := range []string{
		`{"execute":"sha256-file","arguments":{"path":` + quote(filepath.Join(dir, "missing.img")) + `},"id":"f2"}`,
		`{"execute":"sha256-file","arguments":{"path":` + quote(filepath.Join(dir, "folder")) + `},"id":"f3"}`,
	} {
		if err := step(a, line, "GenericError"); err != nil {
			return err
		}
	}
	return nil
}
