package cshim

/*
#include <stdint.h>

// The address of this C frame: where C code called from Go runs on the calling OS
// thread's system stack, just below the frames of the C code that called into Go, if
// any. noinline, so that it has a frame of its own.
static __attribute__((noinline)) uintptr_t cshim_stack_mark(void)
{
	return (uintptr_t)__builtin_frame_address(0);
}
*/
import "C"

// StackMark returns where C code called from the calling goroutine runs on its OS
// thread's system stack. It identifies the C frames below the caller: on one thread,
// two calls return the same mark when the same C frames are active under both (the
// same chain of C-to-Go callbacks), and a callback nested one level deeper returns a
// lower one. Go's runtime coroutines may only switch at the callback nesting at which
// they were made; aiosource compares marks to keep that rule. The answer is meaningful
// only while the goroutine stays on its thread (runtime.LockOSThread or a callback).
func StackMark() uintptr { return uintptr(C.cshim_stack_mark()) }
