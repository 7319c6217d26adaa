/* The fair floor of the fd round trip: a C GSource that GLib sees as it sees glibaio's
 * reactor source (cshim/reactor.c, as aiosource sets it up). Prepare and check in C
 * (nothing queued, no timeout), can_recurse set (aiosource sets it, as QEMU does on its
 * AioContext source, so GLib neither blocks nor unblocks the source's fds around a
 * dispatch: blocking them writes and acknowledges GLib's wakeup fd every round), an idle
 * kick eventfd added first (the reactor's), then the watched fd, which dispatch reads in
 * C. Without can_recurse it is the labelled peer: what GLib does for a plain source. */
#include "recurse.h"

#include <unistd.h>

typedef struct {
	GSource base;
	gint64 count;
	int fd;
} cb_rsource;

static gboolean rs_prepare(GSource *s, gint *timeout)
{
	(void)s;
	*timeout = -1;
	return FALSE;
}

static gboolean rs_check(GSource *s)
{
	(void)s;
	return FALSE; /* the unix fd's revents make it ready */
}

static gboolean rs_dispatch(GSource *s, GSourceFunc cb, gpointer data)
{
	(void)cb;
	(void)data;
	cb_rsource *c = (cb_rsource *)s;
	guint64 v;
	if (read(c->fd, &v, sizeof v) == sizeof v)
		c->count++;
	return G_SOURCE_CONTINUE;
}

static GSourceFuncs rs_funcs = {rs_prepare, rs_check, rs_dispatch, NULL, NULL, NULL};

GSource *cb_rsource_new(int fd, int kickfd, int can_recurse)
{
	GSource *s = g_source_new(&rs_funcs, sizeof(cb_rsource));
	cb_rsource *c = (cb_rsource *)s;
	c->fd = fd;
	if (kickfd >= 0)
		g_source_add_unix_fd(s, kickfd, G_IO_IN);
	g_source_add_unix_fd(s, fd, G_IO_IN);
	g_source_set_can_recurse(s, can_recurse);
	return s;
}

gint64 cb_rsource_count(GSource *s) { return ((cb_rsource *)s)->count; }
