package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"
)

// The monitor protocol follows QMP: one JSON object per line. The server greets a new
// client, expects qmp_capabilities first, answers each command with {"return": ...} or
// {"error": {"class": ..., "desc": ...}} (echoing the request's "id"), and sends
// asynchronous {"event": ...} objects at any time.

// maxLine is the longest request line the server accepts, in bytes.
const maxLine = 64 << 10

// maxHashBytes bounds sha256's input: len(data) * repeat.
const maxHashBytes = 64 << 20

// qmpError is QMP's error object.
type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func genericError(format string, args ...any) *qmpError {
	return &qmpError{Class: "GenericError", Desc: fmt.Sprintf(format, args...)}
}

// request is one parsed command.
type request struct {
	Execute string
	Args    map[string]json.RawMessage
	ID      json.RawMessage // echoed verbatim in the reply; nil when absent
}

// response is a reply: exactly one of Return and Error is set.
type response struct {
	Return any             `json:"return,omitempty"`
	Error  *qmpError       `json:"error,omitempty"`
	ID     json.RawMessage `json:"id,omitempty"`
}

// event is an asynchronous notification.
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

// parseRequest validates one line as a QMP command. It never panics, whatever the
// input (fuzzed by FuzzParseRequest). On error the request, if not nil, carries the id
// so the error reply can echo it.
func parseRequest(line []byte) (*request, *qmpError) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil, genericError("empty request")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(line, &members); err != nil {
		var v any
		if json.Unmarshal(line, &v) == nil {
			return nil, genericError("QMP input must be a JSON object")
		}
		return nil, genericError("JSON parse error: %v", err)
	}
	if members == nil {
		return nil, genericError("QMP input must be a JSON object")
	}
	req := &request{ID: members["id"]}
	var unexpected []string
	for k := range members {
		if k != "execute" && k != "arguments" && k != "id" {
			unexpected = append(unexpected, k)
		}
	}
	if len(unexpected) > 0 {
		sort.Strings(unexpected)
		return req, genericError("QMP input member '%s' is unexpected", unexpected[0])
	}
	raw, ok := members["execute"]
	if !ok {
		return req, genericError("QMP input lacks member 'execute'")
	}
	if err := json.Unmarshal(raw, &req.Execute); err != nil {
		return req, genericError("QMP input member 'execute' must be a string")
	}
	if raw, ok := members["arguments"]; ok {
		if err := json.Unmarshal(raw, &req.Args); err != nil || req.Args == nil {
			return req, genericError("QMP input member 'arguments' must be an object")
		}
	}
	return req, nil
}

// args reads and checks a command's arguments.
type args struct {
	m    map[string]json.RawMessage
	used map[string]bool
}

func newArgs(m map[string]json.RawMessage) *args { return &args{m: m, used: map[string]bool{}} }

// integer returns the named integer argument in [lo, hi]; def when absent and not
// required.
func (a *args) integer(name string, required bool, def, lo, hi int64) (int64, *qmpError) {
	a.used[name] = true
	raw, ok := a.m[name]
	if !ok {
		if required {
			return 0, genericError("Parameter '%s' is missing", name)
		}
		return def, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || f != math.Trunc(f) || math.IsInf(f, 0) {
		return 0, genericError("Invalid parameter type for '%s', expected: integer", name)
	}
	if f < float64(lo) || f > float64(hi) {
		return 0, genericError("Parameter '%s' expects a value between %d and %d", name, lo, hi)
	}
	return int64(f), nil
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
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", genericError("Invalid parameter type for '%s', expected: string", name)
	}
	return s, nil
}

// any returns the named argument as raw JSON.
func (a *args) any(name string, required bool) (json.RawMessage, *qmpError) {
	a.used[name] = true
	raw, ok := a.m[name]
	if !ok && required {
		return nil, genericError("Parameter '%s' is missing", name)
	}
	return raw, nil
}

// done rejects arguments the command does not take.
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
