package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

func cmdClient(argv []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	socket := fs.String("socket", defaultSocket(), "unix socket path")
	tcp := fs.String("tcp", "", "connect over TCP instead, e.g. 127.0.0.1:4444")
	fs.Parse(argv)
	return runClient(*socket, *tcp, os.Stdin, os.Stdout)
}

// runClient copies what the server sends to out as it arrives, one JSON object per
// "<-" line, and sends what in carries: JSON as typed (an object may span lines, and a
// line may hold several), or a shorthand line ("qmp_capabilities", "sleep ms=200",
// "echo data=hi"). It reads any QMP server, QEMU's included. It returns when in ends
// (after the replies to the last requests) or the server closes.
func runClient(socket, tcp string, in io.Reader, out io.Writer) error {
	m, greeting, err := dial(socket, tcp)
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(out, "<- %s\n", greeting)
	fmt.Fprintln(out, `connected; type JSON or shorthand such as "qmp_capabilities", "query-status", "sleep ms=500"; Ctrl-D quits`)
	// The lines of one typed object are printed together, and never cut by a message
	// of the server's: both goroutines print under mu.
	var mu sync.Mutex
	serverGone := make(chan error, 1)
	go func() {
		for {
			msg, err := m.readMessage()
			if err != nil {
				serverGone <- err
				return
			}
			mu.Lock()
			fmt.Fprintf(out, "<- %s\n", msg)
			mu.Unlock()
		}
	}()
	var typedLines strings.Builder // the lines of an object still being typed
	// typed tracks the JSON the user types, with the server's own parser, so that the
	// lines of an object that spans lines all go out as JSON, not as shorthand.
	typed := newJSONMessageParser(0, func(any, *qmpError, []byte) {})
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		var req string
		switch {
		case !typed.idle() || strings.HasPrefix(trimmed, "{") || strings.HasPrefix(trimmed, "["):
			req = line
			typed.feed([]byte(line + "\n"))
		case trimmed == "":
			continue
		default:
			req = shorthand(trimmed)
		}
		if err := m.sendLine([]byte(req)); err != nil {
			return err
		}
		fmt.Fprintf(&typedLines, "-> %s\n", req)
		if typed.idle() {
			mu.Lock()
			io.WriteString(out, typedLines.String())
			mu.Unlock()
			typedLines.Reset()
		}
	}
	mu.Lock()
	io.WriteString(out, typedLines.String()) // an object left unfinished
	mu.Unlock()
	m.c.(interface{ CloseWrite() error }).CloseWrite()
	<-serverGone
	return nil
}

// shorthand turns "cmd k=v ..." into a QMP request. Values that parse as JSON are sent
// as such, others as strings.
func shorthand(line string) string {
	fields := strings.Fields(line)
	req := map[string]any{"execute": fields[0]}
	if len(fields) > 1 {
		args := map[string]any{}
		for _, f := range fields[1:] {
			k, v, _ := strings.Cut(f, "=")
			var jv any
			if json.Unmarshal([]byte(v), &jv) == nil {
				args[k] = jv
			} else {
				args[k] = v
			}
		}
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	return string(b)
}
