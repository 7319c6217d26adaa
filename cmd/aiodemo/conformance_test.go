package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"
)

// The conformance test sends the same byte streams to a real QEMU's QMP monitor and to
// aiodemo, and compares the shape of every reply (shapeOf): the members of each
// object and the types of their values, with the error class, the echoed id, the
// event name and the SHUTDOWN reason compared by value. Descriptions are not compared
// (aiodemo's own commands say their own things), but both sides' are printed when the
// shapes differ. Differences that are by design are listed with their reason in
// knownDiffs; any other difference fails the test. It runs where
// qemu-system-x86_64 is installed (make qemu installs it; make check runs it), and is
// skipped with a message where it is not.

// conformanceStream is one connection's worth of input. Unless it ends the server
// (quit), the test appends endMarker and reads the replies up to its reply.
type conformanceStream struct {
	name string
	in   string
	quit bool // the stream ends the server: read to end of file
}

const negotiate = `{"execute":"qmp_capabilities"}` + "\n"

// endMarker ends each stream: its reply (an error before negotiation, a return after)
// carries the id that tells the reader it has everything.
const endMarker = `{"execute":"query-version","id":"__end__"}` + "\n"

var conformanceStreams = []conformanceStream{
	{"greeting", "", false},
	{"negotiation", `{"execute":"query-version","id":1}` + "\n" + negotiate + negotiate +
		`{"execute":"query-version","id":2}` + "\n" + `{"execute":"query-commands","id":3}` + "\n", false},
	{"unknown command before negotiation", `{"execute":"frobnicate","id":"a"}` + "\n", false},
	{"two objects on one line", negotiate + `{"execute":"query-version","id":1}{"execute":"query-version","id":2}` + "\n", false},
	{"one object across lines", negotiate + "{\"execute\":\n\"query-version\",\r\n\"id\"\n:\n7}\n", false},
	{"stray closing brace", negotiate + `{"execute":"query-version","id":3}}` + "\n", false},
	{"garbage before a request", negotiate + `XYZ {"execute":"query-version","id":4}` + "\n", false},
	{"garbage words", negotiate + "hello world\n", false},
	{"0xff forces recovery", negotiate + `{"execute":"query-version",` + "\xff" + `{"execute":"query-version","id":5}` + "\n", false},
	{"control character in a string", negotiate + "{\"execute\":\"query-\x01version\"}\n", false},
	{"not objects", negotiate + "[1,2]\n\"str\"\n42\nnull\ntrue\n{}\n", false},
	{"member checks", negotiate + `{"arguments":{},"id":1}` + "\n" + `{"execute":5,"id":2}` + "\n" +
		`{"execute":"query-version","arguments":[],"id":3}` + "\n" + `{"execute":"query-version","bogus":1,"id":4}` + "\n" +
		`{"exec-oob":"query-version","id":5}` + "\n", false},
	{"id echo", negotiate + `{"execute":"query-version","id":null}` + "\n" + `{"execute":"query-version","id":{"a":[1,"b"]}}` + "\n" +
		`{"execute":"query-version","id":-12}` + "\n" + `{"execute":"query-version","id":18446744073709551615}` + "\n" +
		`{"execute":"query-version","id":"s"}` + "\n", false},
	{"unknown command", negotiate + `{"execute":"frobnicate","id":6}` + "\n", false},
	{"unexpected argument", negotiate + `{"execute":"query-version","arguments":{"x":1},"id":7}` + "\n", false},
	{"parser errors", negotiate + `{"execute":"query-version","id":nul}` + "\n" + `{"execute" "query-version"}` + "\n" +
		`{"execute":"query-version" "id":1}` + "\n" + `{1:2}` + "\n" + `{"id":1,"id":2}` + "\n" + `[}` + "\n" +
		`{"execute":"\q"}` + "\n" + `{"execute":"\uFFFF"}` + "\n" + `{"execute":"\uD800x"}` + "\n" +
		"{\"execute\":\"\xc3\x28\"}\n" + `{"id":01}` + "\n" + `{"id":0e5}` + "\n", false},
	{"QEMU's JSON extensions", negotiate + `{'execute':'query-version','id':'it\'s'}` + "\n" +
		"{\"execute\":\"query-version\",\"id\":\"nul\xc0\x80\"}\n" + `{"execute":"query-version","id":"\uD83D\uDE00"}` + "\n", false},
	{"capabilities arguments", `{"execute":"qmp_capabilities","arguments":{"enable":"oob"}}` + "\n" +
		`{"execute":"qmp_capabilities","arguments":{"enable":["foo"]}}` + "\n" +
		`{"execute":"qmp_capabilities","arguments":{"x":1}}` + "\n", false},
	{"capabilities enable oob", `{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}` + "\n", false},
	{"nesting limit", negotiate + strings.Repeat("[", 1025) + strings.Repeat("]", 1025) + "\n", false},
	{"quit", negotiate + `{"execute":"quit","id":"q"}` + "\n", true},
}

// knownDiffs are the differences by design, by stream and path.
var knownDiffs = map[string]map[string]string{
	"*": {
		"greeting: QMP.capabilities": "aiodemo offers no capabilities: it has no out-of-band commands, so it does not offer oob",
	},
	"capabilities enable oob": {
		"reply 1": "aiodemo does not offer oob, and refuses it as QEMU refuses a capability its monitor did not offer (qmp_caps_accept)",
	},
	"nesting limit": {
		"replies": "after a limit error QEMU lexes the rest of the request as new input (one error per stray bracket); aiodemo skips the rest of the request (one error)",
	},
}

// qemuBinary finds QEMU, or skips.
func qemuBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("QEMU"); p != "" {
		return p
	}
	p, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 not found, so aiodemo is not compared with a real QEMU: " +
			"run `make qemu` (it installs Debian's qemu-system-x86) or set QEMU=/path/to/qemu-system-x86_64")
	}
	return p
}

// startQEMU runs QEMU with a QMP monitor on a unix socket and no machine.
func startQEMU(t *testing.T, bin string) (socket string, cmd *exec.Cmd) {
	t.Helper()
	socket = filepath.Join(t.TempDir(), "qmp.sock")
	cmd = exec.Command(bin, "-machine", "none", "-nodefaults", "-display", "none",
		"-qmp", "unix:"+socket+",server=on,wait=off")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		if _, err := os.Stat(socket); err == nil {
			return socket, cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("QEMU did not create its QMP socket; stderr:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runStream sends a stream on a new connection and returns every message the server
// sent: the greeting first.
func runStream(socket string, st conformanceStream) ([]any, error) {
	m, greeting, err := dial(socket, "")
	if err != nil {
		return nil, err
	}
	defer m.Close()
	msgs := []any{decode(greeting)}
	in := st.in
	if !st.quit {
		in += endMarker
	}
	m.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(m.c, in); err != nil {
		return msgs, err
	}
	for {
		raw, err := m.readMessage()
		if err != nil {
			// QEMU exits at once after quit; a connection it closes with input unread
			// reports ECONNRESET rather than end of file.
			if st.quit && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
				return msgs, nil
			}
			return msgs, err
		}
		v := decode(raw)
		if obj, ok := v.(map[string]any); ok && obj["id"] == "__end__" {
			return msgs, nil
		}
		msgs = append(msgs, v)
	}
}

func decode(raw []byte) any {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return fmt.Sprintf("undecodable %q", raw)
	}
	return v
}

// shapeOf renders a message's shape: object members with their value shapes (sorted),
// array element shapes (distinct, sorted), scalar types; the values of class, id,
// event and reason members are kept.
func shapeOf(v any) string {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			switch k {
			case "class", "id", "event", "reason":
				b, _ := json.Marshal(x[k])
				parts[i] = k + "=" + string(b)
			default:
				parts[i] = k + ":" + shapeOf(x[k])
			}
		}
		return "{" + strings.Join(parts, ",") + "}"
	case []any:
		set := map[string]bool{}
		for _, e := range x {
			set[shapeOf(e)] = true
		}
		elems := make([]string, 0, len(set))
		for s := range set {
			elems = append(elems, s)
		}
		sort.Strings(elems)
		return "[" + strings.Join(elems, "|") + "]"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// compareGreeting compares the greetings member by member, so that the capabilities
// list can differ by design while the version object must match.
func compareGreeting(q, a any) []string {
	var diffs []string
	qm, _ := q.(map[string]any)["QMP"].(map[string]any)
	am, _ := a.(map[string]any)["QMP"].(map[string]any)
	if qm == nil || am == nil {
		return []string{fmt.Sprintf("greeting: %s vs %s", shapeOf(q), shapeOf(a))}
	}
	for _, k := range []string{"version", "capabilities"} {
		if shapeOf(qm[k]) != shapeOf(am[k]) {
			diffs = append(diffs, "greeting: QMP."+k)
		}
	}
	if len(qm) != len(am) {
		diffs = append(diffs, "greeting: QMP members")
	}
	return diffs
}

// compareReplies returns the paths where the two servers' replies differ in shape.
func compareReplies(q, a []any) []string {
	var diffs []string
	if len(q) > 0 && len(a) > 0 {
		diffs = compareGreeting(q[0], a[0])
	}
	if len(q) != len(a) {
		return append(diffs, "replies")
	}
	for i := 1; i < len(q); i++ {
		if shapeOf(q[i]) != shapeOf(a[i]) {
			diffs = append(diffs, fmt.Sprintf("reply %d", i))
		}
	}
	return diffs
}

func TestQMPConformance(t *testing.T) {
	leakcheck.Handles(t)
	qemu := qemuBinary(t)
	qsock, qcmd := startQEMU(t, qemu)
	asock, acmd, astderr := startServer(t)
	var summary, descDiffs []string
	same, known, errs, sameDesc := 0, 0, 0, 0
	for _, st := range conformanceStreams {
		qr, qerr := runStream(qsock, st)
		ar, aerr := runStream(asock, st)
		if qerr != nil || aerr != nil {
			t.Errorf("%s: QEMU: %v; aiodemo: %v", st.name, qerr, aerr)
			continue
		}
		diffs := compareReplies(qr, ar)
		if len(qr) == len(ar) {
			for i := 1; i < len(qr); i++ {
				qd, ad := errorDesc(qr[i]), errorDesc(ar[i])
				if qd == "" && ad == "" {
					continue
				}
				errs++
				if qd == ad {
					sameDesc++
				} else {
					descDiffs = append(descDiffs, fmt.Sprintf("%s, reply %d: QEMU %q, aiodemo %q", st.name, i, qd, ad))
				}
			}
		}
		var unknown, why []string
		for _, d := range diffs {
			if r, ok := knownDiffs[st.name][d]; ok {
				why = append(why, d+": "+r)
			} else if r, ok := knownDiffs["*"][d]; ok {
				_ = r // the greeting's capabilities: reported once, below
			} else {
				unknown = append(unknown, d)
			}
		}
		switch {
		case len(unknown) > 0:
			t.Errorf("%s: aiodemo differs from QEMU at %v\nQEMU:\n%s\naiodemo:\n%s", st.name, unknown, dump(qr), dump(ar))
			summary = append(summary, fmt.Sprintf("%-36s %2d replies  DIFFERS at %v", st.name, len(qr)-1, unknown))
		case len(why) > 0:
			known++
			summary = append(summary, fmt.Sprintf("%-36s %2d/%d replies  differs by design: %s", st.name, len(qr)-1, len(ar)-1, strings.Join(why, "; ")))
		default:
			same++
			summary = append(summary, fmt.Sprintf("%-36s %2d replies  same shape", st.name, len(qr)-1))
		}
	}
	waitQuit := func(name string, cmd *exec.Cmd) {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s exited with %v after quit", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not exit after quit", name)
		}
	}
	waitQuit("QEMU", qcmd)
	waitQuit("aiodemo", acmd)
	if !strings.Contains(astderr.String(), "aiodemo: stats") {
		t.Errorf("aiodemo did not shut down cleanly:\n%s", astderr)
	}

	// SIGTERM: both send SHUTDOWN with reason host-signal to the connected client.
	qsock, qcmd = startQEMU(t, qemu)
	asock, acmd, _ = startServer(t)
	var sig [2][]any
	for i, sock := range []string{qsock, asock} {
		m, greeting, err := dial(sock, "")
		if err != nil {
			t.Fatal(err)
		}
		if r, err := m.call("qmp_capabilities", nil, nil); err != nil || r["return"] == nil {
			t.Fatalf("negotiation: %v %v", r, err)
		}
		[]*exec.Cmd{qcmd, acmd}[i].Process.Signal(syscall.SIGTERM)
		sig[i] = []any{decode(greeting)}
		for {
			raw, err := m.readMessage()
			if err != nil {
				break
			}
			sig[i] = append(sig[i], decode(raw))
		}
		m.Close()
	}
	if d := compareReplies(sig[0], sig[1]); len(d) > 1 || (len(d) == 1 && d[0] != "greeting: QMP.capabilities") {
		t.Errorf("SIGTERM: aiodemo differs from QEMU at %v\nQEMU:\n%s\naiodemo:\n%s", d, dump(sig[0]), dump(sig[1]))
	} else {
		same++
		summary = append(summary, fmt.Sprintf("%-36s %2d replies  same shape", "SIGTERM", len(sig[0])-1))
	}
	waitQuit("QEMU", qcmd)
	waitQuit("aiodemo", acmd)
	t.Logf("%d streams against %s: %d with the same shape, %d differing by design; the greeting's capabilities differ by design (%s)\n%s",
		len(conformanceStreams)+1, qemu, same, known, knownDiffs["*"]["greeting: QMP.capabilities"], strings.Join(summary, "\n"))
	t.Logf("error descriptions (not compared): %d of %d identical\n%s", sameDesc, errs, strings.Join(descDiffs, "\n"))
}

// errorDesc returns an error reply's description, or "".
func errorDesc(v any) string {
	m, _ := v.(map[string]any)
	e, _ := m["error"].(map[string]any)
	d, _ := e["desc"].(string)
	return d
}

func dump(msgs []any) string {
	var b strings.Builder
	for _, m := range msgs {
		j, _ := json.Marshal(m)
		fmt.Fprintf(&b, "  %s\n", j)
	}
	return b.String()
}

// aiodemo client talks to a real QEMU monitor: QEMU's "\r\n" line ends, its greeting,
// an object typed over two lines, and the SHUTDOWN event before quit's reply.
func TestClientAgainstQEMU(t *testing.T) {
	leakcheck.Handles(t)
	qemu := qemuBinary(t)
	socket, qcmd := startQEMU(t, qemu)
	c := exec.Command(aiodemoBin, "client", "--socket", socket)
	c.Stdin = strings.NewReader("qmp_capabilities\nquery-version\n{\"execute\": \"query-status\",\n \"id\": 7}\nquit\n")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	for _, want := range []string{
		`<- {"QMP": {"version": {"qemu": {`,
		"-> {\"execute\": \"query-status\",\n->  \"id\": 7}",
		`<- {"return": {"qemu": {`,
		`"running": true}, "id": 7}`,
		`"event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}` + "\n<- {\"return\": {}}",
	} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("client output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "\r") {
		t.Errorf("QEMU's \\r\\n reached the output:\n%q", out)
	}
	qcmd.Wait()
}
