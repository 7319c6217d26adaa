// Command aiodemo is a QEMU-monitor-style server on glibaio's AIO main loop, and the
// tools to talk to it.
//
//	aiodemo serve  [--socket PATH] [--tcp 127.0.0.1:PORT] [--stats 10s]
//	aiodemo client [--socket PATH | --tcp ADDR]
//	aiodemo load   [--socket PATH] --clients N --requests M
//	aiodemo demo   # starts a server and drives it with a scripted session (make demo)
//
// The protocol is QMP's, framed as QEMU frames it: a stream of JSON objects, any number
// per line, any one over several lines (jsonstream.go). After the greeting, send
// {"execute":"qmp_capabilities"}, then commands such as query-version,
// query-commands, query-status, echo, sleep, sha256, sha256-file, subscribe and quit. The client
// works against QEMU's own QMP monitor too.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

func defaultSocket() string {
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "aiodemo.sock")
}

func usage() {
	fmt.Fprintf(os.Stderr, `usage: aiodemo <command> [flags]

commands:
  serve    run the monitor server (default socket %s)
  client   interactive client: type JSON, or shorthand such as "sleep ms=200"
  load     drive a server with many clients and report throughput and latency
  demo     start a server and drive it with a scripted session

run "aiodemo <command> -h" for its flags.
`, defaultSocket())
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, argv := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(argv)
	case "client":
		err = cmdClient(argv)
	case "load":
		err = cmdLoad(argv)
	case "demo":
		err = cmdDemo(argv)
	case "-h", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "aiodemo:", err)
		os.Exit(1)
	}
}

func cmdServe(argv []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	socket := fs.String("socket", defaultSocket(), "unix socket path (created with mode 0600; a path that is not a socket, or one a live server answers on, is refused); empty for none")
	tcp := fs.String("tcp", "", "also listen on TCP, e.g. 127.0.0.1:4444 (a bare port means loopback)")
	stats := fs.Duration("stats", 10*time.Second, "log statistics this often from a plain GLib timeout source (0: never)")
	maxClients := fs.Int("max-clients", 4096, "refuse connections beyond this many clients")
	stall := fs.Duration("stall", 250*time.Millisecond, "log any callback that runs longer than this, with its stack (0: off)")
	fs.Parse(argv)
	return serve(context.Background(), serverConfig{
		Socket: *socket, TCP: *tcp, StatsInterval: *stats, MaxClients: *maxClients, Stall: *stall,
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
}
