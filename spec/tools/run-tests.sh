#!/bin/sh
# The whole suite: lint, the busted specs under Lua 5.4 and under LuaJIT
# (the nginx specs twice: Debian's loadable Lua module, then one built in)
# (and, but for the nginx and LuaRocks ones, under Lua 5.1, 5.2 and 5.3),
# the suite again under valgrind and under ASan+UBSan, and a short fuzz run. Ends with one line "N passed, N failed",
# summed over everything it ran; exits non-zero if anything failed.
set -u
cd "$(dirname "$0")/../.."

passed=0
failed=0

# gate NAME CMD...: a check that passes or fails as a whole.
gate() {
  name=$1
  shift
  echo "== $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    echo "== $name FAILED"
    failed=$((failed + 1))
  fi
}

# suite LUA [BUSTED OPTIONS]: the busted specs under one interpreter,
# counted test by test.
suite() {
  lua=$1
  shift
  echo "== busted under $lua $*${CERCA_SDK_NGINX:+ (SDK in $CERCA_SDK_NGINX)}"
  out=$(mktemp)
  "$lua" /usr/bin/busted "$@" 2>&1 | tee "$out"
  summary=$(grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$out" | tail -n 1)
  rm -f "$out"
  if [ -z "$summary" ]; then
    echo "== busted under $lua did not finish"
    failed=$((failed + 1))
    return
  fi
  set -- $summary
  # A pending (skipped) spec is a check that did not run: count it failed.
  passed=$((passed + $1))
  failed=$((failed + $4 + $7 + ${10}))
}

gate "lint (luacheck, warning-free C)" make --no-print-directory lint
suite lua5.4
suite luajit
# The SDK inside an nginx whose Lua module is built in (as OpenResty ships
# it), where the run above loaded Debian's module.
export CERCA_SDK_NGINX="$PWD/build/nginx-builtin/sbin/nginx"
suite luajit --pattern=nginx_spec
unset CERCA_SDK_NGINX
# The other versions the rockspec claims: every spec but those of the SDK
# inside nginx (nginx's Lua is LuaJIT) and of the LuaRocks installs (they
# install for each version themselves, from the two runs above).
for v in 5.1 5.2 5.3; do
  suite lua$v --exclude-pattern=nginx_spec --exclude-pattern=rockspec_spec --exclude-pattern=packaging_spec
done
gate "memory (valgrind, ASan+UBSan)" sh spec/tools/check-memory.sh
gate "fuzz (header, base64 and URL parsers, 15 s each)" sh spec/tools/fuzz.sh 15

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
