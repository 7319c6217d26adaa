/* An io_uring through liburing, for the file I/O engine of an AioContext: the C half of
 * QEMU's LuringState (block/io_uring.c). It knows rings, SQEs and CQEs; which request a
 * completion belongs to, and what its callback does, is the Go side's business.
 *
 * Completions are announced on an eventfd registered with io_uring_register_eventfd,
 * which the Go side watches with an fd handler on its context (QEMU registers the ring's
 * own fd with aio_set_fd_handler in luring_attach_aio_context). Requests carry a 64-bit
 * user_data that is an index and a generation on the Go side, never a Go pointer; the
 * buffer address of a read or write is Go memory that the Go side keeps pinned
 * (runtime.Pinner) until the completion has been reaped, or C memory.
 *
 * All functions are for one thread at a time: the Go side serialises them with a mutex. */
#ifndef GLIBAIO_CSHIM_URING_H
#define GLIBAIO_CSHIM_URING_H

#include <glib.h>

typedef struct cshim_ring cshim_ring;

/* request kinds */
#define CSHIM_RING_READ 1      /* IORING_OP_READ, as pread */
#define CSHIM_RING_WRITE 2     /* IORING_OP_WRITE, as pwrite */
#define CSHIM_RING_FSYNC 3     /* IORING_OP_FSYNC */
#define CSHIM_RING_FDATASYNC 4 /* IORING_OP_FSYNC with IORING_FSYNC_DATASYNC */
#define CSHIM_RING_CANCEL 5    /* IORING_OP_ASYNC_CANCEL of the request whose user_data is off */

/* One request to prepare. The layout is mirrored by cshim.RingOp. */
typedef struct {
	guint64 addr;      /* the buffer; 0 for fsync and cancel */
	guint64 off;       /* file offset; for CSHIM_RING_CANCEL the user_data to cancel */
	guint64 user_data; /* returned in the request's CQE */
	gint32 fd;
	guint32 len;
	guint32 op; /* CSHIM_RING_* */
	guint32 pad;
} cshim_ring_op;

/* One reaped completion. Mirrored by cshim.RingCQE. */
typedef struct {
	guint64 user_data;
	gint32 res; /* as the syscall: bytes, or -errno */
	guint32 flags;
} cshim_ring_cqe;

/* What one cshim_ring_step did. Mirrored by cshim.RingStep. */
typedef struct {
	gint32 prepared;  /* ops copied into SQEs */
	gint32 submitted; /* io_uring_submit's result: SQEs the kernel took, or -errno */
	gint32 reaped;    /* CQEs copied out */
	gint32 drained;   /* the eventfd was read (1) or was empty (0) */
	gint32 calls;     /* io_uring_submit was called (1) */
	gint32 pad;
} cshim_ring_result;

/* Makes a ring of sq_entries SQEs and cq_entries CQEs (IORING_SETUP_CQSIZE), an eventfd
 * (non-blocking, close-on-exec) registered for its completions, and checks that the
 * kernel knows every opcode above (io_uring_get_probe_ring). Returns 0 and sets *out and
 * *efd_out, or -errno: what io_uring_queue_init_params says (ENOSYS on a kernel without
 * io_uring or under a seccomp filter, EPERM when kernel.io_uring_disabled forbids it,
 * ENOMEM past RLIMIT_MEMLOCK on old kernels), the eventfd's or its registration's
 * errno, or EOPNOTSUPP for a kernel that lacks an opcode (before 5.6). Nothing is left
 * behind on failure. QEMU: luring_init. */
int cshim_ring_new(unsigned sq_entries, unsigned cq_entries, cshim_ring **out, int *efd_out);

/* Unregisters the eventfd, closes it and the ring (io_uring_queue_exit). The kernel must
 * have completed every request: the caller reaps them all first. QEMU: luring_cleanup. */
void cshim_ring_free(cshim_ring *r);

/* One step of the engine, in one crossing (QEMU's luring_process_completions_and_submit
 * and ioq_submit): if drain, read the eventfd first, so a completion that comes after
 * the reap below signals it again; copy as many of the n ops as there are free SQEs;
 * submit if anything is prepared and not yet taken by the kernel (io_uring_submit,
 * retried on EINTR); then copy up to ncqe ready completions into cqes and mark them seen.
 * Never blocks. */
void cshim_ring_step(cshim_ring *r, int drain, const cshim_ring_op *ops, int n,
		     cshim_ring_cqe *cqes, int ncqe, cshim_ring_result *res);

/* Waits until a completion is ready (io_uring_wait_cqe, retried on EINTR), then reaps as
 * cshim_ring_step does. For Close, which must see every request complete. Returns the
 * number reaped, or -errno. */
int cshim_ring_wait(cshim_ring *r, cshim_ring_cqe *cqes, int ncqe);

/* The ring's CQ head and tail words (shared with the kernel), for a busy-poll check of
 * ready completions without a call into C (QEMU's qemu_luring_poll_cb, which calls
 * io_uring_cq_ready). */
unsigned *cshim_ring_cq_khead(cshim_ring *r);
unsigned *cshim_ring_cq_ktail(cshim_ring *r);

#endif
