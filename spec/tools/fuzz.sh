#!/bin/sh
# Runs the libFuzzer target of the header parser for $1 seconds (default 60)
# from the seed corpus; new inputs it finds stay in build/fuzz/corpus.
# Prints the executions made and fails on any crash or sanitizer report.
set -u
cd "$(dirname "$0")/../.."
seconds=${1:-60}
mkdir -p build/fuzz/corpus
log=$(mktemp)
build/fuzz/headers_fuzz -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 \
  -artifact_prefix=build/fuzz/ build/fuzz/corpus spec/fuzz/corpus/headers > "$log" 2>&1
rc=$?
runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
echo "fuzz: headers parser, ${seconds}s, ${runs:-?} executions, exit $rc"
if [ "$rc" -ne 0 ]; then
  tail -n 40 "$log" >&2
  echo "fuzz: FAILED; crashing input saved under build/fuzz/" >&2
  exit 1
fi
rm -f "$log"
