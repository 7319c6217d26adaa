package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/glibaio/glibaio/internal/leakcheck"
)

// describe renders what parseRequests made of a stream, one message per element: the
// command and id, or the error class, description and id.
func describe(ms []qmpMessage) []string {
	var out []string
	for _, m := range ms {
		id := ""
		if m.req != nil && m.req.HasID {
			b, _ := json.Marshal(m.req.ID)
			id = " id=" + string(b)
		}
		if m.err != nil {
			out = append(out, fmt.Sprintf("%s: %s%s", m.err.Class, m.err.Desc, id))
			continue
		}
		out = append(out, m.req.Execute+id)
	}
	return out
}

// The checks of qmp_dispatch on one message, with QEMU's descriptions.
func TestParseRequest(t *testing.T) {
	leakcheck.Handles(t)
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{`{"execute":"echo"}`, []string{"echo"}},
		{`  {"execute":"echo","arguments":{"data":1},"id":[1]}  `, []string{"echo id=[1]"}},
		{"", nil},
		{" \t\r\n", nil},
		{`{`, nil}, // waits for its closing brace
		{`[]`, []string{"GenericError: QMP input must be a JSON object"}},
		{"null\n", []string{"GenericError: QMP input must be a JSON object"}},
		{`null`, nil}, // a keyword ends only at the next byte
		{`"x"`, []string{"GenericError: QMP input must be a JSON object"}},
		{`{"arguments":{}}`, []string{"GenericError: QMP input lacks member 'execute'"}},
		{`{"execute":5,"id":"x7"}`, []string{`GenericError: QMP input member 'execute' must be a string id="x7"`}},
		{`{"execute":"x","arguments":[]}`, []string{"GenericError: QMP input member 'arguments' must be an object"}},
		{`{"execute":"x","arguments":null}`, []string{"GenericError: QMP input member 'arguments' must be an object"}},
		{`{"execute":"x","zz":1,"aa":2}`, []string{"GenericError: QMP input member 'aa' is unexpected"}},
		{`{"exec-oob":"x"}`, []string{"GenericError: QMP input member 'exec-oob' is unexpected"}},
		{`{"execute":"x","id":null}`, []string{"x id=null"}},
		{`{'execute':'x','id':'it\'s'}`, []string{`x id="it's"`}},
	} {
		got := describe(parseRequests([]byte(tc.in)))
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// Framing as QEMU's json-streamer: several objects per line, one object over several
// lines, a stray brace after an object, recovery after garbage, the size limit.
func TestParseRequestStream(t *testing.T) {
	leakcheck.Handles(t)
	long := `{"execute":"echo","arguments":{"data":"` + strings.Repeat("x", maxRequest) + `"},"id":1}`
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"two per line", `{"execute":"a"}{"execute":"b","id":2}` + "\n", []string{"a", "b id=2"}},
		{"across lines", "{\"execute\":\n\"a\",\r\n\"id\"\n:\n7}\n", []string{"a id=7"}},
		{"stray brace", `{"execute":"a"}}`, []string{"a", "GenericError: JSON parse error, expecting value"}},
		{"garbage then request", "XYZ{\"execute\":\"a\"}", []string{"GenericError: JSON parse error, stray 'X'", "a"}},
		{"garbage to end of line", "@@ hello\n{\"execute\":\"a\"}", []string{"GenericError: JSON parse error, stray '@'", "a"}},
		{"garbage up to a brace", "@@ hello {\n{\"execute\":\"a\"}}", []string{"GenericError: JSON parse error, stray '@'", "GenericError: JSON parse error, key is not a string in object"}},
		{"0xff forces recovery", "{\"execute\":\"a\",\xff{\"execute\":\"b\"}", []string{"GenericError: JSON parse error, stray '\xff'", "b"}},
		{"control char in string", "{\"execute\":\"a\x01\"}\n{\"execute\":\"b\"}", []string{"GenericError: JSON parse error, stray '\"a\x01'", "GenericError: JSON parse error, expecting value", "b"}},
		{"bad keyword", `{"execute":"a","id":nul}`, []string{"GenericError: JSON parse error, invalid keyword 'nul'"}},
		{"missing colon", `{"execute" "a"}`, []string{"GenericError: JSON parse error, missing : in object pair"}},
		{"missing comma", `{"execute":"a" "id":1}`, []string{"GenericError: JSON parse error, expected separator in dict"}},
		{"key not a string", `{1:2}`, []string{"GenericError: JSON parse error, key is not a string in object"}},
		{"duplicate key", `{"execute":"a","execute":"b"}`, []string{"GenericError: JSON parse error, duplicate key"}},
		{"mismatched", `[}{"execute":"a"}`, []string{"GenericError: JSON parse error, expecting value", "a"}},
		{"unclosed waits", `{"execute":[}`, nil},
		{"bad escape", `{"execute":"\q"}`, []string{"GenericError: JSON parse error, invalid escape sequence in string"}},
		{"noncharacter", `{"execute":"\uFFFF"}`, []string{`GenericError: JSON parse error, \uFFFF is not a valid Unicode character`}},
		{"lone surrogate", `{"execute":"\uD800x"}`, []string{`GenericError: JSON parse error, \uD800 is not a valid Unicode character`}},
		{"surrogate pair", `{"execute":"\uD83D\uDE00"}`, []string{"\U0001F600"}},
		{"bad UTF-8", "{\"execute\":\"\xc3\x28\"}", []string{"GenericError: JSON parse error, invalid UTF-8 sequence in string"}},
		{"modified UTF-8 NUL", "{\"execute\":\"a\xc0\x80\"}", []string{"a\x00"}},
		{"leading zero", `{"id":01}`, []string{"GenericError: JSON parse error, stray '01'", "GenericError: JSON parse error, expecting value"}},
		{"numbers", `{"execute":"n","id":[0,-1,1.5e3,18446744073709551615]}`, []string{"n id=[0,-1,1500,18446744073709551615]"}},
		{"too long", long + "\n" + `{"execute":"after"}`, []string{"GenericError: JSON token size limit exceeded", "after"}},
		{"too deep", strings.Repeat("[", jsonMaxNesting+1) + strings.Repeat("]", jsonMaxNesting+1) + `{"execute":"after"}`,
			[]string{"GenericError: JSON nesting depth limit exceeded", "after"}},
	} {
		got := describe(parseRequests([]byte(tc.in)))
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %q:\n got %q\nwant %q", tc.name, tc.in, got, tc.want)
		}
		// Fed one byte at a time, the stream parses the same.
		var one []qmpMessage
		p := newJSONMessageParser(maxRequest, func(v any, err *qmpError, _ []byte) {
			if err != nil {
				one = append(one, qmpMessage{err: err})
			} else {
				one = append(one, checkRequest(v))
			}
		})
		for i := range len(tc.in) {
			p.feed([]byte{tc.in[i]})
		}
		if got1 := describe(one); !reflect.DeepEqual(got1, got) {
			t.Errorf("%s: byte by byte:\n got %q\nwant %q", tc.name, got1, got)
		}
	}
}

// feed stops after the message whose emit asked for a pause, and the rest of the input
// parses as well afterwards.
func TestParserPause(t *testing.T) {
	leakcheck.Handles(t)
	var got []string
	var p *jsonMessageParser
	p = newJSONMessageParser(maxRequest, func(v any, err *qmpError, raw []byte) {
		got = append(got, string(raw))
		p.pause = true
	})
	p.wantRaw = true
	in := []byte("{\"a\":1} {\"b\":\n2}[3]")
	n := p.feed(in)
	if n != len(`{"a":1}`) || len(got) != 1 {
		t.Fatalf("consumed %d, messages %q", n, got)
	}
	for n < len(in) {
		n += p.feed(in[n:])
	}
	if want := []string{`{"a":1}`, "{\"b\":\n2}", "[3]"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("messages %q, want %q", got, want)
	}
}

// flush ends the input: a token in progress ends, an open object is premature EOI.
func TestParserFlush(t *testing.T) {
	leakcheck.Handles(t)
	for in, want := range map[string][]string{
		`5`:              {"GenericError: QMP input must be a JSON object"},
		`{"a":1`:         {"GenericError: JSON parse error, premature EOI"},
		`{"a":"unterm`:   {`GenericError: JSON parse error, stray '"unterm'`},
		`{"a":1}`:        {"GenericError: QMP input member 'a' is unexpected"},
		"{\"id\":1}\n  ": {"GenericError: QMP input lacks member 'execute' id=1"},
	} {
		var ms []qmpMessage
		p := newJSONMessageParser(maxRequest, func(v any, err *qmpError, _ []byte) {
			if err != nil {
				ms = append(ms, qmpMessage{err: err})
			} else {
				ms = append(ms, checkRequest(v))
			}
		})
		p.feed([]byte(in))
		p.flush()
		if got := describe(ms); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

func TestArgs(t *testing.T) {
	leakcheck.Handles(t)
	ms := parseRequests([]byte(`{"execute":"x","arguments":{"ms":5,"f":1.5,"one":1.0,"s":"x","big":100000000000,"huge":18446744073709551615,"neg":-1,"l":[1]}}`))
	if len(ms) != 1 || ms[0].err != nil {
		t.Fatalf("%+v", ms)
	}
	a := newArgs(ms[0].req.Args)
	if v, e := a.integer("ms", true, 0, 0, 10); e != nil || v != 5 {
		t.Fatal(v, e)
	}
	for _, name := range []string{"f", "one", "s", "l"} {
		if _, e := a.integer(name, true, 0, 0, 10); e == nil || !strings.Contains(e.Desc, "expected: integer") {
			t.Fatalf("%s: %v", name, e)
		}
	}
	for _, name := range []string{"big", "huge", "neg"} {
		if _, e := a.integer(name, true, 0, 0, 10); e == nil || !strings.Contains(e.Desc, "between") {
			t.Fatalf("%s: %v", name, e)
		}
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
	if l, e := a.list("l", true); e != nil || len(l) != 1 {
		t.Fatal(l, e)
	}
	if _, e := a.list("s", true); e == nil || !strings.Contains(e.Desc, "expected: array") {
		t.Fatal(e)
	}
	if e := a.done(); e != nil {
		t.Fatal(e)
	}
	b := newArgs(ms[0].req.Args)
	b.integer("ms", true, 0, 0, 10)
	if e := b.done(); e == nil || !strings.Contains(e.Desc, "'big' is unexpected") {
		t.Fatal(e)
	}
}

// A reply echoes the id exactly when the request had one, null included.
func TestResponseID(t *testing.T) {
	leakcheck.Handles(t)
	for _, tc := range []struct {
		r    response
		want string
	}{
		{response{Return: struct{}{}}, `{"return":{}}`},
		{response{Return: struct{}{}, ID: jsonNull{}, HasID: true}, `{"return":{},"id":null}`},
		{response{Error: genericError("e"), ID: int64(3), HasID: true}, `{"error":{"class":"GenericError","desc":"e"},"id":3}`},
	} {
		b, err := json.Marshal(&tc.r)
		if err != nil || string(b) != tc.want {
			t.Errorf("%+v: %s %v, want %s", tc.r, b, err, tc.want)
		}
	}
}

// FuzzParseRequest feeds byte streams, not lines, to the server's parser. No input
// crashes it; it parses a stream the same whether it arrives at once or split at any
// point; every error has a class and a description and encodes; and a stream that is
// one JSON object by encoding/json's reading, with no duplicate keys, parses to the
// same value.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"execute":"qmp_capabilities"}`, `{"execute":"sleep","arguments":{"ms":10},"id":1}`,
		`{"execute":"sha256","arguments":{"data":"abc","repeat":3}}`, `{`, `[]`, `{"execute":null}`,
		`{"execute":"x","arguments":{"a":{"b":[1,2,{"c":null}]}}}`, "\x00\xff", `{"id":{"x":1}}`,
		"{\"execute\":\"a\"}{\"execute\":\"b\"}\n{\"execute\":\n\"c\"}}", "XYZ{'execute':'\\u00e9'}",
		`{"id":-0.5e-3,"execute":"x"}`, "[[[[[]]]]]{}", `{"execute":"\uD83D\uDE00"}`,
	} {
		f.Add([]byte(s), uint16(3))
	}
	f.Fuzz(func(t *testing.T, stream []byte, split uint16) {
		whole := parseRequests(stream)
		var parts []qmpMessage
		p := newJSONMessageParser(maxRequest, func(v any, err *qmpError, _ []byte) {
			if err != nil {
				parts = append(parts, qmpMessage{err: err})
			} else {
				parts = append(parts, checkRequest(v))
			}
		})
		k := int(split) % (len(stream) + 1)
		p.feed(stream[:k])
		p.feed(stream[k:])
		if a, b := describe(whole), describe(parts); !reflect.DeepEqual(a, b) {
			t.Fatalf("split at %d parses differently:\n%q\n%q", k, a, b)
		}
		for _, m := range whole {
			if m.err != nil {
				if m.err.Class == "" || m.err.Desc == "" {
					t.Fatalf("error without class or description: %+v", m.err)
				}
				r := &response{Error: m.err}
				if m.req != nil {
					r.ID, r.HasID = m.req.ID, m.req.HasID
				}
				if _, err := json.Marshal(r); err != nil {
					t.Fatalf("error reply does not encode: %v", err)
				}
				continue
			}
			if m.req.Execute == "" && !bytes.Contains(stream, []byte(`""`)) && !bytes.Contains(stream, []byte(`''`)) {
				t.Fatalf("accepted request without a command: %+v", m.req)
			}
			a := newArgs(m.req.Args)
			a.integer("ms", false, 0, 0, 60000)
			a.str("data", false)
			a.any("x", false)
			a.done()
		}
		var want any
		trimmed := bytes.TrimSpace(stream)
		if len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(trimmed) && json.Unmarshal(trimmed, &want) == nil &&
			!bytes.Contains(trimmed, []byte(`\u`)) && validModUTF8(trimmed) && !hasDuplicateKeys(trimmed) &&
			!zeroExponent.Match(trimmed) {
			var got []any
			q := newJSONMessageParser(0, func(v any, err *qmpError, _ []byte) {
				if err == nil {
					got = append(got, v)
				}
			})
			q.feed(trimmed)
			if len(got) != 1 {
				t.Fatalf("one JSON object parsed as %d values", len(got))
			}
			g, _ := json.Marshal(got[0])
			var back any
			json.Unmarshal(g, &back)
			if !reflect.DeepEqual(back, want) {
				t.Fatalf("parsed %s, encoding/json reads %v", g, want)
			}
		}
	})
}

// zeroExponent finds numbers such as 0e5, which JSON allows and QEMU's lexer does not
// (IN_ZERO has no exponent).
var zeroExponent = regexp.MustCompile(`(^|[^0-9.])-?0[eE]`)

// validModUTF8 reports whether b is UTF-8 that QEMU accepts in strings: no
// noncharacters (encoding/json replaces bad bytes with U+FFFD where QEMU refuses them).
func validModUTF8(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !validCodepoint(int(r)) {
			return false
		}
	}
	return true
}

// hasDuplicateKeys reports whether a valid JSON text has an object with a repeated key
// (encoding/json keeps the last; QEMU refuses them).
func hasDuplicateKeys(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	var walk func() bool
	walk = func() bool {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, _ := dec.Token()
				if seen[k.(string)] {
					return true
				}
				seen[k.(string)] = true
				if walk() {
					return true
				}
			}
			dec.Token()
		case json.Delim('['):
			for dec.More() {
				if walk() {
					return true
				}
			}
			dec.Token()
		}
		return false
	}
	return walk()
}
