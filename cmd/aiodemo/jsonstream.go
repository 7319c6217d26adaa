package main

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// QMP is a JSON stream, not a line protocol: QEMU's monitor (monitor_qmp_read) feeds
// every byte it reads to a JSONMessageParser, whose lexer (json-lexer.c) cuts the bytes
// into tokens and whose streamer (json_message_process_token in json-streamer.c) hands
// a run of tokens to the parser (json_parser_parse) as soon as its braces and brackets
// balance. So one line may carry several objects, one object may span lines, and a
// stray '}' after an object is reported on its own. After a lexical error the lexer
// skips input until a structural character, a control character or byte 0xFE/0xFF
// (IN_RECOVERY), so the next request on the stream is still understood.
//
// This file is that machinery written afresh in Go, with QEMU's grammar (single-quoted
// strings and the \' escape included, interpolation left out), its error messages
// ("JSON parse error, ..."), its limits and its modified UTF-8 rules. One difference:
// QEMU's size limit is 64 MiB per request and it goes on lexing the rest of an
// over-long request as if it were new input, which reports a cascade of errors; here
// the limit is the caller's (aiodemo uses 64 KiB), and the rest of an over-long
// request is skipped up to its end (its braces and brackets balance again, or a lexical
// error forces recovery), so it costs exactly one error reply.

// jsonTokenType is QEMU's JSONTokenType.
type jsonTokenType uint8

const (
	jsonLCurly jsonTokenType = iota + 1
	jsonRCurly
	jsonLSquare
	jsonRSquare
	jsonColon
	jsonComma
	jsonInteger
	jsonFloat
	jsonKeyword
	jsonString
)

// jsonToken is one token: its type and its text as it appeared in the input.
type jsonToken struct {
	typ jsonTokenType
	str string
}

// Lexer states (json-lexer.c's enum json_lexer_state).
const (
	inStart = iota
	inRecovery
	inDQString
	inDQStringEscape
	inSQString
	inSQStringEscape
	inZero
	inSign
	inDigits
	inMantissa
	inMantissaDigits
	inExpE
	inExpSign
	inExpDigits
	inKeyword
)

// jsonMaxNesting is QEMU's MAX_NESTING: the deepest braces and brackets may go.
const jsonMaxNesting = 1024

// jsonMessageParser is QEMU's JSONMessageParser: a lexer and a streamer in one. feed it
// bytes as they arrive; it calls emit once per complete JSON value, or once per error,
// in stream order, exactly as json_message_parser_feed calls its emit callback.
type jsonMessageParser struct {
	// emit receives each message: its value, or its error; raw is the message's text
	// as it arrived (from its first token to its last), valid only during the call.
	emit func(v any, err *qmpError, raw []byte)
	// limit bounds the bytes of one message's tokens (QEMU's MAX_TOKEN_SIZE).
	limit int

	state      int
	token      []byte      // the token being lexed
	tokens     []jsonToken // the message so far (parser->tokens)
	tokenSize  int         // their total length
	brace      int         // brace_count
	bracket    int         // bracket_count
	raw        []byte      // the message's text so far, if wantRaw
	wantRaw    bool        // keep raw: the client prints messages as they arrived
	discarding bool        // skipping the rest of a message that broke a limit
	pause      bool        // set by emit: feed returns after the current byte
}

func newJSONMessageParser(limit int, emit func(v any, err *qmpError, raw []byte)) *jsonMessageParser {
	return &jsonMessageParser{emit: emit, limit: limit}
}

// feed lexes data (json_message_parser_feed). It returns how many bytes it consumed:
// all of them, unless emit set p.pause, in which case it stops after the byte that
// completed that message, so the caller can apply back-pressure and feed the rest
// later.
func (p *jsonMessageParser) feed(data []byte) int {
	p.pause = false
	for i := 0; i < len(data); {
		if p.state == inDQString || p.state == inSQString {
			if n := p.stringRun(data[i:]); n > 0 {
				i += n
				continue
			}
		}
		p.feedByte(data[i])
		i++
		if p.pause {
			p.pause = false
			return i
		}
	}
	return len(data)
}

// stringRun takes the plain bytes at the start of data, inside a string token, in
// bulk: what feedByte would do one byte at a time. It stops where the size limit
// leaves no room, and returns 0 when the first byte needs the lexer or there is no
// room left (feedByte then reports the limit).
func (p *jsonMessageParser) stringRun(data []byte) int {
	quote := byte('"')
	if p.state == inSQString {
		quote = '\''
	}
	end := len(data)
	if p.limit > 0 && !p.discarding {
		end = min(end, max(0, p.limit-p.tokenSize-len(p.token)))
	}
	n := 0
	for n < end {
		c := data[n]
		if c == quote || c == '\\' || c < 0x20 || c > 0xFD {
			break
		}
		n++
	}
	if n == 0 || p.discarding {
		return n
	}
	p.token = append(p.token, data[:n]...)
	if p.wantRaw {
		p.raw = append(p.raw, data[:n]...)
	}
	return n
}

// flush ends the input (json_message_parser_flush): a token still being lexed is
// completed or reported, and tokens still waiting for their closing brace go to the
// parser, which reports them as premature end of input. QEMU's monitor never flushes
// (a client that hangs up mid-request is simply forgotten); the client side does, at
// end of file.
func (p *jsonMessageParser) flush() {
	switch p.state {
	case inZero, inDigits:
		p.endToken(jsonInteger)
	case inMantissaDigits, inExpDigits:
		p.endToken(jsonFloat)
	case inKeyword:
		p.endToken(jsonKeyword)
	case inStart, inRecovery:
	default:
		p.lexError()
	}
	p.state = inStart
	if len(p.tokens) > 0 && !p.discarding {
		p.out(jsonParse(p.tokens)) // tokens left wait for a brace: premature EOI
	}
	p.reset()
}

func (p *jsonMessageParser) reset() {
	p.tokens = p.tokens[:0]
	p.tokenSize = 0
	p.brace, p.bracket = 0, 0
	p.raw = p.raw[:0]
	p.discarding = false
}

// feedByte is json_lexer_feed_char: it runs the byte through the lexer, which may look
// at it twice when it ends a token that needed lookahead (a number, a keyword).
func (p *jsonMessageParser) feedByte(ch byte) {
	for {
		again := p.step(ch)
		if !again {
			return
		}
	}
}

// step moves the lexer by one byte and reports whether the byte must be looked at
// again from the new state (QEMU's LOOKAHEAD).
func (p *jsonMessageParser) step(ch byte) bool {
	consume := func(next int) bool {
		p.take(ch)
		p.state = next
		return false
	}
	switch p.state {
	case inRecovery:
		switch {
		case ch == '\t':
			return false
		case ch < 0x20, ch >= 0xFE, ch == '[', ch == ']', ch == '{', ch == '}', ch == ':', ch == ',':
			p.state = inStart
			return true
		}
		return false
	case inStart:
		switch {
		case ch == ' ', ch == '\t', ch == '\r', ch == '\n':
			if len(p.tokens) > 0 {
				p.keepRaw(ch)
			}
			return false
		case ch == '"':
			return consume(inDQString)
		case ch == '\'':
			return consume(inSQString)
		case ch == '0':
			return consume(inZero)
		case ch >= '1' && ch <= '9':
			return consume(inDigits)
		case ch == '-':
			return consume(inSign)
		case ch >= 'a' && ch <= 'z':
			return consume(inKeyword)
		}
		var t jsonTokenType
		switch ch {
		case '{':
			t = jsonLCurly
		case '}':
			t = jsonRCurly
		case '[':
			t = jsonLSquare
		case ']':
			t = jsonRSquare
		case ':':
			t = jsonColon
		case ',':
			t = jsonComma
		default:
			p.take(ch)
			p.lexError()
			return false
		}
		p.take(ch)
		p.endToken(t)
		return false
	case inDQString, inSQString:
		quote := byte('"')
		if p.state == inSQString {
			quote = '\''
		}
		switch {
		case ch == quote:
			p.take(ch)
			p.endToken(jsonString)
		case ch == '\\':
			return consume(p.state + 1) // the matching escape state
		case ch >= 0x20 && ch <= 0xFD:
			p.take(ch)
		default:
			p.take(ch)
			p.lexError()
		}
		return false
	case inDQStringEscape, inSQStringEscape:
		if ch >= 0x20 && ch <= 0xFD {
			return consume(p.state - 1)
		}
		p.take(ch)
		p.lexError()
		return false
	case inZero:
		switch {
		case ch >= '0' && ch <= '9':
			p.take(ch)
			p.lexError()
			return false
		case ch == '.':
			return consume(inMantissa)
		}
		p.endToken(jsonInteger)
		return true
	case inSign:
		switch {
		case ch == '0':
			return consume(inZero)
		case ch >= '1' && ch <= '9':
			return consume(inDigits)
		}
	case inDigits:
		switch {
		case ch >= '0' && ch <= '9':
			return consume(inDigits)
		case ch == 'e', ch == 'E':
			return consume(inExpE)
		case ch == '.':
			return consume(inMantissa)
		}
		p.endToken(jsonInteger)
		return true
	case inMantissa:
		if ch >= '0' && ch <= '9' {
			return consume(inMantissaDigits)
		}
	case inMantissaDigits:
		switch {
		case ch >= '0' && ch <= '9':
			return consume(inMantissaDigits)
		case ch == 'e', ch == 'E':
			return consume(inExpE)
		}
		p.endToken(jsonFloat)
		return true
	case inExpE:
		switch {
		case ch == '-', ch == '+':
			return consume(inExpSign)
		case ch >= '0' && ch <= '9':
			return consume(inExpDigits)
		}
	case inExpSign:
		if ch >= '0' && ch <= '9' {
			return consume(inExpDigits)
		}
	case inExpDigits:
		if ch >= '0' && ch <= '9' {
			return consume(inExpDigits)
		}
		p.endToken(jsonFloat)
		return true
	case inKeyword:
		if ch >= 'a' && ch <= 'z' {
			return consume(inKeyword)
		}
		p.endToken(jsonKeyword)
		return true
	}
	// Any other byte in a state that has no transition for it is a lexical error,
	// and the byte is part of the bad token, as in QEMU.
	p.take(ch)
	p.lexError()
	return false
}

// take adds a byte to the token being lexed, and checks the message's size limit as the
// token grows, so that no token can grow without bound.
func (p *jsonMessageParser) take(ch byte) {
	p.keepRaw(ch)
	if p.discarding {
		p.token = p.token[:0]
		return
	}
	p.token = append(p.token, ch)
	if p.limit > 0 && p.tokenSize+len(p.token) > p.limit {
		p.limitError("JSON token size limit exceeded")
	}
}

// keepRaw records a byte of the message's text, for a parser that wants it.
func (p *jsonMessageParser) keepRaw(ch byte) {
	if p.wantRaw && !p.discarding {
		p.raw = append(p.raw, ch)
	}
}

// limitError reports a message that broke a limit, and skips the rest of it.
func (p *jsonMessageParser) limitError(desc string) {
	p.out(nil, genericError("%s", desc))
	p.tokens = p.tokens[:0]
	p.tokenSize = 0
	p.token = p.token[:0]
	p.raw = p.raw[:0]
	p.discarding = true
	if p.brace == 0 && p.bracket == 0 && p.state == inStart {
		p.discarding = false
	}
}

// lexError is the lexer's JSON_ERROR: the streamer reports the bad token (whatever
// message was in progress is dropped) and the lexer goes to IN_RECOVERY.
func (p *jsonMessageParser) lexError() {
	if p.discarding {
		p.reset()
	} else {
		tok := string(p.token)
		p.tokens = p.tokens[:0]
		p.out(nil, genericError("JSON parse error, stray '%s'", tok))
		p.reset()
	}
	p.token = p.token[:0]
	p.state = inRecovery
}

// endToken is json_message_process_token for a complete token.
func (p *jsonMessageParser) endToken(t jsonTokenType) {
	p.state = inStart
	switch t {
	case jsonLCurly:
		p.brace++
	case jsonRCurly:
		p.brace--
	case jsonLSquare:
		p.bracket++
	case jsonRSquare:
		p.bracket--
	}
	if p.discarding {
		p.token = p.token[:0]
		if !p.open() {
			p.reset() // the over-long message ended: back to normal
		}
		return
	}
	if p.brace+p.bracket > jsonMaxNesting {
		p.token = p.token[:0]
		p.limitError("JSON nesting depth limit exceeded")
		return
	}
	p.tokens = append(p.tokens, jsonToken{typ: t, str: string(p.token)})
	p.tokenSize += len(p.token)
	p.token = p.token[:0]
	if p.open() {
		return // wait for the closing brace or bracket
	}
	v, err := jsonParse(p.tokens)
	p.out(v, err)
	p.reset()
}

// idle reports whether the parser is between messages: no token or message begun.
func (p *jsonMessageParser) idle() bool {
	return (p.state == inStart || p.state == inRecovery) && len(p.tokens) == 0 && !p.discarding
}

// open reports whether the message still waits for a closing brace or bracket; once
// they balance, or one goes negative, the tokens go to the parser.
func (p *jsonMessageParser) open() bool {
	return (p.brace > 0 || p.bracket > 0) && p.brace >= 0 && p.bracket >= 0
}

func (p *jsonMessageParser) out(v any, err *qmpError) {
	raw := p.raw
	p.emit(v, err, raw)
}

// jsonParse is json_parser_parse: a value from a run of tokens whose braces balance (or
// went negative). Errors are QEMU's "JSON parse error, ..." texts; the first one found
// wins, as parse_error records only the first.
func jsonParse(tokens []jsonToken) (any, *qmpError) {
	ps := &jsonParser{tokens: tokens}
	v := ps.value()
	if ps.err != nil {
		return nil, ps.err
	}
	return v, nil
}

type jsonParser struct {
	tokens []jsonToken
	pos    int
	err    *qmpError
}

func (ps *jsonParser) fail(format string, args ...any) {
	if ps.err == nil {
		ps.err = genericError("JSON parse error, "+format, args...)
	}
}

func (ps *jsonParser) peek() *jsonToken {
	if ps.pos < len(ps.tokens) {
		return &ps.tokens[ps.pos]
	}
	return nil
}

func (ps *jsonParser) pop() *jsonToken {
	t := ps.peek()
	if t != nil {
		ps.pos++
	}
	return t
}

// value is parse_value.
func (ps *jsonParser) value() any {
	t := ps.peek()
	if t == nil {
		ps.fail("premature EOI")
		return nil
	}
	switch t.typ {
	case jsonLCurly:
		return ps.object()
	case jsonLSquare:
		return ps.array()
	case jsonString:
		ps.pop()
		return ps.str(t)
	case jsonInteger, jsonFloat:
		ps.pop()
		return parseNumber(t)
	case jsonKeyword:
		ps.pop()
		switch t.str {
		case "true":
			return true
		case "false":
			return false
		case "null":
			return jsonNull{}
		}
		ps.fail("invalid keyword '%s'", t.str)
		return nil
	}
	ps.fail("expecting value")
	return nil
}

// jsonNull is JSON's null (QEMU's QNull): a Go nil stands for "no value" in the parser.
type jsonNull struct{}

// MarshalJSON writes null.
func (jsonNull) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

// object is parse_object and parse_pair.
func (ps *jsonParser) object() any {
	ps.pop() // '{'
	dict := map[string]any{}
	t := ps.peek()
	if t == nil {
		ps.fail("premature EOI")
		return nil
	}
	if t.typ == jsonRCurly {
		ps.pop()
		return dict
	}
	for {
		if !ps.pair(dict) {
			return nil
		}
		t = ps.pop()
		if t == nil {
			ps.fail("premature EOI")
			return nil
		}
		if t.typ == jsonRCurly {
			return dict
		}
		if t.typ != jsonComma {
			ps.fail("expected separator in dict")
			return nil
		}
	}
}

func (ps *jsonParser) pair(dict map[string]any) bool {
	if ps.peek() == nil {
		ps.fail("premature EOI")
		return false
	}
	k := ps.value()
	key, ok := k.(string)
	if !ok {
		ps.fail("key is not a string in object")
		return false
	}
	t := ps.pop()
	if t == nil {
		ps.fail("premature EOI")
		return false
	}
	if t.typ != jsonColon {
		ps.fail("missing : in object pair")
		return false
	}
	v := ps.value()
	if v == nil {
		ps.fail("Missing value in dict")
		return false
	}
	if _, dup := dict[key]; dup {
		ps.fail("duplicate key")
		return false
	}
	dict[key] = v
	return true
}

// array is parse_array.
func (ps *jsonParser) array() any {
	ps.pop() // '['
	list := []any{}
	t := ps.peek()
	if t == nil {
		ps.fail("premature EOI")
		return nil
	}
	if t.typ == jsonRSquare {
		ps.pop()
		return list
	}
	for {
		v := ps.value()
		if v == nil {
			ps.fail("expecting value")
			return nil
		}
		list = append(list, v)
		t = ps.pop()
		if t == nil {
			ps.fail("premature EOI")
			return nil
		}
		if t.typ == jsonRSquare {
			return list
		}
		if t.typ != jsonComma {
			ps.fail("expected separator in list")
			return nil
		}
	}
}

// parseNumber is parse_literal for numbers: an integer is an int64 if it fits, else a
// uint64 if it fits, else a float64, as QEMU's QNum.
func parseNumber(t *jsonToken) any {
	if t.typ == jsonInteger {
		if i, err := strconv.ParseInt(t.str, 10, 64); err == nil {
			return i
		}
		if t.str[0] != '-' {
			if u, err := strconv.ParseUint(t.str, 10, 64); err == nil {
				return u
			}
		}
	}
	// The lexer admits only well-formed numbers; one too large is ±Inf, as strtod's
	// HUGE_VAL in QEMU.
	f, _ := strconv.ParseFloat(t.str, 64)
	return f
}

// str is parse_string: the escapes of RFC 8259 plus \', \u with surrogate pairs, and
// modified UTF-8 (\xC0\x80 for U+0000); invalid code points are rejected.
func (ps *jsonParser) str(t *jsonToken) any {
	s := t.str
	quote := s[0]
	var b strings.Builder
	for i := 1; s[i] != quote; {
		c := s[i]
		if c != '\\' {
			cp, n := modUTF8Codepoint(s[i:])
			if cp < 0 {
				ps.fail("invalid UTF-8 sequence in string")
				return nil
			}
			b.WriteRune(rune(cp))
			i += n
			continue
		}
		beg := i
		i++
		e := s[i]
		i++
		switch e {
		case '"', '\'', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			cp := cvt4hex(s[i:])
			i += 4
			if cp >= 0xD800 && cp <= 0xDBFF && strings.HasPrefix(s[i:], `\u`) {
				trailing := cvt4hex(s[i+2:])
				if trailing >= 0xDC00 && trailing <= 0xDFFF {
					cp = 0x10000 + (cp&0x3FF)<<10 | trailing&0x3FF
					i += 6
				} else {
					cp = -1
				}
			}
			if !validCodepoint(cp) {
				end := min(i, len(s)-1)
				ps.fail("%s is not a valid Unicode character", s[beg:end])
				return nil
			}
			b.WriteRune(rune(cp))
		default:
			ps.fail("invalid escape sequence in string")
			return nil
		}
	}
	return b.String()
}

// cvt4hex reads four hex digits, or returns -1.
func cvt4hex(s string) int {
	if len(s) < 4 {
		return -1
	}
	v, err := strconv.ParseUint(s[:4], 16, 16)
	if err != nil {
		return -1
	}
	return int(v)
}

// validCodepoint is QEMU's is_valid_codepoint: a Unicode scalar value that is not a
// noncharacter.
func validCodepoint(cp int) bool {
	switch {
	case cp < 0 || cp > 0x10FFFF:
		return false
	case cp >= 0xFDD0 && cp <= 0xFDEF, cp&0xFFFE == 0xFFFE:
		return false
	case cp >= 0xD800 && cp <= 0xDFFF:
		return false
	}
	return true
}

// modUTF8Codepoint is mod_utf8_codepoint: the code point at the start of s and its
// length, or -1. It accepts \xC0\x80 for U+0000 and rejects other overlong forms,
// surrogates and noncharacters.
func modUTF8Codepoint(s string) (int, int) {
	if s[0] == 0xC0 && len(s) > 1 && s[1] == 0x80 {
		return 0, 2
	}
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && n <= 1 {
		return -1, max(n, 1)
	}
	if !validCodepoint(int(r)) {
		return -1, n
	}
	return int(r), n
}
