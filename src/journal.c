/*
 * A private append-only file, for results that hold secrets (the command
 * line's --out file), opened so that it cannot be anything else:
 *
 *   core.open_journal(path, max_bytes) -> journal | nil, message, kind
 *   journal:read()       -> the whole current content | nil, message, kind
 *                           (refused when larger than max_bytes)
 *   journal:write(text)  -> true | nil, message      (all of it, appended)
 *   journal:sync()       -> true | nil, message      (what was written is on
 *                           disk: fsync, and the first time, of the folder
 *                           it was opened in too, so that a new file's name
 *                           is as well; refused once the path names another
 *                           file or none: removed, or replaced by an edit)
 *   journal:close()      -> true                     (idempotent; also __gc,
 *                                                     and __close under 5.4)
 *
 * The file is opened without following a symbolic link, must be a regular
 * file with one link owned by the effective user that no one else may read
 * or write (no group or other bits), is created with mode 0600 (whatever
 * the umask), and an existing one's owner bits are set to 0600.
 * `kind` names the refusal: "symlink", "not_regular", "not_owner",
 * "loose_mode", "hard_links", "in_use", "too_large" or "system".
 *
 * An open journal holds an exclusive lock on its file (flock) until it is
 * closed: a second open, by this process or another, is refused ("in_use"),
 * so that two runs never draw two keys for one fleet (where the file system
 * has no locks, the journal is used without one).
 *
 * Every check is made on the open descriptor (fstat), so what is checked is
 * what is written; a path check before opening only keeps devices from
 * being opened at all (opening some, a watchdog or a tape, has effects).
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* flock */
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core.h"

#define JOURNAL_MT "cerca.core.journal"
#define PRIVATE_MODE 0600
/* The largest max_bytes taken: 1 TiB, far beyond any journal, and exact
 * in a double and a size_t on 64-bit systems. */
#define MAX_LIMIT 1099511627776.0

typedef struct {
    int fd;     /* -1 once closed */
    int folder; /* the folder that holds the file, opened with it (-1: not
                 * readable by us, or closed): what sync checks and syncs,
                 * whatever the process's working folder is by then */
    int folder_synced;
    size_t max_bytes;
    size_t base; /* offset of the file's name in path */
    char path[1]; /* the path as given, NUL-terminated (allocated longer) */
} journal;

/* What a file that is not a regular file is, for the messages. */
static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISFIFO(mode))
        return "a FIFO (named pipe)";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISLNK(mode))
        return "a symbolic link";
    return "not a regular file";
}

/* With the message on top of the stack: pushes nil under it and the kind
 * over it; returns 3. */
static int refuse(lua_State *L, const char *kind)
{
    lua_pushnil(L);
    lua_insert(L, -2);
    lua_pushstring(L, kind);
    return 3;
}

static int refuse_mode(lua_State *L, const char *path, mode_t mode)
{
    lua_pushfstring(L, "%s is %s; give the path of a regular file", path, file_kind(mode));
    return refuse(L, S_ISLNK(mode) ? "symlink" : "not_regular");
}

/* "256 MiB", "64 KiB" or "1000 bytes", for the messages. */
static void push_size(lua_State *L, size_t n)
{
    char buf[48];
    if (n >= 1048576 && n % 1048576 == 0)
        snprintf(buf, sizeof buf, "%zu MiB", n / 1048576);
    else if (n >= 1024 && n % 1024 == 0)
        snprintf(buf, sizeof buf, "%zu KiB", n / 1024);
    else
        snprintf(buf, sizeof buf, "%zu bytes", n);
    lua_pushstring(L, buf);
}

static int close_fd(int fd)
{
    /* close() is not retried on EINTR: on Linux the descriptor is gone. */
    return close(fd);
}

/* Closes the journal's descriptor after a refusal (the message and kind
 * are pushed afterwards, so errno is read before). */
static void drop_fd(journal *j)
{
    if (j->fd >= 0)
        close_fd(j->fd);
    j->fd = -1;
    if (j->folder >= 0)
        close_fd(j->folder);
    j->folder = -1;
}

/* Opens the folder that holds j->path (its part before the last '/', "."
 * when there is none), into j->folder, and sets j->base. A folder we may
 * write in but not read cannot be opened for reading: j->folder stays -1
 * and the path is used as given. 0, or -1 with errno set. */
static int open_folder(journal *j)
{
    const char *slash = strrchr(j->path, '/');
    int fd, e;
    if (slash == NULL) {
        j->base = 0;
        fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } else {
        size_t n = slash == j->path ? 1 : (size_t)(slash - j->path);
        char *folder = malloc(n + 1);
        if (folder == NULL) {
            errno = ENOMEM;
            return -1;
        }
        memcpy(folder, j->path, n);
        folder[n] = '\0';
        j->base = (size_t)(slash - j->path) + 1;
        do
            fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        while (fd < 0 && errno == EINTR);
        e = errno;
        free(folder);
        errno = e;
    }
    if (fd < 0 && errno != EACCES)
        return -1;
    j->folder = fd;
    return 0;
}

/* The folder to open the file's name in, and that name. */
#define AT_FOLDER(j) ((j)->folder >= 0 ? (j)->folder : AT_FDCWD)
#define NAME_IN_FOLDER(j) ((j)->folder >= 0 ? (j)->path + (j)->base : (j)->path)

/* A file of ours without the write bit for us (0400, 0500: set so by
 * hand, or by an earlier tool) cannot be opened for writing without root.
 * Opened for reading, checked (a regular file of ours, one link, nothing
 * for others), given 0600 and opened again for writing; the second open
 * must reach the same file (device and inode), else the path was swapped
 * meanwhile. Returns the descriptor, or -1 with errno (EACCES when it was
 * not such a file). */
static int open_read_only_own(int folder, const char *name)
{
    struct stat before, after;
    int ro, fd, e;
    do
        ro = openat(folder, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    while (ro < 0 && errno == EINTR);
    if (ro < 0) {
        errno = EACCES;
        return -1;
    }
    if (fstat(ro, &before) != 0 || !S_ISREG(before.st_mode) || before.st_uid != geteuid() ||
        before.st_nlink != 1 || (before.st_mode & 077) != 0 || fchmod(ro, PRIVATE_MODE) != 0) {
        close(ro);
        errno = EACCES;
        return -1;
    }
    do
        fd = openat(folder, name, O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    while (fd < 0 && errno == EINTR);
    e = errno;
    if (fd >= 0 && (fstat(fd, &after) != 0 || after.st_dev != before.st_dev || after.st_ino != before.st_ino)) {
        close(fd);
        fd = -1;
        e = EACCES;
    }
    close(ro);
    errno = e;
    return fd;
}

/* core.open_journal(path, max_bytes) */
static int l_open_journal(lua_State *L)
{
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    lua_Number max = luaL_checknumber(L, 2);
    struct stat st;
    char number[24];
    journal *j;
    int fd, flags, e;

    if (!(max >= 1 && max <= MAX_LIMIT && max <= (lua_Number)(SIZE_MAX / 2)) ||
        max != (lua_Number)(size_t)max)
        return luaL_argerror(L, 2, "a whole number of bytes from 1 to 2^40");
    if (strlen(path) != len) {
        lua_pushliteral(L, "the path holds a NUL byte; give the path of a regular file");
        return refuse(L, "system");
    }
    /* The userdata first: once open, the descriptors are never without an
     * owner (an error raised below leaves them to __gc). */
    j = (journal *)lua_newuserdata(L, sizeof *j + len);
    j->fd = -1;
    j->folder = -1;
    j->folder_synced = 0;
    j->max_bytes = (size_t)max;
    j->base = 0;
    memcpy(j->path, path, len + 1);
    luaL_getmetatable(L, JOURNAL_MT);
    lua_setmetatable(L, -2);

    if (len > 0 && path[len - 1] == '/') {
        lua_pushfstring(L, "%s is a directory; give the path of a regular file", path);
        return refuse(L, "not_regular");
    }
    /* The file is opened in its folder, held open: sync checks and syncs
     * that folder even once the program changed its working folder or the
     * folder was renamed. */
    if (len > 0 && open_folder(j) != 0) {
        e = errno;
        lua_pushfstring(L, "cannot open %s: %s; give the path of a regular file you can write", path,
                        strerror(e));
        return refuse(L, "system");
    }

    /* Devices and FIFOs are refused before they are opened. */
    if (fstatat(AT_FOLDER(j), NAME_IN_FOLDER(j), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode)) {
        drop_fd(j);
        return refuse_mode(L, path, st.st_mode);
    }

    do
        fd = openat(AT_FOLDER(j), NAME_IN_FOLDER(j),
                    O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, PRIVATE_MODE);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno == EACCES)
        fd = open_read_only_own(AT_FOLDER(j), NAME_IN_FOLDER(j));
    if (fd < 0) {
        e = errno;
        drop_fd(j);
        if (e == ELOOP) {
            lua_pushfstring(L, "%s is a symbolic link; give the path of a regular file", path);
            return refuse(L, "symlink");
        }
        if (e == EISDIR) {
            lua_pushfstring(L, "%s is a directory; give the path of a regular file", path);
            return refuse(L, "not_regular");
        }
        lua_pushfstring(L, "cannot open %s: %s; give the path of a regular file you can write", path,
                        strerror(e));
        return refuse(L, "system");
    }
    j->fd = fd;
    if (fstat(fd, &st) != 0)
        goto system_error;
    if (!S_ISREG(st.st_mode)) {
        drop_fd(j);
        return refuse_mode(L, path, st.st_mode);
    }
    /* A uid or link count is written whole, as the unsigned number it is
     * (an int would print one above INT_MAX as negative). */
    if (st.st_uid != geteuid()) {
        drop_fd(j);
        snprintf(number, sizeof number, "%ju", (uintmax_t)st.st_uid);
        lua_pushfstring(L, "%s belongs to another user (uid %s); give a file of your own or a new path",
                        path, number);
        return refuse(L, "not_owner");
    }
    if (st.st_nlink != 1) {
        drop_fd(j);
        snprintf(number, sizeof number, "%ju", (uintmax_t)st.st_nlink);
        lua_pushfstring(L, "%s has %s hard links (it is also another file); give a file with one link or "
                        "a new path", path, number);
        return refuse(L, "hard_links");
    }
    /* A file system without locks (ENOLCK, EOPNOTSUPP: some network file
     * systems) leaves the journal unlocked rather than unusable. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        drop_fd(j);
        lua_pushfstring(L, "%s is in use by another run of cerca, which keeps it locked until it ends; wait "
                        "for that run, or give another path", path);
        return refuse(L, "in_use");
    }
    /* Others could open it: a descriptor one of them holds keeps reading
     * what is appended after a chmod, so it is refused, not tightened (a
     * new file is created 0600). Group bits also stand for an ACL's mask. */
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        drop_fd(j);
        snprintf(mode, sizeof mode, "%04o", (unsigned)(st.st_mode & 07777));
        lua_pushfstring(L, "%s can be read or written by others (mode %s), and one of them may hold it open "
                        "to read the secrets written to it, even after a chmod; give a new path (created "
                        "0600), or chmod 600 it once sure no one else has it open", path, mode);
        return refuse(L, "loose_mode");
    }
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
        goto system_error;
    if ((st.st_mode & 07777) != PRIVATE_MODE && fchmod(fd, PRIVATE_MODE) != 0)
        goto system_error;
    return 1;

system_error:
    e = errno;
    drop_fd(j);
    lua_pushfstring(L, "cannot set up %s: %s; give the path of a regular file you can write", path,
                    strerror(e));
    return refuse(L, "system");
}

static journal *check_open(lua_State *L)
{
    journal *j = (journal *)luaL_checkudata(L, 1, JOURNAL_MT);
    if (j->fd < 0)
        luaL_error(L, "attempt to use a closed journal");
    return j;
}

/* Reads up to `cap` bytes from offset 0; the count, or -1 (errno set). */
static long read_all(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t n = pread(fd, buf + got, cap - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (long)got;
}

/* journal:read() -> content | nil, message, kind */
static int l_journal_read(lua_State *L)
{
    journal *j = check_open(L);
    for (;;) {
        struct stat st;
        size_t size;
        char *buf;
        long got;
        if (fstat(j->fd, &st) != 0)
            break;
        if (st.st_size < 0 || (unsigned long long)st.st_size > (unsigned long long)j->max_bytes) {
            push_size(L, j->max_bytes);
            lua_pushfstring(L, "%s is larger than %s, the most that is read back", j->path,
                            lua_tostring(L, -1));
            lua_remove(L, -2);
            return refuse(L, "too_large");
        }
        size = (size_t)st.st_size;
        /* One byte more than the size: a file that grew is read again. */
        buf = (char *)lua_newuserdata(L, size + 1);
        got = read_all(j->fd, buf, size + 1);
        if (got < 0)
            break;
        if ((size_t)got <= size) {
            lua_pushlstring(L, buf, (size_t)got);
            return 1;
        }
        lua_pop(L, 1);
    }
    {
        int e = errno;
        lua_pushfstring(L, "cannot read %s: %s", j->path, strerror(e));
        return refuse(L, "system");
    }
}

/* journal:write(text) -> true | nil, message */
static int l_journal_write(lua_State *L)
{
    journal *j = check_open(L);
    size_t len, done = 0;
    const char *text = luaL_checklstring(L, 2, &len);
    while (done < len) {
        ssize_t n = write(j->fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            lua_pushnil(L);
            lua_pushstring(L, n < 0 ? strerror(errno) : "nothing was written");
            return 2;
        }
        done += (size_t)n;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* 0 when the path still names the open file; else -1 with errno set
 * (ENOENT: removed, or replaced by another file, such as an editor's save
 * through a new file and a rename): what is synced then is in a file no
 * path names, lost once closed. */
static int still_named(journal *j)
{
    struct stat open_st, named;
    if (fstat(j->fd, &open_st) != 0)
        return -1;
    if (open_st.st_nlink == 0 ||
        fstatat(AT_FOLDER(j), NAME_IN_FOLDER(j), &named, AT_SYMLINK_NOFOLLOW) != 0 ||
        named.st_dev != open_st.st_dev || named.st_ino != open_st.st_ino) {
        errno = ENOENT;
        return -1;
    }
    return 0;
}

/* journal:sync() -> true | nil, message */
static int l_journal_sync(lua_State *L)
{
    journal *j = check_open(L);
    int r;
    do
        r = fsync(j->fd);
    while (r != 0 && errno == EINTR);
    if (r == 0 && still_named(j) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot sync %s to disk: it was removed or replaced by another file while open, and "
                        "what was appended is in a file no path names; close it, and open the path again",
                        j->path);
        return 2;
    }
    /* The first time, the folder too (a new file's name): the folder it
     * was opened in. A file system that cannot sync a folder (EINVAL) has
     * nothing more to write; one we may write in but not read is left to
     * the system. */
    if (r == 0 && !j->folder_synced) {
        if (j->folder >= 0) {
            do
                r = fsync(j->folder);
            while (r != 0 && errno == EINTR);
            if (r != 0 && errno == EINVAL)
                r = 0;
        }
        j->folder_synced = r == 0;
    }
    if (r != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot sync %s to disk: %s", j->path, strerror(errno));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* journal:line_open() -> true when the file ends inside a line (its last
 * byte is not a line feed: a record cut short by a crash or a full disk),
 * false when it is empty or ends a line | nil, message */
static int l_journal_line_open(lua_State *L)
{
    journal *j = check_open(L);
    struct stat st;
    char last;
    ssize_t n = -1;
    if (fstat(j->fd, &st) != 0)
        goto fail;
    if (st.st_size == 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    do
        n = pread(j->fd, &last, 1, st.st_size - 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        goto fail;
    lua_pushboolean(L, last != '\n');
    return 1;
fail:
    lua_pushnil(L);
    lua_pushfstring(L, "cannot read the end of %s: %s", j->path, n == 0 ? "it shrank" : strerror(errno));
    return 2;
}

/* close, __gc and __close: one idempotent function. */
static int l_journal_close(lua_State *L)
{
    journal *j = (journal *)luaL_checkudata(L, 1, JOURNAL_MT);
    drop_fd(j);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_journal_tostring(lua_State *L)
{
    journal *j = (journal *)luaL_checkudata(L, 1, JOURNAL_MT);
    lua_pushfstring(L, "cerca.core.journal (%s): %p", j->fd >= 0 ? "open" : "closed", (void *)j);
    return 1;
}

static const luaL_Reg journal_methods[] = {
    { "read", l_journal_read },
    { "write", l_journal_write },
    { "line_open", l_journal_line_open },
    { "sync", l_journal_sync },
    { "close", l_journal_close },
    { NULL, NULL },
};

static const cerca_class journal_class = {
    JOURNAL_MT, journal_methods, l_journal_close, l_journal_tostring, NULL,
};

static const luaL_Reg journal_functions[] = {
    { "open_journal", l_open_journal },
    { NULL, NULL },
};

void cerca_journal_open(lua_State *L, int module)
{
    cerca_set_functions(L, module, journal_functions, 0, 0);
    cerca_register_class(L, &journal_class, 0, 0);
}
