#ifndef GLIBAIO_CBASELINE_COSWITCH_H
#define GLIBAIO_CBASELINE_COSWITCH_H
#include <glib.h>

/* The C reference for a coroutine enter+yield: QEMU's switch between two stacks.
 * cb_sigjmp_pairs sets up a second stack once (makecontext, swapcontext), then times n
 * enter+yield pairs of sigsetjmp/siglongjmp switches between the two stacks. Returns
 * the elapsed ns of the n pairs, or -1 if the stack could not be set up. */
gint64 cb_sigjmp_pairs(gint64 n);

/* The same n pairs with swapcontext for both switches (each one saves and restores the
 * signal mask with a syscall). Returns the elapsed ns, or -1. */
gint64 cb_swapcontext_pairs(gint64 n);
#endif
