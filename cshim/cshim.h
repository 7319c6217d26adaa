/* cshim: the C half of glibaio's Go-defined GSources.
 *
 * Everything GLib calls back into lives here: the static GSourceFuncs tables whose
 * trampolines reach Go through a source key, the callback cell used by the
 * typed idle/timeout/unix-fd helpers, and the "driver" wrappers through which Go runs
 * GLib code that may call back into Go (iteration, unref, destroy, ...). The wrappers
 * count how deep Go drives on this thread and hand back any panic that a trampoline
 * recovered, so the Go side can raise it again once GLib's frames have returned.
 *
 * Nothing here knows about AIO. No Go pointer is ever stored in C memory.
 */
#ifndef GLIBAIO_CSHIM_H
#define GLIBAIO_CSHIM_H

#include <glib.h>
#include <glib-unix.h>
#include <stdint.h>

/* cshim_source extends GSource with the key of its Go state in the Go-side source table
 * (registry.go): an index and a generation, which the Go side checks on every lookup, so
 * a key that outlived its source never reaches the source that reuses its index. It is
 * an integer, not a runtime/cgo.Handle and never a Go pointer. The finalize trampoline
 * clears it, then the Go side releases it. (The field keeps its old name, handle.) */
typedef struct {
	GSource base;
	uintptr_t handle; /* the source key; 0 once finalized */
} cshim_source;

GSource *cshim_source_new(uintptr_t key, int has_prepare, int has_check);
uintptr_t cshim_source_handle(GSource *s); /* the key of a Go-defined source, else 0 */
int cshim_source_is_go(GSource *s);

/* Result of a driver wrapper: GLib's return value and the handle of a panic that a
 * trampoline recovered during the call (0 if none). */
typedef struct {
	int ret;
	uintptr_t panic;
} cshim_result;

/* Driver wrappers: each runs one GLib call that may call back into Go. */
cshim_result cshim_iteration(GMainContext *c, int may_block);
cshim_result cshim_pending(GMainContext *c);
cshim_result cshim_prepare(GMainContext *c, gint *max_priority);
cshim_result cshim_check(GMainContext *c, gint max_priority, GPollFD *fds, gint n);
cshim_result cshim_dispatch(GMainContext *c);
cshim_result cshim_source_unref(GSource *s);
cshim_result cshim_source_destroy(GSource *s);
cshim_result cshim_remove_child_source(GSource *parent, GSource *child);
cshim_result cshim_context_unref(GMainContext *c);
cshim_result cshim_remove_by_id(GMainContext *c, guint id);
cshim_result cshim_invoke(GMainContext *c, gint priority, uintptr_t id);

/* Typed callback sources. id names a Go function in the callback registry
 * (registry.go); it returns FALSE to remove its source. */
guint cshim_idle_add(GMainContext *c, gint priority, uintptr_t id);
guint cshim_timeout_add(GMainContext *c, gint priority, guint interval_ms, uintptr_t id);
guint cshim_unix_fd_add(GMainContext *c, gint priority, gint fd, GIOCondition cond, uintptr_t id);

/* The loop driver: QEMU's os_host_main_loop_wait over a GMainContext, repeated until
 * quit is set, a trampoline panicked, or (max_iterations > 0) that many iterations ran.
 * The context must be owned by the calling thread. The fd array is C memory that grows
 * until g_main_context_query's answer fits. Once it owns the context it sets the
 * thread's timer slack to 1 ns (cshim_timerslack_init, timerslack.h). */
typedef struct {
	int quit;          /* set by any thread with an atomic store, then wake the context */
	GPollFD *fds;
	gint cap;
	guint64 iterations; /* iterations completed (statistics) */
} cshim_loop;

cshim_loop *cshim_loop_new(void);
void cshim_loop_free(cshim_loop *l);
cshim_result cshim_loop_run(GMainContext *c, cshim_loop *l, gint64 max_iterations);

/* ppoll with a nanosecond timeout (< 0: infinite), retried on EINTR with the time that
 * remains. Returns the ppoll result, or -errno. */
int cshim_ppoll(GPollFD *fds, guint n, gint64 timeout_ns);

/* Counts GLib's criticals and warnings (tests use it to prove misuse is caught before
 * it reaches GLib). Installing chains to GLib's default handler, which still prints. */
void cshim_count_glib_warnings(int on);
gint64 cshim_glib_warnings(void);

/* Panic plumbing used by the Go trampolines. */
int cshim_driven(void);
uintptr_t cshim_take_panic(void);
void cshim_put_panic(uintptr_t h);

#endif
