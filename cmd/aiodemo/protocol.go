package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"
)

// The monitor protocol is QMP's: a stream of JSON objects in both directions (see
// jsonstream.go for the framing). The server greets a new client (qmp_greeting),
// expects qmp_capabilities first, answers each command with {"return": ...} or
// {"error": {"class": ..., "desc": ...}} echoing the request's "id" if it had one
// (qmp_dispatch), and sends asynchronous {"event": ...} objects at any time.

// maxRequest bounds the bytes of one request's JSON tokens: QEMU's MAX_TOKEN_SIZE, at
// 64 KiB where QEMU allows 64 MiB. A request over it is answered with QEMU's "JSON
// token size limit exceeded" and skipped up to its end.
const maxRequest = 64 << 10

// maxHashBytes bounds sha256's input: len(data) * repeat.
const maxHashBytes = 64 << 20

// QMP error classes (QEMU's QapiErrorClass) that aiodemo uses.
const (
	classGeneric         = "GenericError"
	classCommandNotFound = "CommandNotFound"
)

// qmpError is QMP's error object.
type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func genericError(format string, args ...any) *qmpError {
	return &qmpError{Class: classGeneric, Desc: fmt.Sprintf(format, args...)}
}

// versionTriple is QEMU's VersionTriple.
type versionTriple struct {
	Micro int `json:"micro"`
	Minor int `json:"minor"`
	Major int `json:"major"`
}

// versionInfo is QEMU's VersionInfo, what query-version returns and the greeting
// carries; "qemu" holds aiodemo's own version, where QMP clients look for it.
type versionInfo struct {
	Qemu    versionTriple `json:"qemu"`
	Package string        `json:"package"`
}

// aiodemoVersion is aiodemo's version, reported as QEMU reports its own.
var aiodemoVersion = versionInfo{Qemu: versionTriple{Major: 0, Minor: 2, Micro: 0}, Package: "glibaio aiodemo"}

// greeting is qmp_greeting's message: the version and the capabilities offered. aiodemo
// offers none: it has no out-of-band commands ("oob").
func greeting() any {
	type qmp struct {
		Version      versionInfo `json:"version"`
		Capabilities []string    `json:"capabilities"`
	}
	return map[string]qmp{"QMP": {Version: aiodemoVersion, Capabilities: []string{}}}
}

// request is one command, checked as qmp_dispatch checks it.
type request struct {
	Execute string
	Args    map[string]any
	ID      any  // echoed in the reply when HasID
	HasID   bool // the request had an "id" member (null included)
}

// qmpMessage is what one message of the stream comes to: a request to run, or an error
// to answer (with the request's id, when req is not nil).
type qmpMessage struct {
	req *request
	err *qmpError
}

// checkRequest is qmp_dispatch's look at a parsed message, before the command table:
// a JSON object whose members are execute (a string), arguments (an object) and id
// (anything), in qmp_dispatch_check_obj's words. Members are checked in name order,
// where QEMU's order is its hash table's.
func checkRequest(v any) qmpMessage {
	dict, ok := v.(map[string]any)
	if !ok {
		return qmpMessage{err: genericError("QMP input must be a JSON object")}
	}
	req := &request{}
	req.ID, req.HasID = dict["id"]
	keys := make([]string, 0, len(dict))
	for k := range dict {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch k {
		case "execute":
			s, ok := dict[k].(string)
			if !ok {
				return qmpMessage{req: req, err: genericError("QMP input member 'execute' must be a string")}
			}
			req.Execute = s
		case "arguments":
			a, ok := dict[k].(map[string]any)
			if !ok {
				return qmpMessage{req: req, err: genericError("QMP input member 'arguments' must be an object")}
			}
			req.Args = a
		case "id":
		default:
			// exec-oob too: no out-of-band capability was negotiated.
			return qmpMessage{req: req, err: genericError("QMP input member '%s' is unexpected", k)}
		}
	}
	if _, ok := dict["execute"]; !ok {
		return qmpMessage{req: req, err: genericError("QMP input lacks member 'execute'")}
	}
	return qmpMessage{req: req}
}

// parseRequests runs a byte stream through the streamer and checks each message, as
// the server does with what a client sends: what FuzzParseRequest fuzzes.
func parseRequests(stream []byte) []qmpMessage {
	var out []qmpMessage
	p := newJSONMessageParser(maxRequest, func(v any, err *qmpError, _ []byte) {
		if err != nil {
			out = append(out, qmpMessage{err: err})
			return
		}
		out = append(out, checkRequest(v))
	})
	p.feed(stream)
	return out
}

// response is a reply: exactly one of Return and Error is set. It encodes as QEMU's,
// with "id" only when the request had one.
type response struct {
	Return any
	Error  *qmpError
	ID     any
	HasID  bool
}

// MarshalJSON writes {"return": ...} or {"error": ...}, then "id" if any.
func (r *response) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	var err error
	var part []byte
	if r.Error != nil {
		b.WriteString(`{"error":`)
		part, err = json.Marshal(r.Error)
	} else {
		b.WriteString(`{"return":`)
		part, err = json.Marshal(r.Return)
	}
	if err != nil {
		return nil, err
	}
	b.Write(part)
	if r.HasID {
		if part, err = json.Marshal(r.ID); err != nil {
			return nil, err
		}
		b.WriteString(`,"id":`)
		b.Write(part)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// event is an asynchronous notification (QEMU's qmp_event_build_dict).
type event struct {
	Event     string    `json:"event"`
	Data      any       `json:"data,omitempty"`
	Timestamp timestamp `json:"timestamp"`
}

type timestamp struct {
	Seconds      int64 `json:"seconds"`
	Microseconds int64 `json:"microseconds"`
}

func now() timestamp {
	t := time.Now()
	return timestamp{Seconds: t.Unix(), Microseconds: int64(t.Nanosecond() / 1000)}
}

// args reads and checks a command's arguments, with the messages of QEMU's QObject
// input visitor.
type args struct {
	m    map[string]any
	used map[string]bool
}

func newArgs(m map[string]any) *args { return &args{m: m, used: map[string]bool{}} }

// integer returns the named integer argument in [lo, hi]; def when absent and not
// required. As QEMU's visitor, it takes JSON integers only: 5.0 is not an integer.
func (a *args) integer(name string, required bool, def, lo, hi int64) (int64, *qmpError) {
	a.used[name] = true
	raw, ok := a.m[name]
	if !ok {
		if required {
			return 0, genericError("Parameter '%s' is missing", name)
		}
		return def, nil
	}
	var v int64
	switch n := raw.(type) {
	case int64:
		v = n
	case uint64:
		v = math.MaxInt64 // beyond every bound aiodemo uses
	default:
		return 0, genericError("Invalid parameter type for '%s', expected: integer", name)
	}
	if v < lo || v > hi {
		return 0, genericError("Parameter '%s' expects a value between %d and %d", name, lo, hi)
	}
	return v, nil
}

// str returns the named string argument.
func (a *args) str(name string, required bool) (string, *qmpError) {
	a.used[name] = true
	raw, ok := a.m[name]
	if !ok {
		if required {
			return "", genericError("Parameter '%s' is missing", name)
		}
		return "", nil
	}
	s, ok := raw.(string)
	if !ok {
		return "", genericError("Invalid parameter type for '%s', expected: string", name)
	}
	return s, nil
}

// list returns the named array argument (nil when absent and not required).
func (a *args) list(name string, required bool) ([]any, *qmpError) {
	a.used[name] = true
	raw, ok := a.m[name]
	if !ok {
		if required {
			return nil, genericError("Parameter '%s' is missing", name)
		}
		return nil, nil
	}
	l, ok := raw.([]any)
	if !ok {
		return nil, genericError("Invalid parameter type for '%s', expected: array", name)
	}
	return l, nil
}

// any returns the named argument, whatever its type.
func (a *args) any(name string, required bool) (any, *qmpError) {
	a.used[name] = true
	raw, ok := a.m[name]
	if !ok && required {
		return nil, genericError("Parameter '%s' is missing", name)
	}
	return raw, nil
}

// done rejects arguments the command does not take (visit_check_struct).
func (a *args) done() *qmpError {
	var extra []string
	for k := range a.m {
		if !a.used[k] {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return genericError("Parameter '%s' is unexpected", extra[0])
	}
	return nil
}
