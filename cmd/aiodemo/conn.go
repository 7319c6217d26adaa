package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// monitorConn is the client side of the protocol, over a real socket. What the server
// sends goes through the same stream parser as the server's input (jsonstream.go), so
// it reads any QMP server: aiodemo's one object per line, QEMU's "\r\n" line ends, or
// objects that share or span lines.
type monitorConn struct {
	c    net.Conn
	buf  []byte
	p    *jsonMessageParser
	msgs [][]byte // complete messages, as they arrived
	perr error    // the server sent something that is not JSON
}

// dial connects to the unix socket, or to tcp when it is not empty, and reads the
// greeting.
func dial(socket, tcp string) (*monitorConn, []byte, error) {
	var c net.Conn
	var err error
	if tcp != "" {
		ap, perr := parseTCP(tcp)
		if perr != nil {
			return nil, nil, perr
		}
		c, err = net.DialTimeout("tcp", ap.String(), 5*time.Second)
	} else {
		c, err = net.DialTimeout("unix", socket, 5*time.Second)
	}
	if err != nil {
		return nil, nil, err
	}
	m := newMonitorConn(c)
	greeting, err := m.readMessage()
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("reading the greeting: %w", err)
	}
	return m, greeting, nil
}

func newMonitorConn(c net.Conn) *monitorConn {
	m := &monitorConn{c: c, buf: make([]byte, 64<<10)}
	m.p = newJSONMessageParser(0, func(_ any, err *qmpError, raw []byte) {
		if err != nil {
			if m.perr == nil {
				m.perr = fmt.Errorf("the server sent malformed JSON: %s", err.Desc)
			}
			return
		}
		m.msgs = append(m.msgs, append([]byte(nil), raw...))
	})
	m.p.wantRaw = true
	return m
}

func (m *monitorConn) Close() error { return m.c.Close() }

// sendLine writes one line (a newline is added).
func (m *monitorConn) sendLine(line []byte) error {
	m.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := m.c.Write(append(line, '\n'))
	return err
}

// readMessage returns the next JSON object the server sent, as it arrived.
func (m *monitorConn) readMessage() ([]byte, error) {
	for len(m.msgs) == 0 {
		if m.perr != nil {
			return nil, m.perr
		}
		m.c.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := m.c.Read(m.buf)
		m.p.feed(m.buf[:n])
		if err != nil {
			if errors.Is(err, io.EOF) {
				m.p.flush()
				if len(m.msgs) > 0 {
					break
				}
			}
			return nil, err
		}
	}
	msg := m.msgs[0]
	m.msgs = m.msgs[1:]
	return msg, nil
}

// readReply reads until a reply (not an event) and returns it and the events before it.
func (m *monitorConn) readReply() (reply []byte, events [][]byte, err error) {
	for {
		msg, err := m.readMessage()
		if err != nil {
			return nil, events, err
		}
		var probe struct {
			Event *string `json:"event"`
		}
		if json.Unmarshal(msg, &probe) == nil && probe.Event != nil {
			events = append(events, msg)
			continue
		}
		return msg, events, nil
	}
}

// call sends a command and waits for its reply.
func (m *monitorConn) call(execute string, args any, id any) (map[string]any, error) {
	req := map[string]any{"execute": execute}
	if args != nil {
		req["arguments"] = args
	}
	if id != nil {
		req["id"] = id
	}
	b, _ := json.Marshal(req)
	if err := m.sendLine(b); err != nil {
		return nil, err
	}
	msg, _, err := m.readReply()
	if err != nil {
		return nil, err
	}
	var resp map[string]any
	if err := json.Unmarshal(msg, &resp); err != nil {
		return nil, fmt.Errorf("bad reply %q: %w", msg, err)
	}
	return resp, nil
}
