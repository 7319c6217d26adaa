package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/internal/leakcheck"
)

// negotiated dials the server and negotiates capabilities.
func negotiated(t *testing.T, socket string) *monitorConn {
	t.Helper()
	m, _, err := dial(socket, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if r, err := m.call("qmp_capabilities", nil, nil); err != nil || r["return"] == nil {
		t.Fatalf("negotiation: %v %v", r, err)
	}
	return m
}

// sha256File sends sha256-file with args and returns its reply and the events that came
// before it.
func sha256File(t *testing.T, m *monitorConn, args map[string]any) (map[string]any, []map[string]any) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"execute": "sha256-file", "arguments": args})
	if err := m.sendLine(b); err != nil {
		t.Fatal(err)
	}
	reply, raw, err := m.readReply()
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(reply, &r); err != nil {
		t.Fatal(err)
	}
	var events []map[string]any
	for _, e := range raw {
		var ev map[string]any
		json.Unmarshal(e, &ev)
		events = append(events, ev)
	}
	return r, events
}

// sha256-file reads the file through the ring and hashes it: the digest is crypto/sha256's,
// a progress event comes at every progress_mib MiB, and the reply names the engine, which
// GLIBAIO_AIO=threads in the server's environment changes to the thread pool.
func TestSHA256File(t *testing.T) {
	leakcheck.Handles(t)
	data := make([]byte, 5<<20+123)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	for _, engine := range []string{"io_uring", "threads"} {
		t.Run(engine, func(t *testing.T) {
			if engine == "threads" {
				t.Setenv("GLIBAIO_AIO", "threads") // the server inherits it
			}
			socket, cmd, stderr := startServer(t)
			m := negotiated(t, socket)
			r, events := sha256File(t, m, map[string]any{"path": p, "progress_mib": 2})
			ret, _ := r["return"].(map[string]any)
			if ret == nil || ret["sha256"] != hex.EncodeToString(sum[:]) || ret["bytes"] != float64(len(data)) || ret["engine"] != engine {
				t.Fatalf("reply %v; want sha256 %x of %d bytes on %s", r, sum, len(data), engine)
			}
			var offs []float64
			for _, ev := range events {
				d, _ := ev["data"].(map[string]any)
				if ev["event"] != "SHA256_FILE_PROGRESS" || d["path"] != p || d["size"] != float64(len(data)) {
					t.Fatalf("event %v", ev)
				}
				offs = append(offs, d["offset"].(float64))
			}
			if fmt.Sprint(offs) != fmt.Sprint([]float64{2 << 20, 4 << 20}) {
				t.Fatalf("progress events at %v, want 2 MiB and 4 MiB", offs)
			}
			if r, err := m.call("quit", nil, nil); err != nil || r["return"] == nil {
				t.Fatal(r, err)
			}
			waitExit(t, cmd, stderr)
		})
	}
}

// Bad paths get clear QMP errors, at once: missing, empty or mistyped arguments, a file
// that does not exist, a directory, a FIFO without a writer (which must not block the
// loop), a socket, a character device, symlinks that lead nowhere. The server goes on.
func TestSHA256FileErrors(t *testing.T) {
	leakcheck.Handles(t)
	socket, cmd, stderr := startServer(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling"))
	os.Symlink(filepath.Join(dir, "loop"), filepath.Join(dir, "loop"))
	m := negotiated(t, socket)
	for _, tc := range []struct {
		args map[string]any
		desc string
	}{
		{map[string]any{}, "Parameter 'path' is missing"},
		{map[string]any{"path": 7}, "Invalid parameter type for 'path', expected: string"},
		{map[string]any{"path": ""}, "Parameter 'path' expects a non-empty file name"},
		{map[string]any{"path": "a\x00b"}, "Parameter 'path' expects a file name without NUL bytes"},
		{map[string]any{"path": dir, "extra": 1}, "Parameter 'extra' is unexpected"},
		{map[string]any{"path": dir, "progress_mib": 0}, "Parameter 'progress_mib' expects a value between 1 and 1048576"},
		{map[string]any{"path": filepath.Join(dir, "missing")}, "Could not open '" + filepath.Join(dir, "missing") + "': No such file or directory"},
		{map[string]any{"path": filepath.Join(dir, "missing", "x")}, "Could not open '" + filepath.Join(dir, "missing", "x") + "': No such file or directory"},
		{map[string]any{"path": dir}, "'" + dir + "' is a directory, not a file"},
		{map[string]any{"path": fifo}, "'" + fifo + "' is not a regular file or a block device"},
		{map[string]any{"path": socket}, "Could not open '" + socket + "': No such device or address"},
		{map[string]any{"path": "/dev/null"}, "'/dev/null' is not a regular file or a block device"},
		{map[string]any{"path": filepath.Join(dir, "dangling")}, "Could not open '" + filepath.Join(dir, "dangling") + "': No such file or directory"},
		{map[string]any{"path": filepath.Join(dir, "loop")}, "Could not open '" + filepath.Join(dir, "loop") + "': Too many levels of symbolic links"},
		{map[string]any{"path": os.Args[0] + "/x"}, "Could not open '" + os.Args[0] + "/x': Not a directory"},
	} {
		start := time.Now()
		r, _ := sha256File(t, m, tc.args)
		e, _ := r["error"].(map[string]any)
		if e == nil || e["class"] != "GenericError" || e["desc"] != tc.desc {
			t.Errorf("sha256-file %v: %v; want GenericError %q", tc.args, r, tc.desc)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("sha256-file %v took %v", tc.args, d)
		}
	}
	if r, err := m.call("quit", nil, nil); err != nil || r["return"] == nil {
		t.Fatal(r, err)
	}
	waitExit(t, cmd, stderr)
}

// A file the server may not read: "Permission denied". Root reads any file, so as root
// the server runs as nobody (uid 65534) for this test.
func TestSHA256FilePermission(t *testing.T) {
	leakcheck.Handles(t)
	// A directory that uid 65534 can reach and write its socket in (t.TempDir's parent
	// is 0700).
	dir, err := os.MkdirTemp("", "aiodemo-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("no"), 0o000); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "mon.sock")
	cmd := serveCmd(socket)
	if os.Geteuid() == 0 {
		t.Log("running as root: the server runs as uid 65534")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if err := os.Chmod(filepath.Dir(aiodemoBin), 0o755); err != nil { // made by MkdirTemp, 0700
			t.Fatal(err)
		}
	}
	stderr := runServer(t, cmd, socket)
	m := negotiated(t, socket)
	r, _ := sha256File(t, m, map[string]any{"path": secret})
	e, _ := r["error"].(map[string]any)
	if want := "Could not open '" + secret + "': Permission denied"; e == nil || e["desc"] != want {
		t.Fatalf("sha256-file of an unreadable file: %v; want %q", r, want)
	}
	if r, err := m.call("quit", nil, nil); err != nil || r["return"] == nil {
		t.Fatal(r, err)
	}
	waitExit(t, cmd, stderr)
}

// A client that hangs up while its file is hashed cancels the Task (and the read in
// flight); the server goes on serving, and shuts down with nothing left alive, also
// while another client's command is still in flight.
func TestSHA256FileClientGone(t *testing.T) {
	leakcheck.Handles(t)
	p := filepath.Join(t.TempDir(), "big.img")
	if err := os.WriteFile(p, bytes.Repeat([]byte("glibaio!"), 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	socket, cmd, stderr := startServer(t)
	for i := 0; i < 5; i++ {
		m := negotiated(t, socket)
		b, _ := json.Marshal(map[string]any{"execute": "sha256-file", "arguments": map[string]any{"path": p, "progress_mib": 1}})
		m.sendLine(b)
		if i%2 == 0 {
			m.readMessage() // a first progress event: the Task is under way
		}
		m.Close()
	}
	m := negotiated(t, socket)
	r, err := m.call("query-status", nil, nil)
	if err != nil || r["return"] == nil {
		t.Fatal(r, err)
	}
	// A client that stays, with its command in flight, while another quits: the server
	// waits for it to drain, then cancels its Task and exits.
	busy := negotiated(t, socket)
	b, _ := json.Marshal(map[string]any{"execute": "sha256-file", "arguments": map[string]any{"path": p, "progress_mib": 1}})
	busy.sendLine(b)
	if ev, err := busy.readMessage(); err != nil || !bytes.Contains(ev, []byte("SHA256_FILE_PROGRESS")) {
		t.Fatalf("the busy client's first message: %s, %v", ev, err)
	}
	if r, err := m.call("quit", nil, nil); err != nil || r["return"] == nil {
		t.Fatal(r, err)
	}
	waitExit(t, cmd, stderr)
	if strings.Contains(stderr.String(), "live work") {
		t.Fatalf("the server closed with live work:\n%s", stderr)
	}
	t.Logf("server log:\n%s", stderr)
}
