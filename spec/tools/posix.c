/*
 * spec_posix: the few POSIX calls the specs need to check what a client
 * does across fork(). Test-only; never installed.
 *
 *   fork() -> pid (0 in the child) | nil, message
 *   raw_fork() -> the same, by the clone system call itself: the child of
 *                 a program that forks without the C library, in which no
 *                 pthread_atfork handler has run
 *   waitpid(pid) -> exit status (128 + signal if killed) | nil, message
 *   _exit(code)   ends the process at once: no atexit handlers, no stdio
 *                 flush (the child must not flush the parent's buffers)
 *   getpid() -> pid
 */
#define _GNU_SOURCE /* syscall */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

__attribute__((visibility("default"))) int luaopen_spec_posix(lua_State *L);

static int fail(lua_State *L)
{
    lua_pushnil(L);
    lua_pushstring(L, strerror(errno));
    return 2;
}

static int l_fork(lua_State *L)
{
    pid_t pid = fork();
    if (pid < 0)
        return fail(L);
    lua_pushinteger(L, (lua_Integer)pid);
    return 1;
}

static int l_raw_fork(lua_State *L)
{
    /* clone(SIGCHLD): fork()'s own request, without glibc's handlers. The
     * other arguments (stack, parent tid, child tid, tls) are all 0; s390
     * alone takes the stack before the flags. */
#if defined(__s390__) || defined(__s390x__)
    long pid = syscall(SYS_clone, 0L, (long)SIGCHLD, 0L, 0L, 0L);
#else
    long pid = syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
#endif
    if (pid < 0)
        return fail(L);
    lua_pushinteger(L, (lua_Integer)pid);
    return 1;
}

static int l_waitpid(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return fail(L);
    if (WIFEXITED(status))
        lua_pushinteger(L, WEXITSTATUS(status));
    else
        lua_pushinteger(L, 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0));
    return 1;
}

static int l_exit(lua_State *L)
{
    _exit((int)luaL_optinteger(L, 1, 0));
    return 0;
}

static int l_getpid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

int luaopen_spec_posix(lua_State *L)
{
    lua_newtable(L);
    lua_pushcfunction(L, l_fork);
    lua_setfield(L, -2, "fork");
    lua_pushcfunction(L, l_raw_fork);
    lua_setfield(L, -2, "raw_fork");
    lua_pushcfunction(L, l_waitpid);
    lua_setfield(L, -2, "waitpid");
    lua_pushcfunction(L, l_exit);
    lua_setfield(L, -2, "_exit");
    lua_pushcfunction(L, l_getpid);
    lua_setfield(L, -2, "getpid");
    return 1;
}
