package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts in testdata/")

// aiodemoBin is the aiodemo executable the end-to-end tests run, built once.
var aiodemoBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "aiodemo-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	aiodemoBin = filepath.Join(dir, "aiodemo")
	args := []string{"build", "-o", aiodemoBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building aiodemo: %v\n%s", err, out)
		os.Exit(1)
	}
	code := leakcheck.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer that the exec package's copying goroutine and the test
// may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer runs `aiodemo serve` on a fresh socket and waits until it accepts.
func startServer(t *testing.T, extra ...string) (socket string, cmd *exec.Cmd, stderr *syncBuffer) {
	t.Helper()
	socket = filepath.Join(t.TempDir(), "mon.sock")
	cmd = serveCmd(socket, extra...)
	return socket, cmd, runServer(t, cmd, socket)
}

// serveCmd is the command of `aiodemo serve` on socket, statistics off.
func serveCmd(socket string, extra ...string) *exec.Cmd {
	return exec.Command(aiodemoBin, append([]string{"serve", "--socket", socket, "--stats", "0"}, extra...)...)
}

// runServer starts cmd, a server on socket, kills it when the test ends if it is still
// running, and waits until the socket accepts. It returns the server's stderr.
func runServer(t *testing.T, cmd *exec.Cmd, socket string) *syncBuffer {
	t.Helper()
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", socket); err == nil {
			c.Close()
			return stderr
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not start; stderr:\n%s", stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitExit waits for the server to exit and checks its status.
func waitExit(t *testing.T, cmd *exec.Cmd, stderr *syncBuffer) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("server exited with %v; stderr:\n%s", err, stderr)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("server did not exit; stderr:\n%s", stderr)
	}
	if !strings.Contains(stderr.String(), "aiodemo: stats") {
		t.Errorf("the server did not log its final statistics:\n%s", stderr)
	}
}

var normalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`"timestamp":\{[^}]*\}`), `"timestamp":T`},
	{regexp.MustCompile(`"uptime_ms":\d+`), `"uptime_ms":N`},
	{regexp.MustCompile(`"loop":\{[^}]*\}`), `"loop":L`},
	{regexp.MustCompile(`"events":\d+`), `"events":N`},
	{regexp.MustCompile(`"process":\{[^}]*\}`), `"process":P`},
	{regexp.MustCompile(`"(aio-context|io-handler)":\[[^\]]*\]`), `"$1":[...]`},
	{regexp.MustCompile(`(["'])/[^"']*/files/`), `${1}DIR/files/`},
	{regexp.MustCompile(`"engine":"[a-z_]+"`), `"engine":E`},
}

func normalize(s string) string {
	for _, n := range normalizers {
		s = n.re.ReplaceAllString(s, n.with)
	}
	return s
}

// The scripted session over the real aiodemoBin's socket matches the golden transcript,
// and quit ends the server cleanly (exit status 0, socket removed).
func TestServeTranscript(t *testing.T) {
	leakcheck.Handles(t)
	socket, cmd, stderr := startServer(t)
	var buf bytes.Buffer
	if err := runScript(socket, &buf, false); err != nil {
		t.Fatalf("script: %v\ntranscript:\n%s\nstderr:\n%s", err, buf.String(), stderr)
	}
	waitExit(t, cmd, stderr)
	if _, err := os.Stat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket file is still there after shutdown: %v", err)
	}
	got := normalize(buf.String())
	golden := filepath.Join("..", "..", "testdata", "aiodemo-session.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/aiodemo -run TestServeTranscript -update)", err)
	}
	if got != string(want) {
		t.Fatalf("transcript differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
	}
}

// The socket is created with mode 0600.
func TestSocketMode(t *testing.T) {
	leakcheck.Handles(t)
	socket, _, _ := startServer(t)
	fi, err := os.Stat(socket)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("socket mode %o, want 600", perm)
	}
}

// SIGTERM and SIGINT arrive on io-handler and shut the server down cleanly; connected
// clients see the connection close.
func TestSignalShutdown(t *testing.T) {
	leakcheck.Handles(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			socket, cmd, stderr := startServer(t)
			m, _, err := dial(socket, "")
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if r, err := m.call("qmp_capabilities", nil, nil); err != nil || r["return"] == nil {
				t.Fatalf("negotiation: %v %v", r, err)
			}
			cmd.Process.Signal(sig)
			waitExit(t, cmd, stderr)
			// As QEMU does on SIGTERM and SIGINT: the SHUTDOWN event, with its timestamp,
			// then the connection closes.
			ev, err := m.readMessage()
			if err != nil {
				t.Fatalf("no SHUTDOWN event: %v", err)
			}
			var shut struct {
				Event string
				Data  struct {
					Guest  *bool
					Reason string
				}
				Timestamp *struct{ Seconds, Microseconds *int64 }
			}
			if json.Unmarshal(ev, &shut) != nil || shut.Event != "SHUTDOWN" || shut.Data.Reason != "host-signal" ||
				shut.Data.Guest == nil || *shut.Data.Guest || shut.Timestamp == nil || shut.Timestamp.Seconds == nil ||
				shut.Timestamp.Microseconds == nil {
				t.Fatalf("want a SHUTDOWN event for the signal, got %s", ev)
			}
			if msg, err := m.readMessage(); err == nil {
				t.Fatalf("the connection stayed open after the signal: %s", msg)
			}
			if !strings.Contains(stderr.String(), "signal "+sig.String()) {
				t.Fatalf("the shutdown did not name the signal:\n%s", stderr)
			}
		})
	}
}

// TCP listens on loopback; a bare port means 127.0.0.1.
func TestTCP(t *testing.T) {
	leakcheck.Handles(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	_, cmd, stderr := startServer(t, "--tcp", fmt.Sprint(port))
	m, greeting, err := dial("", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("dial tcp: %v; stderr:\n%s", err, stderr)
	}
	defer m.Close()
	if !bytes.Contains(greeting, []byte(`"QMP"`)) {
		t.Fatalf("greeting %s", greeting)
	}
	if r, err := m.call("qmp_capabilities", nil, nil); err != nil || r["return"] == nil {
		t.Fatal(r, err)
	}
	if r, err := m.call("quit", nil, nil); err != nil || r["return"] == nil {
		t.Fatal(r, err)
	}
	waitExit(t, cmd, stderr)
	for _, tc := range []struct{ in, want string }{{"4444", "127.0.0.1:4444"}, {":4444", "127.0.0.1:4444"}, {"0.0.0.0:1", "0.0.0.0:1"}} {
		ap, err := parseTCP(tc.in)
		if err != nil || ap.String() != tc.want {
			t.Errorf("parseTCP(%q) = %v, %v; want %s", tc.in, ap, err, tc.want)
		}
	}
	if _, err := parseTCP("[::1]:5"); err == nil {
		t.Error("parseTCP accepted IPv6")
	}
}

// load drives the server and reports throughput and latency; every reply matches its
// request id, in order.
func TestLoadCommand(t *testing.T) {
	leakcheck.Handles(t)
	socket, cmd, stderr := startServer(t)
	out, err := exec.Command(aiodemoBin, "load", "--socket", socket, "--clients", "20", "--requests", "60").CombinedOutput()
	if err != nil {
		t.Fatalf("load: %v\n%s", err, out)
	}
	for _, want := range []string{"20 clients x 60 requests: 1200 replies", "throughput:", "latency: p50"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Fatalf("load output lacks %q:\n%s", want, out)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitExit(t, cmd, stderr)
}

// The interactive client sends shorthand and prints replies.
func TestClientCommand(t *testing.T) {
	leakcheck.Handles(t)
	socket, cmd, stderr := startServer(t)
	c := exec.Command(aiodemoBin, "client", "--socket", socket)
	c.Stdin = strings.NewReader("qmp_capabilities\necho data=hello\nsleep ms=20\n{\"execute\": \"echo\",\n\"arguments\": {\"data\": \"two lines\"}}\n{\"execute\":\"quit\"}\n")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	for _, want := range []string{`-> {"arguments":{"data":"hello"},"execute":"echo"}`, `<- {"return":{"data":"hello"}}`, `<- {"return":{"slept_ms":20}}`, `<- {"return":{"data":"two lines"}}`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Fatalf("client output lacks %q:\n%s", want, out)
		}
	}
	waitExit(t, cmd, stderr)
}

// A client that floods requests without reading its replies cannot stall another.
func TestFloodingClientDoesNotStallOthers(t *testing.T) {
	leakcheck.Handles(t)
	socket, cmd, stderr := startServer(t)
	flood, _, err := dial(socket, "")
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		line := []byte(`{"execute":"echo","arguments":{"data":"` + strings.Repeat("y", 4000) + `"}}`)
		flood.sendLine([]byte(`{"execute":"qmp_capabilities"}`))
		for ctx.Err() == nil {
			flood.c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := flood.c.Write(append(line, '\n')); err != nil && !isTimeout(err) {
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // let its buffers fill
	m, _, err := dial(socket, "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	start := time.Now()
	for _, c := range []string{"qmp_capabilities", "query-status"} {
		if r, err := m.call(c, nil, nil); err != nil || r["return"] == nil {
			t.Fatalf("%s while another client floods: %v %v", c, r, err)
		}
	}
	t.Logf("a well-behaved client was served in %v while another flooded", time.Since(start))
	cancel()
	cmd.Process.Signal(syscall.SIGTERM)
	waitExit(t, cmd, stderr)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
