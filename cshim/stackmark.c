/* The stack mark: where C code called from Go runs on the calling thread's system stack
 * (stackmark.go). */
#include "_cgo_export.h"
#include <stdint.h>

/* The address of this frame. noinline, so that it has a frame of its own. */
__attribute__((noinline)) uintptr_t cshim_stack_mark(void)
{
	return (uintptr_t)__builtin_frame_address(0);
}

/* Calls back into Go once, for the check of the fast mark inside a callback. */
void cshim_stack_mark_callback(void) { cshimStackMarkCallback(); }
