/* A coroutine switch the way QEMU makes one (util/coroutine-ucontext.c), written here
 * from its description, for the coroutine enter+yield benchmark.
 *
 * QEMU's ucontext backend creates a coroutine's stack once: qemu_coroutine_new fills a
 * ucontext_t with getcontext and makecontext, and its first switch into the new stack
 * is a swapcontext, after which the trampoline (coroutine_trampoline) saves a jump
 * buffer on the new stack and jumps back. Every later switch, qemu_coroutine_switch, is
 * sigsetjmp(from's buffer, 0) followed by siglongjmp(to's buffer): savesigs is 0, so
 * neither touches the signal mask and no syscall is made. An enter (qemu_coroutine_enter)
 * plus a yield (qemu_coroutine_yield) is two such switches: the pair timed here.
 *
 * _FORTIFY_SOURCE would turn siglongjmp into __longjmp_chk, which rejects a jump down
 * to another stack that is not a signal stack; coroutine-ucontext.c turns it off the
 * same way. */
#undef _FORTIFY_SOURCE
#define _GNU_SOURCE
#include "coswitch.h"
#include "clock.h"
#include <setjmp.h>
#include <stdlib.h>
#include <ucontext.h>

enum { CO_STACK_SIZE = 64 * 1024 };

/* A caller and its coroutine: the caller's jump buffer and the coroutine's, as QEMU
 * keeps one in each CoroutineUContext. cur is the pair set up on the calling thread. */
typedef struct {
	sigjmp_buf caller_env, co_env;
	ucontext_t caller_uc, co_uc;
	void *stack; /* in memory, not a local: a longjmp returns into co_setup */
	int use_swapcontext;
} co_pair;

static __thread co_pair *cur;

/* The coroutine's body: yield at once, each time it is entered (a coroutine that loops
 * on qemu_coroutine_yield). It never returns: the caller abandons its stack. */
static void co_body(void)
{
	co_pair *p = cur;
	for (;;) {
		if (p->use_swapcontext) {
			swapcontext(&p->co_uc, &p->caller_uc);
			continue;
		}
		/* qemu_coroutine_switch(self, caller): save here, jump to the caller. */
		if (!sigsetjmp(p->co_env, 0))
			siglongjmp(p->caller_env, 1);
	}
}

/* co_setup gives p a stack and runs co_body on it up to its first yield, as
 * qemu_coroutine_new does with swapcontext. Returns 0, or -1 if it could not. */
static int co_setup(co_pair *p)
{
	p->stack = malloc(CO_STACK_SIZE);
	if (!p->stack || getcontext(&p->co_uc) != 0) {
		free(p->stack);
		return -1;
	}
	p->co_uc.uc_stack.ss_sp = p->stack;
	p->co_uc.uc_stack.ss_size = CO_STACK_SIZE;
	p->co_uc.uc_link = NULL;
	makecontext(&p->co_uc, co_body, 0);
	cur = p;
	if (p->use_swapcontext) {
		swapcontext(&p->caller_uc, &p->co_uc);
	} else if (!sigsetjmp(p->caller_env, 0)) {
		swapcontext(&p->caller_uc, &p->co_uc); /* co_body's first yield longjmps back */
	}
	return 0;
}

gint64 cb_sigjmp_pairs(gint64 n)
{
	co_pair p = {0};
	if (co_setup(&p) != 0)
		return -1;
	gint64 start = cshim_now_ns();
	for (gint64 i = 0; i < n; i++) {
		/* qemu_coroutine_switch(caller, co): enter; co_body yields back here. i is not
		 * written between this sigsetjmp and the siglongjmp that returns to it. */
		if (!sigsetjmp(p.caller_env, 0))
			siglongjmp(p.co_env, 1);
	}
	gint64 el = cshim_now_ns() - start;
	cur = NULL;
	free(p.stack);
	return el;
}

gint64 cb_swapcontext_pairs(gint64 n)
{
	co_pair p = {.use_swapcontext = 1};
	if (co_setup(&p) != 0)
		return -1;
	gint64 start = cshim_now_ns();
	for (gint64 i = 0; i < n; i++)
		swapcontext(&p.caller_uc, &p.co_uc);
	gint64 el = cshim_now_ns() - start;
	cur = NULL;
	free(p.stack);
	return el;
}
