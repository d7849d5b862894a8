#!/bin/sh
# The C core under two memory checkers:
#  1. valgrind memcheck (Lua 5.4), every spec whose C runs in the busted
#     process: not the pure-Lua random-input one (minutes under valgrind),
#     nor those whose C runs in child processes valgrind does not follow
#     (nginx, the installed command, LuaRocks installs), where a slowed
#     test process would only skew their timings: no error, no byte
#     definitely or indirectly lost;
#  2. AddressSanitizer + UndefinedBehaviorSanitizer, the same specs and the
#     random-input one: the core and a small
#     Lua 5.4 interpreter built with both (no LD_PRELOAD, so the servers the
#     specs start are not affected); any report aborts the run.
# LuaJIT is not checked here: its allocator is not valgrind-clean without a
# special build. Its suite runs in `make test`.
set -u
cd "$(dirname "$0")/../.."
status=0
# Specs whose C core runs in child processes (nginx, the installed command,
# LuaRocks builds): the checkers do not follow them, and a slowed test
# process would only skew their timings.
# transport_safety_spec stays in: its fork()ed children run the core in a
# copy of this process, which both checkers follow. Under valgrind a child
# with an error or a leak exits 99, and the spec asserts that each child
# exits 0; the handles a child inherits are kept reachable on purpose (see
# cerca_abandon in src/http.h), not lost. The children end with _exit, so
# LeakSanitizer does not check them; AddressSanitizer and UBSan do.
CHILD_PROCESS_SPECS="--exclude-pattern=nginx_spec --exclude-pattern=cli_spec --exclude-pattern=rockspec_spec \
  --exclude-pattern=packaging_spec"

log=$(mktemp)
echo "== valgrind memcheck (specs whose C runs in-process, Lua 5.4)"
valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
  --log-file="$log" lua5.4 /usr/bin/busted --exclude-pattern=random_input_spec $CHILD_PROCESS_SPECS \
  > "$log.out" 2>&1
rc=$?
tail -n 1 "$log.out" | sed 's/^/memcheck: /'
grep -E "ERROR SUMMARY|definitely lost|indirectly lost" "$log" | sed 's/^==[0-9]*== */memcheck: /'
if [ "$rc" -ne 0 ]; then
  tail -n 20 "$log.out" >&2
  echo "memcheck: FAILED (exit $rc); logs in $log and $log.out" >&2
  status=1
else
  rm -f "$log" "$log.out"
fi

echo "== AddressSanitizer + UBSan (specs whose C runs in-process, Lua 5.4)"
out=$(mktemp)
# CERCA_LUA is absolute: specs run the command from other folders.
CERCA_BUILD=asan CERCA_LUA="$PWD/build/asan/lua-asan" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1 build/asan/lua-asan /usr/bin/busted $CHILD_PROCESS_SPECS > "$out" 2>&1
rc=$?
tail -n 1 "$out" | sed 's/^/sanitizers: /'
if [ "$rc" -ne 0 ] || grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$out"; then
  if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$out"; then
    grep -E -A20 "ERROR: (Address|Leak)Sanitizer|runtime error:" "$out" | head -60 >&2
  else
    # No report of a checker (an abort, a crash): the end of the log says where.
    tail -n 40 "$out" >&2
  fi
  echo "sanitizers: FAILED (exit $rc); log in $out" >&2
  status=1
else
  echo "sanitizers: no report"
  rm -f "$out"
fi
exit $status
