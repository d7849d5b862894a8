#!/bin/sh
# Runs each libFuzzer target (one per parser in the C core that reads bytes
# from outside) for $1 seconds apiece (default 60), from its seed corpus;
# new inputs found stay in build/fuzz/corpus-NAME. Prints the executions of
# each and fails on any crash or sanitizer report.
set -u
cd "$(dirname "$0")/../.."
seconds=${1:-60}
status=0
for name in headers base64 url; do
  corpus=build/fuzz/corpus-$name
  mkdir -p "$corpus"
  log=$(mktemp)
  build/fuzz/${name}_fuzz -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 \
    -artifact_prefix=build/fuzz/$name- "$corpus" spec/fuzz/corpus/$name > "$log" 2>&1
  rc=$?
  runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "fuzz: $name parser, ${seconds}s, ${runs:-?} executions, exit $rc"
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz: $name FAILED; the crashing input is saved under build/fuzz/" >&2
    status=1
  fi
  rm -f "$log"
done
exit $status
