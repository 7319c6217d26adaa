package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// monitorConn is the client side of the protocol, over a real socket.
type monitorConn struct {
	c net.Conn
	r *bufio.Reader
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
	m := &monitorConn{c: c, r: bufio.NewReaderSize(c, 1<<20)}
	greeting, err := m.readLine()
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("reading the greeting: %w", err)
	}
	return m, greeting, nil
}

func (m *monitorConn) Close() error { return m.c.Close() }

// sendLine writes one line (a newline is added).
func (m *monitorConn) sendLine(line []byte) error {
	m.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := m.c.Write(append(line, '\n'))
	return err
}

// readLine returns the next line the server sent, without its newline.
func (m *monitorConn) readLine() ([]byte, error) {
	m.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := m.r.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	return line[:len(line)-1], nil
}

// readReply reads until a reply (not an event) and returns it and the events before it.
func (m *monitorConn) readReply() (reply []byte, events [][]byte, err error) {
	for {
		line, err := m.readLine()
		if err != nil {
			return nil, events, err
		}
		var probe struct {
			Event *string `json:"event"`
		}
		if json.Unmarshal(line, &probe) == nil && probe.Event != nil {
			events = append(events, line)
			continue
		}
		return line, events, nil
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
	line, _, err := m.readReply()
	if err != nil {
		return nil, err
	}
	var resp map[string]any
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("bad reply %q: %w", line, err)
	}
	return resp, nil
}
