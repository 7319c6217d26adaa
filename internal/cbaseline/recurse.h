/* The fd round trip's floor: a reactor-shaped C GSource (recurse.c). */
#ifndef GLIBAIO_CBASELINE_RECURSE_H
#define GLIBAIO_CBASELINE_RECURSE_H
#include <glib.h>

/* A source that watches fd (and kickfd, never written, when >= 0) for IN, with prepare
 * and check that report nothing queued, and a dispatch that reads fd; can_recurse as
 * given. One reference, not attached. */
GSource *cb_rsource_new(int fd, int kickfd, int can_recurse);
/* how many dispatches read a value */
gint64 cb_rsource_count(GSource *s);
#endif
