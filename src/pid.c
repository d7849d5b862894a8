#define _DEFAULT_SOURCE /* madvise, MAP_ANONYMOUS */
#include "pid.h"

#include <sys/mman.h>
#include <unistd.h>

/* Linux's value, for C libraries older than the flag (glibc < 2.27); a
 * kernel older than 4.14 refuses it, and then getpid() is used. */
#if defined(__linux__) && !defined(MADV_WIPEONFORK)
#define MADV_WIPEONFORK 18
#endif

/* What the page holds besides a process id: a thread is asking the kernel
 * (0 is what a child finds). */
#define ASKING ((pid_t)-1)

/* The page, made on first use; NULL before, or when none can be had
 * (then no_page is 1). No lock and no pthread_once: a child made by a raw
 * clone while another thread was making the page would wait on it for
 * ever. Never unmapped once in use: a thread may be reading it while the
 * process exits (a library loaded again after a Lua state unloaded it
 * maps one page more). */
static pid_t *pid_page;
static int no_page;

static pid_t *make_page(size_t *size_out)
{
#ifdef MADV_WIPEONFORK
    long size = sysconf(_SC_PAGESIZE);
    void *p;
    if (size <= 0)
        return NULL;
    p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    /* An emulator that accepts any advice (and so would not wipe the
     * page either) accepts an invalid one: such a page is not trusted. */
    if (madvise(p, (size_t)size, -1) == 0 || madvise(p, (size_t)size, MADV_WIPEONFORK) != 0) {
        munmap(p, (size_t)size);
        return NULL;
    }
    *size_out = (size_t)size;
    return p;
#else
    (void)size_out;
    return NULL;
#endif
}

/* The page, made by the first caller; NULL when there is none. */
static pid_t *page(void)
{
    pid_t *p = __atomic_load_n(&pid_page, __ATOMIC_ACQUIRE), *expected = NULL;
    size_t size = 0;
    if (p != NULL || __atomic_load_n(&no_page, __ATOMIC_RELAXED))
        return p;
    if ((p = make_page(&size)) == NULL) {
        __atomic_store_n(&no_page, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    if (!__atomic_compare_exchange_n(&pid_page, &expected, p, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        munmap(p, size); /* another thread's page is in use */
        return expected;
    }
    return p;
}

pid_t cerca_pid(void)
{
    pid_t *p = page(), pid, expected;
    if (p == NULL)
        return getpid();
    for (;;) {
        pid = __atomic_load_n(p, __ATOMIC_RELAXED);
        if (pid > 0)
            return pid;
        if (pid == ASKING)
            return getpid(); /* another thread of this process is asking */
        /* 0: first use, or a child's wiped page. The page is marked before
         * the kernel is asked, and the answer stored only if the mark is
         * still there: a fork between the two (from a signal handler)
         * wipes the child's mark, and the child asks again instead of
         * keeping its parent's id. */
        expected = 0;
        if (!__atomic_compare_exchange_n(p, &expected, ASKING, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            continue;
        pid = getpid();
        expected = ASKING;
        if (__atomic_compare_exchange_n(p, &expected, pid, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return pid;
    }
}
