package glibloop

import (
	"strconv"
	"strings"
)

// Priority is a GLib source priority: lower values run first.
type Priority int

// GLib's standard priorities.
const (
	PriorityHigh        Priority = -100 // G_PRIORITY_HIGH
	PriorityDefault     Priority = 0    // G_PRIORITY_DEFAULT: timeouts, I/O, AIO contexts
	PriorityHighIdle    Priority = 100  // G_PRIORITY_HIGH_IDLE: GTK resizing
	PriorityDefaultIdle Priority = 200  // G_PRIORITY_DEFAULT_IDLE: IdleAdd
	PriorityLow         Priority = 300  // G_PRIORITY_LOW
)

// IOCondition is a set of GLib I/O conditions (GIOCondition); the values are poll(2)'s.
type IOCondition uint

// The GIOCondition bits.
const (
	IOIn   IOCondition = 1  // G_IO_IN: data to read
	IOPri  IOCondition = 2  // G_IO_PRI: urgent data to read
	IOOut  IOCondition = 4  // G_IO_OUT: writing will not block
	IOErr  IOCondition = 8  // G_IO_ERR: error condition
	IOHup  IOCondition = 16 // G_IO_HUP: hung up
	IONval IOCondition = 32 // G_IO_NVAL: invalid request, the fd is not open
)

// String renders the set as "IN|OUT", or "0" when it is empty.
func (c IOCondition) String() string {
	if c == 0 {
		return "0"
	}
	names := []string{"IN", "PRI", "OUT", "ERR", "HUP", "NVAL"}
	var parts []string
	for i, n := range names {
		if c&(1<<i) != 0 {
			parts = append(parts, n)
			c &^= 1 << i
		}
	}
	if c != 0 {
		parts = append(parts, "0x"+strconv.FormatUint(uint64(c), 16))
	}
	return strings.Join(parts, "|")
}

// PollFD is GLib's GPollFD, laid out identically, for manual driving with
// MainContext.Query and MainContext.Check.
type PollFD struct {
	FD      int32
	Events  uint16
	Revents uint16
}
