/* The io_uring of an AioContext's file I/O engine: see uring.h. */
#define _GNU_SOURCE
#include "uring.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct cshim_ring {
	struct io_uring ring;
	int efd;
};

/* The opcodes the engine uses; a kernel before 5.6 lacks IORING_OP_READ and WRITE. */
static int ring_has_ops(struct io_uring *ring)
{
	static const int ops[] = {IORING_OP_READ, IORING_OP_WRITE, IORING_OP_FSYNC, IORING_OP_ASYNC_CANCEL};
	struct io_uring_probe *p = io_uring_get_probe_ring(ring);
	if (!p)
		return 0;
	int ok = 1;
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
		ok = ok && io_uring_opcode_supported(p, ops[i]);
	io_uring_free_probe(p);
	return ok;
}

int cshim_ring_new(unsigned sq_entries, unsigned cq_entries, cshim_ring **out, int *efd_out)
{
	cshim_ring *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	/* QEMU's luring_init: io_uring_queue_init(MAX_ENTRIES, ...). A CQ larger than the SQ
	 * lets the Go side keep more requests in flight than one submission carries. */
	struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE, .cq_entries = cq_entries};
	int ret = io_uring_queue_init_params(sq_entries, &r->ring, &p);
	if (ret < 0) {
		free(r);
		return ret;
	}
	if (!ring_has_ops(&r->ring)) {
		ret = -EOPNOTSUPP;
		goto fail_ring;
	}
	r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->efd < 0) {
		ret = -errno;
		goto fail_ring;
	}
	/* Every completion the kernel posts adds to the eventfd: the context's fd handler
	 * on it plays QEMU's qemu_luring_completion_cb. */
	ret = io_uring_register_eventfd(&r->ring, r->efd);
	if (ret < 0) {
		close(r->efd);
		goto fail_ring;
	}
	*out = r;
	*efd_out = r->efd;
	return 0;
fail_ring:
	io_uring_queue_exit(&r->ring);
	free(r);
	return ret;
}

void cshim_ring_free(cshim_ring *r)
{
	io_uring_unregister_eventfd(&r->ring);
	close(r->efd);
	io_uring_queue_exit(&r->ring);
	free(r);
}

/* Prepares one SQE (the switch of QEMU's luring_do_submit). */
static void ring_prep(struct io_uring_sqe *sqe, const cshim_ring_op *op)
{
	void *buf = (void *)(uintptr_t)op->addr;
	switch (op->op) {
	case CSHIM_RING_READ:
		io_uring_prep_read(sqe, op->fd, buf, op->len, op->off);
		break;
	case CSHIM_RING_WRITE:
		io_uring_prep_write(sqe, op->fd, buf, op->len, op->off);
		break;
	case CSHIM_RING_FSYNC:
		io_uring_prep_fsync(sqe, op->fd, 0);
		break;
	case CSHIM_RING_FDATASYNC:
		io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
		break;
	case CSHIM_RING_CANCEL:
		io_uring_prep_cancel64(sqe, op->off, 0);
		break;
	default:
		/* Unknown kinds become a no-op whose CQE reports EINVAL back to Go. */
		io_uring_prep_nop(sqe);
		sqe->opcode = 0xff;
		break;
	}
	io_uring_sqe_set_data64(sqe, op->user_data);
}

/* Copies up to n ready CQEs out and marks them seen (luring_process_completions' reap,
 * without its callbacks, which are Go's). */
static int ring_reap(struct io_uring *ring, cshim_ring_cqe *cqes, int n)
{
	struct io_uring_cqe *cqe;
	unsigned head;
	int i = 0;
	io_uring_for_each_cqe(ring, head, cqe)
	{
		if (i == n)
			break;
		cqes[i].user_data = cqe->user_data;
		cqes[i].res = cqe->res;
		cqes[i].flags = cqe->flags;
		i++;
	}
	io_uring_cq_advance(ring, i);
	return i;
}

void cshim_ring_step(cshim_ring *r, int drain, const cshim_ring_op *ops, int n,
		     cshim_ring_cqe *cqes, int ncqe, cshim_ring_result *res)
{
	res->prepared = 0;
	res->submitted = 0;
	res->drained = 0;
	res->calls = 0;
	if (drain) {
		eventfd_t v;
		res->drained = eventfd_read(r->efd, &v) == 0;
	}
	for (; res->prepared < n; res->prepared++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
		if (!sqe)
			break;
		ring_prep(sqe, &ops[res->prepared]);
	}
	/* ioq_submit: one io_uring_submit for every request queued since the last one (the
	 * batching of QEMU's luring_io_plug/unplug and defer_call). SQEs that an earlier
	 * submit left in the ring (EAGAIN, EBUSY) go with them. */
	if (io_uring_sq_ready(&r->ring) > 0) {
		int ret;
		res->calls = 1;
		do
			ret = io_uring_submit(&r->ring);
		while (ret == -EINTR);
		res->submitted = ret;
	}
	/* As ioq_submit, reap at once: a read from the page cache has usually completed
	 * inside the submit. */
	res->reaped = ring_reap(&r->ring, cqes, ncqe);
}

int cshim_ring_wait(cshim_ring *r, cshim_ring_cqe *cqes, int ncqe)
{
	struct io_uring_cqe *cqe;
	int ret;
	do
		ret = io_uring_wait_cqe(&r->ring, &cqe);
	while (ret == -EINTR || ret == -EAGAIN);
	if (ret < 0)
		return ret;
	return ring_reap(&r->ring, cqes, ncqe);
}

unsigned *cshim_ring_cq_khead(cshim_ring *r) { return r->ring.cq.khead; }
unsigned *cshim_ring_cq_ktail(cshim_ring *r) { return r->ring.cq.ktail; }
