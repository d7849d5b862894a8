/*
 * What the Lua side needs of the operating system and of libcurl itself:
 *
 *   core.monotime()       -> seconds on a monotonic clock
 *   core.sleep(seconds)   (blocks the calling thread)
 *   core.isatty(fd)       -> boolean, for fd 0, 1 or 2
 *   core.ignore_write_signals()
 *   core.curl_version     the version of the libcurl in use
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */
#include <errno.h>
#include <signal.h>
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
    lua_Integer fd = luaL_checkinteger(L, 1);
    luaL_argcheck(L, fd >= 0 && fd <= 2, 1, "0, 1 or 2");
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

static const luaL_Reg sys_functions[] = {
    {"monotime", l_monotime},
    {"sleep", l_sleep},
    {"isatty", l_isatty},
    {"ignore_write_signals", l_ignore_write_signals},
    {NULL, NULL},
};

void cerca_sys_open(lua_State *L, int module)
{
    cerca_set_functions(L, module, sys_functions, 0, 0);
    lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
    lua_setfield(L, module, "curl_version");
}
