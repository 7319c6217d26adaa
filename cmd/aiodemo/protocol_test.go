package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/glibaio/glibaio/internal/leakcheck"
)

func TestParseRequest(t *testing.T) {
	leakcheck.Handles(t)
	for _, tc := range []struct {
		in, exec, errSub string
	}{
		{`{"execute":"echo"}`, "echo", ""},
		{`  {"execute":"echo","arguments":{"data":1},"id":[1]}  `, "echo", ""},
		{``, "", "empty request"},
		{`{`, "", "JSON parse error"},
		{`[]`, "", "must be a JSON object"},
		{`null`, "", "must be a JSON object"},
		{`"x"`, "", "must be a JSON object"},
		{`{"arguments":{}}`, "", "lacks member 'execute'"},
		{`{"execute":5}`, "", "'execute' must be a string"},
		{`{"execute":"x","arguments":[]}`, "", "'arguments' must be an object"},
		{`{"execute":"x","arguments":null}`, "", "'arguments' must be an object"},
		{`{"execute":"x","zz":1,"aa":2}`, "", "member 'aa' is unexpected"},
	} {
		req, err := parseRequest([]byte(tc.in))
		if tc.errSub != "" {
			if err == nil || !strings.Contains(err.Desc, tc.errSub) || err.Class != "GenericError" {
				t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.errSub)
			}
			continue
		}
		if err != nil || req.Execute != tc.exec {
			t.Errorf("%q: %v %v", tc.in, req, err)
		}
	}
	// The id is echoed even when the request is otherwise invalid.
	req, err := parseRequest([]byte(`{"execute":1,"id":"x7"}`))
	if err == nil || req == nil || string(req.ID) != `"x7"` {
		t.Fatalf("id of an invalid request: %v %v", req, err)
	}
}

func TestArgs(t *testing.T) {
	leakcheck.Handles(t)
	var m map[string]json.RawMessage
	json.Unmarshal([]byte(`{"ms":5,"f":1.5,"s":"x","big":1e20,"neg":-1}`), &m)
	a := newArgs(m)
	if v, e := a.integer("ms", true, 0, 0, 10); e != nil || v != 5 {
		t.Fatal(v, e)
	}
	if _, e := a.integer("f", true, 0, 0, 10); e == nil || !strings.Contains(e.Desc, "expected: integer") {
		t.Fatal(e)
	}
	if _, e := a.integer("s", true, 0, 0, 10); e == nil {
		t.Fatal("a string passed as an integer")
	}
	if _, e := a.integer("big", true, 0, 0, 10); e == nil || !strings.Contains(e.Desc, "between") {
		t.Fatal(e)
	}
	if _, e := a.integer("neg", true, 0, 0, 10); e == nil {
		t.Fatal("a negative value passed")
	}
	if v, e := a.integer("absent", false, 7, 0, 10); e != nil || v != 7 {
		t.Fatal(v, e)
	}
	if _, e := a.integer("absent2", true, 7, 0, 10); e == nil || !strings.Contains(e.Desc, "missing") {
		t.Fatal(e)
	}
	if s, e := a.str("s", true); e != nil || s != "x" {
		t.Fatal(s, e)
	}
	if _, e := a.str("ms", true); e == nil {
		t.Fatal("an integer passed as a string")
	}
	if e := a.done(); e != nil {
		t.Fatal(e)
	}
	b := newArgs(m)
	b.integer("ms", true, 0, 0, 10)
	if e := b.done(); e == nil || !strings.Contains(e.Desc, "'big' is unexpected") {
		t.Fatal(e)
	}
}

// FuzzParseRequest: no input crashes the parser, and a request it accepts always has a
// command name and round-trips its arguments.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"execute":"qmp_capabilities"}`, `{"execute":"sleep","arguments":{"ms":10},"id":1}`,
		`{"execute":"sha256","arguments":{"data":"abc","repeat":3}}`, `{`, `[]`, `{"execute":null}`,
		`{"execute":"x","arguments":{"a":{"b":[1,2,{"c":null}]}}}`, "\x00\xff", `{"id":{"x":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := parseRequest(line)
		if err != nil {
			if err.Class == "" || err.Desc == "" {
				t.Fatalf("error without class or description: %+v", err)
			}
			if _, jerr := json.Marshal(&response{Error: err}); jerr != nil {
				t.Fatalf("error reply does not encode: %v", jerr)
			}
			return
		}
		if _, jerr := json.Marshal(req.Args); jerr != nil {
			t.Fatalf("accepted arguments do not re-encode: %v", jerr)
		}
		a := newArgs(req.Args)
		a.integer("ms", false, 0, 0, 60000)
		a.str("data", false)
		a.any("x", false)
		a.done()
	})
}
