#define _DEFAULT_SOURCE /* madvise, MAP_ANONYMOUS */
#include "pid.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

/* Linux's value, for C libraries older than the flag (glibc < 2.27); a
 * kernel older than 4.14 refuses it, and then getpid() is used. */
#if defined(__linux__) && !defined(MADV_WIPEONFORK)
#define MADV_WIPEONFORK 18
#endif

static pthread_once_t page_once = PTHREAD_ONCE_INIT;
/* NULL: no page the kernel wipes in a child. Never unmapped: a thread may
 * be reading it while the process exits (a library loaded again after a
 * Lua state unloaded it maps one page more). */
static pid_t *pid_page;

static void make_page(void)
{
#ifdef MADV_WIPEONFORK
    long size = sysconf(_SC_PAGESIZE);
    void *p;
    if (size <= 0)
        return;
    p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return;
    if (madvise(p, (size_t)size, MADV_WIPEONFORK) != 0) {
        munmap(p, (size_t)size);
        return;
    }
    pid_page = p;
#endif
}

pid_t cerca_pid(void)
{
    pid_t pid;
    if (pthread_once(&page_once, make_page) != 0 || pid_page == NULL)
        return getpid();
    pid = __atomic_load_n(pid_page, __ATOMIC_RELAXED);
    if (pid == 0) {
        pid = getpid();
        __atomic_store_n(pid_page, pid, __ATOMIC_RELAXED);
    }
    return pid;
}
