/*
 * The calling process's id, for fork detection on every request: a libcurl
 * handle or a pool of random bytes that came through fork() belongs to the
 * parent, and the child must notice before it uses one.
 */
#ifndef CERCA_PID_H
#define CERCA_PID_H

#include <sys/types.h>

/* getpid(), without its system call on most calls (about 1 µs on a virtual
 * machine with page-table isolation, once per request). The id is kept in
 * a page the kernel zeroes in every child with its own copy of memory
 * (MADV_WIPEONFORK, Linux 4.14 on): fork(), or a raw clone without
 * CLONE_VM, which runs no pthread_atfork handler. Such a child reads 0 and
 * asks the kernel again. Where no such page can be had (another system, an
 * older kernel), every call is a getpid(). Safe from any thread and from a
 * signal handler that forks. */
pid_t cerca_pid(void);

#endif
