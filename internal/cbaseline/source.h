/* The reference C GSource that glibaio's crossing and fd benchmarks measure against,
 * and the C loops that drive it. Not used by the library. */
#ifndef GLIBAIO_CBASELINE_SOURCE_H
#define GLIBAIO_CBASELINE_SOURCE_H
#include <glib.h>
#include <stdint.h>

GSource *cb_source_new(int fd, int prepare_check, int read_in_dispatch, int cross);
gint64 cb_source_count(GSource *s);
gint64 cb_drive(GMainContext *c, int efd, gint64 n, int drain);
gint64 cb_idle_iterate(GMainContext *c, gint64 n);
#endif
