/*
 * A private append-only file, for results that hold secrets (the command
 * line's --out file), opened so that it cannot be anything else:
 *
 *   core.open_journal(path, max_bytes) -> journal | nil, message, kind
 *   journal:read()       -> the whole current content | nil, message, kind
 *                           (refused when larger than max_bytes)
 *   journal:write(text)  -> true | nil, message      (all of it, appended)
 *   journal:close()      -> true                     (idempotent; also __gc,
 *                                                     and __close under 5.4)
 *
 * The file is opened without following a symbolic link, must be a regular
 * file with one link owned by the effective user, is created with mode 0600
 * (whatever the umask) and is set to 0600 when its mode is anything else.
 * `kind` names the refusal: "symlink", "not_regular", "not_owner",
 * "hard_links", "too_large" or "system".
 */
#ifndef CERCA_JOURNAL_H
#define CERCA_JOURNAL_H

#include "compat.h"

/* Sets open_journal in the module table at (absolute) index `module` and
 * registers the journal's metatable. Leaves the stack as it found it. */
void cerca_journal_register(lua_State *L, int module);

#endif
