#!/bin/sh
# Runs the specs that drive the C core under valgrind memcheck (Lua 5.4;
# LuaJIT's allocator is not valgrind-clean without a special build).
# Fails on any memory error or any definitely-lost byte.
set -u
cd "$(dirname "$0")/../.."
log=$(mktemp)
valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
  --log-file="$log" lua5.4 /usr/bin/busted spec/core_spec.lua spec/create_spec.lua
status=$?
grep -E "ERROR SUMMARY|definitely lost" "$log" | sed 's/^==[0-9]*== */memcheck: /'
if [ "$status" -ne 0 ]; then
  echo "memcheck: FAILED (exit $status); full log in $log" >&2
  exit 1
fi
rm -f "$log"
