#!/usr/bin/env bash
# Build the codec fuzzer (libFuzzer + ASan + UBSan) and run it.
#   tests/fuzz/run.sh [SECONDS]      default 60
# The seed corpus is the Windows sample (if ../shared is there) plus
# synthetic streams made by efsfast; findings land in tests/fuzz/crashes/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-60}
work=${FUZZ_WORKDIR:-$(mktemp -d)}
mkdir -p "$work/corpus" "$here/crashes"
src="$root/src/efsfast/_c"
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$src" "$here/fuzz_codec.c" "$src/efs_parser.c" "$src/efs_meta.c" "$src/efs_writer.c" \
    -o "$work/fuzz_codec"
python3 "$here/make_seeds.py" "$work/corpus"
"$work/fuzz_codec" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$here/crashes/" \
    "$work/corpus" 2>&1 | tail -n 25
