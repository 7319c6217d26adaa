package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

func cmdLoad(argv []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	socket := fs.String("socket", defaultSocket(), "unix socket path")
	tcp := fs.String("tcp", "", "connect over TCP instead")
	clients := fs.Int("clients", 50, "concurrent clients")
	requests := fs.Int("requests", 200, "requests per client")
	fs.Parse(argv)
	res, err := runLoad(*socket, *tcp, *clients, *requests, os.Stderr)
	if err != nil {
		return err
	}
	res.print(os.Stdout)
	return nil
}

type loadResult struct {
	clients, requests int
	elapsed           time.Duration
	latencies         []time.Duration
	errors            int
}

// runLoad connects clients that each send requests commands in turn (echo, with an
// occasional sha256 and sleep), checking that every reply carries its request's id, in
// order. A progress bar goes to bar (nil: none).
func runLoad(socket, tcp string, clients, requests int, bar io.Writer) (*loadResult, error) {
	var pb *progressbar.ProgressBar
	if bar != nil {
		pb = progressbar.NewOptions(clients*requests,
			progressbar.OptionSetWriter(bar), progressbar.OptionSetDescription("requests"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionThrottle(100*time.Millisecond))
	}
	res := &loadResult{clients: clients, requests: requests}
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			lat, nerr, err := loadClient(socket, tcp, c, requests, pb)
			mu.Lock()
			defer mu.Unlock()
			res.latencies = append(res.latencies, lat...)
			res.errors += nerr
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("client %d: %w", c, err)
			}
		}(c)
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if pb != nil {
		pb.Finish()
		fmt.Fprintln(bar)
	}
	return res, firstErr
}

func loadClient(socket, tcp string, c, requests int, pb *progressbar.ProgressBar) ([]time.Duration, int, error) {
	m, _, err := dial(socket, tcp)
	if err != nil {
		return nil, 0, err
	}
	defer m.Close()
	if r, err := m.call("qmp_capabilities", nil, nil); err != nil || r["return"] == nil {
		return nil, 0, fmt.Errorf("negotiation: %v %v", r, err)
	}
	lat := make([]time.Duration, 0, requests)
	nerr := 0
	for i := 0; i < requests; i++ {
		id := fmt.Sprintf("%d-%d", c, i)
		var cmd string
		var args any
		switch {
		case i%50 == 49:
			cmd, args = "sleep", map[string]any{"ms": 1}
		case i%20 == 19:
			cmd, args = "sha256", map[string]any{"data": "glibaio", "repeat": 1000}
		default:
			cmd, args = "echo", map[string]any{"data": id}
		}
		t := time.Now()
		r, err := m.call(cmd, args, id)
		if err != nil {
			return lat, nerr, err
		}
		lat = append(lat, time.Since(t))
		if got, _ := json.Marshal(r["id"]); string(got) != fmt.Sprintf("%q", id) {
			return lat, nerr, fmt.Errorf("reply id %s, want %q: replies out of order", got, id)
		}
		if r["error"] != nil {
			nerr++
		}
		if pb != nil {
			pb.Add(1)
		}
	}
	return lat, nerr, nil
}

func (r *loadResult) print(w io.Writer) {
	n := len(r.latencies)
	if n == 0 {
		fmt.Fprintln(w, "no requests completed")
		return
	}
	slices.Sort(r.latencies)
	pct := func(p float64) time.Duration { return r.latencies[min(n-1, int(p/100*float64(n)))] }
	fmt.Fprintf(w, "%d clients x %d requests: %d replies in %v (%d errors)\n", r.clients, r.requests, n, r.elapsed.Round(time.Millisecond), r.errors)
	fmt.Fprintf(w, "throughput: %.0f requests/s\n", float64(n)/r.elapsed.Seconds())
	fmt.Fprintf(w, "latency: p50 %v  p90 %v  p99 %v  max %v\n", pct(50), pct(90), pct(99), r.latencies[n-1])
}
