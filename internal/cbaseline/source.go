// Package cbaseline holds the pure-C reference sources and drive loops that glibaio's
// benchmarks compare against. cgo is not allowed in _test.go files, so the baselines
// live in this small non-test package; the library never imports it.
package cbaseline

/*
#cgo pkg-config: glib-2.0
#cgo CFLAGS: -I${SRCDIR}/../../cshim
#include "source.h"
*/
import "C"

import (
	"time"
	"unsafe"
)

// NewSource returns a C GSource (one reference) that watches fd for IN and counts its
// dispatches. With prepareCheck it has prepare and check callbacks that do what a Go
// source's default ones do (not ready, no timeout); with readInDispatch its dispatch
// reads the eventfd; with cross each of its callbacks calls an empty Go function, which measures
// the bare cost of C-to-Go crossings on this machine.
func NewSource(fd int, prepareCheck, readInDispatch, cross bool) unsafe.Pointer {
	return unsafe.Pointer(C.cb_source_new(C.int(fd), cbool(prepareCheck), cbool(readInDispatch), cbool(cross)))
}

//export cbNoop
func cbNoop() {}

// Count returns a source's dispatch count.
func Count(src unsafe.Pointer) int64 { return int64(C.cb_source_count((*C.GSource)(src))) }

// Drive runs n rounds of: write efd, one non-blocking g_main_context_iteration and,
// with drain, read efd back, all in C. It returns the elapsed time.
func Drive(ctx unsafe.Pointer, efd int, n int, drain bool) time.Duration {
	return time.Duration(C.cb_drive((*C.GMainContext)(ctx), C.int(efd), C.gint64(n), cbool(drain)))
}

// IdleIterate runs n rounds of g_idle_add-style attach plus one iteration, in C.
func IdleIterate(ctx unsafe.Pointer, n int) time.Duration {
	return time.Duration(C.cb_idle_iterate((*C.GMainContext)(ctx), C.gint64(n)))
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Attach attaches a C source to ctx and returns its id.
func Attach(src, ctx unsafe.Pointer) uint {
	return uint(C.g_source_attach((*C.GSource)(src), (*C.GMainContext)(ctx)))
}

// DestroyUnref destroys a C source and drops the caller's reference.
func DestroyUnref(src unsafe.Pointer) {
	C.g_source_destroy((*C.GSource)(src))
	C.g_source_unref((*C.GSource)(src))
}
