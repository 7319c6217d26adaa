#define _GNU_SOURCE
#include "uring_reads.h"
#include "clock.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

gint64 cb_uring_reads(int fd, const gint64 *offs, int noffs, gint64 n, int qd, int via_eventfd)
{
	struct io_uring ring;
	int ret = io_uring_queue_init(qd < 8 ? 8 : qd * 2, &ring, 0);
	if (ret < 0)
		return ret;
	int efd = -1;
	if (via_eventfd) {
		efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		ret = efd < 0 ? -errno : io_uring_register_eventfd(&ring, efd); /* liburing returns -errno */
		if (ret < 0)
			goto out;
	}
	char *bufs;
	if (posix_memalign((void **)&bufs, 4096, (size_t)qd * 4096)) {
		ret = -ENOMEM;
		goto out;
	}
	gint64 issued = 0, done = 0;
	int next = 0;
	gint64 start = cshim_now_ns();
	for (int i = 0; i < qd && issued < n; i++, issued++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		io_uring_prep_read(sqe, fd, bufs + (size_t)i * 4096, 4096, offs[next]);
		next = (next + 1) % noffs;
		io_uring_sqe_set_data64(sqe, i);
	}
	while (done < n) {
		ret = io_uring_submit(&ring);
		if (ret < 0)
			goto free;
		struct io_uring_cqe *cqe;
		if (via_eventfd) {
			while (!io_uring_cq_ready(&ring)) {
				struct pollfd p = {.fd = efd, .events = POLLIN};
				if (ppoll(&p, 1, NULL, NULL) < 0 && errno != EINTR) {
					ret = -errno;
					goto free;
				}
				eventfd_t v;
				eventfd_read(efd, &v);
			}
		} else if ((ret = io_uring_wait_cqe(&ring, &cqe)) < 0) {
			goto free;
		}
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			if (cqe->res != 4096) {
				ret = cqe->res < 0 ? cqe->res : -EIO;
				goto free;
			}
			seen++;
			done++;
			if (issued < n) {
				int lane = (int)cqe->user_data;
				struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
				io_uring_prep_read(sqe, fd, bufs + (size_t)lane * 4096, 4096, offs[next]);
				next = (next + 1) % noffs;
				io_uring_sqe_set_data64(sqe, lane);
				issued++;
			}
		}
		io_uring_cq_advance(&ring, seen);
	}
	ret = 0;
free:
	free(bufs);
out:
	if (efd >= 0)
		close(efd);
	io_uring_queue_exit(&ring);
	return ret < 0 ? ret : cshim_now_ns() - start;
}
