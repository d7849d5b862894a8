/*
 * What the Lua side needs of the operating system and of libcurl itself:
 *
 *   core.monotime()       -> seconds on a monotonic clock
 *   core.sleep(seconds)   (blocks the calling thread)
 *   core.isatty(fd)       -> boolean, for fd 0, 1 or 2
 *   core.ignore_write_signals()
 *   core.default_stop_signals() SIGINT, SIGTERM and SIGHUP end the process
 *   core.catch_stop_signals()   SIGINT, SIGTERM and SIGHUP set a flag, once each
 *   core.stop_signal()          -> the number and name of the first caught, or nil
 *   core.release_stop_signals() -> the same; the earlier handlers are back
 *   core.exit_by_signal(sig)    ends the process by SIGINT, SIGTERM or SIGHUP
 *   core.file_kind(path)        -> "file", "directory", "fifo", "device",
 *                                  "socket" | nil, message
 *   core.curl_version     the version of the libcurl in use
 *
 * file_kind follows symbolic links, and opens nothing.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core.h"

/* Seconds on a monotonic clock: for timeouts and deadlines, immune to
 * changes of the wall clock. */
static int l_monotime(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* Blocks the calling thread; the OpenResty adapter replaces it with ngx.sleep. */
static int l_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    struct timespec ts;
    if (!(s > 0))
        return 0;
    if (s > 86400)
        s = 86400;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

/* isatty(fd): whether standard output (1) or error (2) is a terminal, for
 * the command line's colours and progress bar. */
static int l_isatty(lua_State *L)
{
    lua_Integer fd = cerca_check_whole(L, 1, 0, 2);
    lua_pushboolean(L, isatty((int)fd));
    return 1;
}

/* ignore_write_signals(): a write to a closed pipe then fails with EPIPE,
 * and one past the file size limit (ulimit -f) with EFBIG, which the
 * command line can report (and rescue its output from), instead of the
 * process dying silently with the secrets it was printing. */
static int l_ignore_write_signals(lua_State *L)
{
    (void)L;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    return 0;
}

/* A pipe's end that reads nothing (fd 0: its writing end is closed) or on
 * which every write fails (1, 2: its reading end is closed; EPIPE, once
 * SIGPIPE is ignored), or -1: the stand-in where /dev/null or /dev/full
 * cannot be opened (a system without /dev/full, a bare chroot). */
static int dead_pipe_end(int fd)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    close(fd == 0 ? p[1] : p[0]);
    return fd == 0 ? p[0] : p[1];
}

/* hold_std_streams(): a standard descriptor (0, 1, 2) the process was
 * started without is opened again, on /dev/null for reading (0) and on
 * /dev/full for writing (1, 2), or on a pipe that does the same where
 * those are missing. Left closed, the next socket or file would take its
 * number, and what the command prints there (a subscription and its
 * secret) would go into that socket or file; there each write fails, and
 * the command rescues what it could not write. Returns how many were
 * closed. */
static int l_hold_std_streams(lua_State *L)
{
    int fd, held = 0;
    for (fd = 0; fd <= 2; fd++) {
        int other;
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        other = open(fd == 0 ? "/dev/null" : "/dev/full", fd == 0 ? O_RDONLY : O_WRONLY);
        if (other == -1)
            other = dead_pipe_end(fd);
        if (other == -1)
            return luaL_error(L, "cannot open a stand-in for descriptor %d: %s", fd, strerror(errno));
        if (other != fd) {
            int r = dup2(other, fd);
            close(other);
            if (r == -1)
                return luaL_error(L, "cannot hold descriptor %d: %s", fd, strerror(errno));
        }
        held++;
    }
    lua_pushinteger(L, held);
    return 1;
}

/* no_core_dumps(): the process's core file size limit set to 0, soft and
 * hard: a crash, or Ctrl-\ (SIGQUIT), writes no core file holding the API
 * key and the secrets in memory. Returns true, or nil and a message. */
static int l_no_core_dumps(lua_State *L)
{
    struct rlimit none;
    none.rlim_cur = 0;
    none.rlim_max = 0;
    if (setrlimit(RLIMIT_CORE, &none) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(errno));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* A command that must not be cut off in the middle of a batch (it would
 * lose the secrets in flight) catches SIGINT, SIGTERM and SIGHUP (its
 * terminal closed, an ssh session dropped) while it runs and
 * stops starting work when one arrives. The first of each is caught; the
 * handler then gives way to the default, so a second Ctrl-C ends the
 * process at once. A signal the process was started to ignore (nohup)
 * stays ignored: SIGHUP and SIGTERM. SIGINT cannot be told: the Lua
 * interpreter (lua.c) puts its own handler in place before the command's
 * script runs, over an ignored SIGINT too (a shell script's background
 * job), so the command finds it caught, never ignored. */
static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define NSTOP_SIGNALS (sizeof stop_signals / sizeof stop_signals[0])
static struct sigaction stop_previous[NSTOP_SIGNALS];
static int stop_installed[NSTOP_SIGNALS];
static int stop_catching;
static volatile sig_atomic_t stop_caught;

static void on_stop_signal(int sig)
{
    if (stop_caught == 0)
        stop_caught = sig;
}

static int l_catch_stop_signals(lua_State *L)
{
    struct sigaction sa;
    size_t i;
    (void)L;
    if (stop_catching)
        return 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    /* Writes and reads go on after the handler; poll() still returns early. */
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    stop_caught = 0;
    for (i = 0; i < NSTOP_SIGNALS; i++) {
        stop_installed[i] = sigaction(stop_signals[i], NULL, &stop_previous[i]) == 0
            && stop_previous[i].sa_handler != SIG_IGN
            && sigaction(stop_signals[i], &sa, NULL) == 0;
    }
    stop_catching = 1;
    return 0;
}

/* default_stop_signals(): the three signals back to their default action
 * (ending the process), unless ignored. The `lua` interpreter turns SIGINT
 * into a Lua error ("interrupted!") that a program's pcall takes for a bug;
 * before anything is sent, a signal is better left to end it. */
static int l_default_stop_signals(lua_State *L)
{
    size_t i;
    (void)L;
    if (stop_catching)
        return 0;
    for (i = 0; i < NSTOP_SIGNALS; i++) {
        struct sigaction now;
        if (sigaction(stop_signals[i], NULL, &now) == 0 && now.sa_handler != SIG_IGN
            && now.sa_handler != SIG_DFL)
            signal(stop_signals[i], SIG_DFL);
    }
    return 0;
}

static int push_stop_signal(lua_State *L)
{
    int sig = (int)stop_caught;
    if (sig == 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, sig);
    lua_pushstring(L, sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP");
    return 2;
}

static int l_stop_signal(lua_State *L)
{
    return push_stop_signal(L);
}

static int l_release_stop_signals(lua_State *L)
{
    size_t i;
    int n;
    if (stop_catching) {
        for (i = 0; i < NSTOP_SIGNALS; i++)
            if (stop_installed[i])
                sigaction(stop_signals[i], &stop_previous[i], NULL);
        stop_catching = 0;
    }
    n = push_stop_signal(L);
    stop_caught = 0;
    return n;
}

/* exit_by_signal(sig): C's output buffers flushed, the signal's default
 * action restored and the signal raised: the process ends as if it had
 * never been caught, and a shell (or a script's loop) sees that it was
 * interrupted. Returns only if the signal could not end it. */
static int l_exit_by_signal(lua_State *L)
{
    lua_Integer sig = cerca_check_whole(L, 1, 1, 64);
    sigset_t set;
    luaL_argcheck(L, sig == SIGINT || sig == SIGTERM || sig == SIGHUP, 1, "SIGINT (2), SIGTERM (15) or SIGHUP (1)");
    fflush(NULL);
    signal((int)sig, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, (int)sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise((int)sig);
    return 0;
}

/* nil and "path: reason", as io.open words a failure. */
static int failed(lua_State *L, const char *path, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(err));
    return 2;
}

static int l_file_kind(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    /* Looked at, not opened: opening a FIFO waits for its writer, and a
     * device may act on being opened. */
    if (stat(path, &st) != 0)
        return failed(L, path, errno);
    if (S_ISREG(st.st_mode))
        lua_pushliteral(L, "file");
    else if (S_ISDIR(st.st_mode))
        lua_pushliteral(L, "directory");
    else if (S_ISFIFO(st.st_mode))
        lua_pushliteral(L, "fifo");
    else if (S_ISSOCK(st.st_mode))
        lua_pushliteral(L, "socket");
    else
        lua_pushliteral(L, "device");
    return 1;
}

static const luaL_Reg sys_functions[] = {
    {"monotime", l_monotime},
    {"sleep", l_sleep},
    {"isatty", l_isatty},
    {"ignore_write_signals", l_ignore_write_signals},
    {"hold_std_streams", l_hold_std_streams},
    {"no_core_dumps", l_no_core_dumps},
    {"default_stop_signals", l_default_stop_signals},
    {"catch_stop_signals", l_catch_stop_signals},
    {"stop_signal", l_stop_signal},
    {"release_stop_signals", l_release_stop_signals},
    {"exit_by_signal", l_exit_by_signal},
    {"file_kind", l_file_kind},
    {NULL, NULL},
};

void cerca_sys_open(lua_State *L, int module)
{
    cerca_set_functions(L, module, sys_functions, 0, 0);
    lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
    lua_setfield(L, module, "curl_version");
}
