package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"
)

// cpuTicks returns a process's user+system CPU time in clock ticks (/proc/PID/stat).
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name may hold spaces: the fields after it start past the last ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}

// clkTck is USER_HZ, the unit of /proc/PID/stat's times: 100 on Linux.
const clkTck = 100

// At the fd limit the server neither spins nor floods its log: with RLIMIT_NOFILE at 40
// and 80 clients connecting, the clients past the limit wait in the backlog while the
// server uses under 5% of a core and logs a bounded amount; once fds are free, the
// waiting clients are greeted. make test runs it for 1 s; GLIBAIO_FDLIMIT_WINDOW sets
// the window, and AIODEMO_BIN another aiodemo binary (to measure an older one).
func TestFDLimitCalm(t *testing.T) {
	leakcheck.Handles(t)
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Fatalf("prlimit (util-linux) is needed to lower the server's RLIMIT_NOFILE: %v", err)
	}
	window := time.Second
	if d, err := time.ParseDuration(os.Getenv("GLIBAIO_FDLIMIT_WINDOW")); err == nil && d > 0 {
		window = d
	}
	bin := aiodemoBin
	if b := os.Getenv("AIODEMO_BIN"); b != "" {
		bin = b
	}
	const limit, nclients = 40, 80
	socket := filepath.Join(t.TempDir(), "mon.sock")
	cmd := exec.Command(prlimit, fmt.Sprintf("--nofile=%d:%d", limit, limit), "--",
		bin, "serve", "--socket", socket, "--stats", "0", "--stall", "0")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", socket); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			t.Fatalf("the server did not start; stderr:\n%s", stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// 80 clients connect; each waits for its greeting on its own goroutine.
	type waiter struct {
		c       net.Conn
		greeted atomic.Int64 // UnixNano of the greeting, 0 before
	}
	ws := make([]*waiter, nclients)
	var wg sync.WaitGroup
	for i := range ws {
		c, err := net.Dial("unix", socket)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		w := &waiter{c: c}
		ws[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(window + 20*time.Second))
			if _, err := bufio.NewReader(c).ReadBytes('\n'); err == nil {
				w.greeted.Store(time.Now().UnixNano())
			}
		}()
	}
	defer func() {
		for _, w := range ws {
			w.c.Close()
		}
		wg.Wait()
	}()
	countGreeted := func() (n int) {
		for _, w := range ws {
			if w.greeted.Load() != 0 {
				n++
			}
		}
		return n
	}
	time.Sleep(300 * time.Millisecond) // the server takes what fds it can
	greeted := countGreeted()

	logBefore, cpuBefore := len(stderr.String()), cpuTicks(t, cmd.Process.Pid)
	start := time.Now()
	time.Sleep(window)
	elapsed := time.Since(start)
	cpu := time.Duration(cpuTicks(t, cmd.Process.Pid)-cpuBefore) * time.Second / clkTck
	logBytes := len(stderr.String()) - logBefore
	pct := 100 * cpu.Seconds() / elapsed.Seconds()
	t.Logf("RLIMIT_NOFILE %d, %d clients: %d greeted, %d waiting; over %v the server used %v of CPU (%.1f%% of a core) and logged %d bytes",
		limit, nclients, greeted, nclients-greeted, elapsed.Round(time.Millisecond), cpu, pct, logBytes)
	if greeted >= nclients {
		t.Fatalf("all %d clients were greeted: the fd limit was not reached", nclients)
	}
	if pct >= 5 {
		t.Errorf("the server used %.1f%% of a core at the fd limit, want < 5%%", pct)
	}
	if max := 2048 + int(window/acceptLogInterval)*512; logBytes > max {
		t.Errorf("the server logged %d bytes in %v at the fd limit, want <= %d:\n%.2000s", logBytes, elapsed, max, stderr.String()[logBefore:])
	}

	// Hang up the clients that were greeted: as many waiting ones get their fds, and
	// are greeted, at once.
	freed := 0
	for _, w := range ws {
		if w.greeted.Load() != 0 {
			w.c.Close()
			freed++
		}
	}
	closedAt := time.Now()
	want := min(freed, nclients-greeted)
	for countGreeted()-greeted < want {
		if time.Since(closedAt) > 10*time.Second {
			t.Fatalf("%d clients freed their fds; after 10 s only %d of the %d waiting were greeted; stderr:\n%s",
				freed, countGreeted()-greeted, nclients-greeted, stderr)
		}
		time.Sleep(time.Millisecond)
	}
	var last int64
	for _, w := range ws {
		last = max(last, w.greeted.Load())
	}
	t.Logf("recovery: %d clients hung up; %d waiting clients greeted within %v", freed, want,
		time.Unix(0, last).Sub(closedAt).Round(time.Microsecond))
	if !strings.Contains(stderr.String(), "too many open files") {
		t.Errorf("the server did not log the fd limit:\n%s", stderr)
	}
	// Every client hangs up: the server takes the rest of the backlog, finds it empty,
	// and says the condition is over.
	for _, w := range ws {
		w.c.Close()
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "accept works again"); {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not log the end of the fd limit:\n%s", stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
