#ifndef GLIBAIO_CBASELINE_URING_READS_H
#define GLIBAIO_CBASELINE_URING_READS_H
#include <glib.h>

/* The C reference for io_uring reads: a loop on liburing that keeps qd 4 KiB reads in
 * flight on fd, at the offsets offs[0..noffs) taken in turn, until n have completed.
 * With qd 1 it is the plain "submit, wait, reap" loop: io_uring_get_sqe,
 * io_uring_prep_read, io_uring_submit, io_uring_wait_cqe, io_uring_cqe_seen. With
 * via_eventfd, the loop instead waits as an event loop does: an eventfd registered with
 * io_uring_register_eventfd, a ppoll on it, an eventfd read, then the reap (the floor of
 * any loop that returns to its poll between completions). Every read must return 4096
 * bytes. Returns the elapsed ns, or -errno. */
gint64 cb_uring_reads(int fd, const gint64 *offs, int noffs, gint64 n, int qd, int via_eventfd);
#endif
