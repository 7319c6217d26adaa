#include "source.h"
#include "clock.h"
#include "_cgo_export.h"
#include <time.h>
#include <unistd.h>

typedef struct {
	GSource base;
	gint64 count;
	int fd;
	int read_in_dispatch;
	int cross; /* call an empty Go function from each callback: the bare crossing cost */
} cb_source;

static gboolean cb_prepare(GSource *s, gint *timeout)
{
	if (((cb_source *)s)->cross)
		cbNoop();
	*timeout = -1;
	return FALSE;
}

static gboolean cb_check(GSource *s)
{
	if (((cb_source *)s)->cross)
		cbNoop();
	return FALSE; /* the unix fd's revents make it ready */
}

static gboolean cb_dispatch(GSource *s, GSourceFunc cb, gpointer data)
{
	(void)cb;
	(void)data;
	cb_source *c = (cb_source *)s;
	if (c->read_in_dispatch) {
		guint64 v;
		if (read(c->fd, &v, sizeof v) < 0)
			return G_SOURCE_CONTINUE;
	}
	if (c->cross)
		cbNoop();
	c->count++;
	return G_SOURCE_CONTINUE;
}

static GSourceFuncs cb_funcs_d = {NULL, NULL, cb_dispatch, NULL, NULL, NULL};
static GSourceFuncs cb_funcs_pcd = {cb_prepare, cb_check, cb_dispatch, NULL, NULL, NULL};

GSource *cb_source_new(int fd, int prepare_check, int read_in_dispatch, int cross)
{
	GSource *s = g_source_new(prepare_check ? &cb_funcs_pcd : &cb_funcs_d, sizeof(cb_source));
	cb_source *c = (cb_source *)s;
	c->fd = fd;
	c->read_in_dispatch = read_in_dispatch;
	c->cross = cross;
	g_source_add_unix_fd(s, fd, G_IO_IN);
	return s;
}

gint64 cb_source_count(GSource *s) { return ((cb_source *)s)->count; }

/* The crossing benchmark's loop: write the eventfd, run one iteration, and (drain)
 * read it back here in C. Returns the elapsed ns. */
gint64 cb_drive(GMainContext *c, int efd, gint64 n, int drain)
{
	guint64 one = 1, v;
	gint64 start = cshim_now_ns();
	for (gint64 i = 0; i < n; i++) {
		if (write(efd, &one, sizeof one) < 0)
			return -1;
		g_main_context_iteration(c, FALSE);
		if (drain && read(efd, &v, sizeof v) < 0)
			return -1;
	}
	return cshim_now_ns() - start;
}

static gboolean cb_idle_once(gpointer data)
{
	(*(gint64 *)data)++;
	return G_SOURCE_REMOVE;
}

/* The floor for one GLib source per idle callback: g_idle_add plus an iteration. */
gint64 cb_idle_iterate(GMainContext *c, gint64 n)
{
	gint64 count = 0;
	gint64 start = cshim_now_ns();
	for (gint64 i = 0; i < n; i++) {
		GSource *s = g_idle_source_new();
		g_source_set_callback(s, cb_idle_once, &count, NULL);
		g_source_attach(s, c);
		g_source_unref(s);
		g_main_context_iteration(c, FALSE);
	}
	return count == n ? cshim_now_ns() - start : -1;
}
