package cshim

/*
#include <stdint.h>
uintptr_t cshim_stack_mark(void);
void cshim_stack_mark_callback(void);
*/
import "C"

import (
	"unsafe"
	_ "unsafe" // for go:linkname
)

// StackMark returns where C code called from the calling goroutine runs on its OS
// thread's system stack. It identifies the C frames below the caller: on one thread,
// two calls return the same mark when the same C frames are active under both (the
// same chain of C-to-Go callbacks), and a callback nested one level deeper returns a
// lower one. Go's runtime coroutines may only switch at the callback nesting at which
// they were made; aiosource compares marks to keep that rule. The answer is meaningful
// only while the goroutine stays on its thread (runtime.LockOSThread or a callback).
//
// The mark is the system stack pointer that the runtime saves for the thread's next
// call into C: the g0 goroutine's saved stack pointer, which a C-to-Go callback sets to
// the C frame it came from and restores on return. Reading it costs two loads. Its
// place in the runtime's structures is checked once, against the frame address of a
// real call into C, outside and inside a callback (checkFastMark); if the check fails
// (a Go release that moved it), StackMark makes that call into C instead, about 50 ns.
func StackMark() uintptr {
	if fastMark {
		return g0SP()
	}
	return cMark()
}

// StackMarkCheap reports whether StackMark is the two loads, not a call into C.
func StackMarkCheap() bool { return fastMark }

// cMark is the address of a C frame called from here.
func cMark() uintptr { return uintptr(C.cshim_stack_mark()) }

// getm returns the runtime's M of the calling goroutine (the linkname the runtime keeps
// for packages outside it, go.dev/issue/67401), as a pointer: an M's first field is its
// g0, the goroutine that owns the thread's system stack.
//
//go:linkname getm runtime.getm
func getm() unsafe.Pointer

// g0SchedSP is the offset of g.sched.sp in the runtime's g on 64-bit platforms: after
// stack (2 words), stackguard0, stackguard1, _panic, _defer and m.
const g0SchedSP = 7 * 8

func g0SP() uintptr {
	g0 := *(*unsafe.Pointer)(getm())
	return *(*uintptr)(unsafe.Add(g0, g0SchedSP))
}

// fastMark is set once checkFastMark has found g0SP to be the thread's C stack.
var fastMark bool

// markCheck carries the callback's findings back to checkFastMark.
var markCheck struct{ g0, c uintptr }

//export cshimStackMarkCallback
func cshimStackMarkCallback() { markCheck.g0, markCheck.c = g0SP(), cMark() }

// checkFastMark decides whether g0SP is the thread's saved system stack pointer: just
// above the frame of a call into C, both from plain Go and from a C-to-Go callback,
// where it must be lower. It runs on one locked thread (init's).
func checkFastMark() bool {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		return false
	}
	near := func(g0, c uintptr) bool { return g0 > c && g0-c < 4096 }
	outG0, outC := g0SP(), cMark()
	C.cshim_stack_mark_callback()
	in := markCheck
	return near(outG0, outC) && near(in.g0, in.c) && in.g0 < outG0 && g0SP() == outG0
}

func init() { fastMark = checkFastMark() }
