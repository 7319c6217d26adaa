package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/internal/leakcheck"
)

// A path that exists and is not a socket is refused with a clear error and left as it
// was: a regular file, a directory, a symbolic link, a named pipe.
func TestSocketPathNotASocket(t *testing.T) {
	leakcheck.Handles(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("precious"), 0o644)
	sub := filepath.Join(dir, "dir")
	os.Mkdir(sub, 0o755)
	link := filepath.Join(dir, "link")
	os.Symlink(file, link)
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for path, kind := range map[string]string{file: "a regular file", sub: "a directory", link: "a symbolic link", fifo: "a named pipe"} {
		before, _ := os.Lstat(path)
		fd, _, err := bindUnixSocket(path)
		if err == nil {
			unix.Close(fd)
			t.Fatalf("%s: bound over %s", path, kind)
		}
		if want := path + " exists and is not a socket (" + kind + "); refusing to replace it"; err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
		after, err := os.Lstat(path)
		if err != nil || !os.SameFile(before, after) || after.Mode() != before.Mode() {
			t.Errorf("%s was touched: %v", path, err)
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "precious" {
		t.Errorf("the regular file now holds %q", b)
	}
	// The server refuses to start, with the same error, and leaves the file.
	out, err := serveCmd(file).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "exists and is not a socket") {
		t.Fatalf("serve on a regular file: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(file); string(b) != "precious" {
		t.Errorf("serve changed the regular file: %q", b)
	}
}

// A socket that nobody listens on is stale: it is removed and the new socket bound.
func TestSocketPathStale(t *testing.T) {
	leakcheck.Handles(t)
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close() // a server that died: its socket file stays
	fd, id, err := bindUnixSocket(path)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	defer unix.Close(fd)
	// It listens already: a server that probes the path once the lock is free must find
	// it live. (Bound but not yet listening, it refused connections, and a second
	// server starting at the same time took it for stale and removed it.)
	if live, err := probeSocket(path); !live || err != nil {
		t.Fatalf("the socket bindUnixSocket returned does not answer a probe (%v)", err)
	}
	// The path is our socket now: a connection to it reaches our fd. (The inode number
	// alone cannot tell: the file system may give the new file the stale one's.)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the new socket does not answer: %v", err)
	}
	c.Close()
	nfd, _, err := unix.Accept(fd)
	if err != nil {
		t.Fatalf("the connection did not reach our socket: %v", err)
	}
	unix.Close(nfd)
	now, err := os.Lstat(path)
	if err != nil || statSocketID(now) != id {
		t.Fatalf("the path is not the socket bound: %v", err)
	}
	if perm := now.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %o, want 600", perm)
	}
	if removed, why := removeOwnSocket(path, id); !removed {
		t.Fatalf("our own socket was not removed: %s", why)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket still there: %v", err)
	}
}

// A socket that a server answers on is refused ("another server is listening on
// PATH") and left alone; the server keeps its clients.
func TestSocketPathLive(t *testing.T) {
	leakcheck.Handles(t)
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan struct{}, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
			accepted <- struct{}{}
		}
	}()
	live, _ := os.Lstat(path)
	fd, _, err := bindUnixSocket(path)
	if err == nil {
		unix.Close(fd)
		t.Fatal("bound over a live server's socket")
	}
	if !errors.Is(err, errServerListening) || err.Error() != "another server is listening on "+path {
		t.Fatalf("error %q", err)
	}
	if now, err := os.Lstat(path); err != nil || !os.SameFile(live, now) {
		t.Fatalf("the live socket was touched: %v", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the live server is unreachable: %v", err)
	}
	c.Close()
}

// At shutdown a server removes the path only if it is still the socket it bound.
func TestSocketPathRemovedOnlyIfOurs(t *testing.T) {
	leakcheck.Handles(t)
	socket, cmd, stderr := startServer(t)
	// Another program replaces the path meanwhile.
	if err := os.Remove(socket); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	theirs, _ := os.Lstat(socket)
	cmd.Process.Signal(syscall.SIGTERM)
	waitExit(t, cmd, stderr)
	now, err := os.Lstat(socket)
	if err != nil || !os.SameFile(theirs, now) {
		t.Fatalf("the server removed a socket that was not its own: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr.String(), "the path now names another file") {
		t.Errorf("the server did not say why it left the socket:\n%s", stderr)
	}
}

// Two servers started at once on one path: exactly one serves, the other refuses with
// "another server is listening", and the socket on the path is the winner's.
func TestSocketPathTwoServersAtOnce(t *testing.T) {
	leakcheck.Handles(t)
	for round := range 3 {
		dir := t.TempDir()
		socket := filepath.Join(dir, "mon.sock")
		if round%2 == 1 { // and over a stale socket, where both would remove it
			l, _ := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
			l.SetUnlinkOnClose(false)
			l.Close()
		}
		var cmds [2]*exec.Cmd
		var errs [2]*syncBuffer
		var wg sync.WaitGroup
		var started [2]atomic.Pointer[os.Process] // for the kill below, which races Start
		exited := make(chan int, 2)
		for i := range cmds {
			cmds[i] = serveCmd(socket)
			errs[i] = &syncBuffer{}
			cmds[i].Stderr = errs[i]
		}
		for i := range cmds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := cmds[i].Start(); err != nil {
					t.Error(err)
					return
				}
				started[i].Store(cmds[i].Process)
				cmds[i].Wait()
				exited <- i
			}()
		}
		var loser int
		select {
		case loser = <-exited:
		case <-time.After(20 * time.Second):
			for i := range started {
				if p := started[i].Load(); p != nil {
					p.Kill()
				}
			}
			wg.Wait()
			t.Fatalf("round %d: neither server refused:\n%s\n%s", round, errs[0], errs[1])
		}
		winner := 1 - loser
		if code := cmds[loser].ProcessState.ExitCode(); code != 1 || !strings.Contains(errs[loser].String(), "another server is listening on "+socket) {
			t.Errorf("round %d: the losing server exited with %d:\n%s", round, code, errs[loser])
		}
		m, _, err := dial(socket, "")
		if err != nil {
			t.Fatalf("round %d: the winner is unreachable: %v\n%s", round, err, errs[winner])
		}
		if r, err := m.call("qmp_capabilities", nil, nil); err != nil || r["return"] == nil {
			t.Fatalf("round %d: %v %v", round, r, err)
		}
		m.call("quit", nil, nil)
		m.Close()
		<-exited
		wg.Wait()
		if code := cmds[winner].ProcessState.ExitCode(); code != 0 {
			t.Errorf("round %d: the winner exited with %d:\n%s", round, code, errs[winner])
		}
		if _, err := os.Lstat(socket); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("round %d: the winner left its socket: %v", round, err)
		}
	}
}
