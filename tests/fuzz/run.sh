#!/usr/bin/env bash
# Build a fuzzer (libFuzzer + ASan + UBSan) and run it.
#   tests/fuzz/run.sh [SECONDS] [HARNESS]      default 60 s, codec
# PYTHON: the Python (with efsfast installed) that makes the seeds (default python3)
# HARNESS: codec (fuzz_codec.c: efs_parser/efs_meta/efs_writer), probe
# (fuzz_probe.c: efs_probe.c against a plain walk and the codec) or
# manifest (fuzz_manifest.c: the manifest lines of efs_manifest.c; its seeds
# are paths needing escapes, made here).
# The seed corpus, shared by both, is the Windows sample (if ../shared is
# there) plus synthetic streams made by efsfast; findings land in
# tests/fuzz/crashes/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-60}
harness=${2:-codec}
work=${FUZZ_WORKDIR:-$(mktemp -d)}
mkdir -p "$work/corpus" "$here/crashes"
src="$root/src/efsfast/_c"
codec=("$src/efs_parser.c" "$src/efs_meta.c" "$src/efs_writer.c")
case "$harness" in
    codec) sources=("${codec[@]}") ;;
    probe) sources=("$src/efs_probe.c" "$here/probe_small_window.c" "$src/efs_io.c" "${codec[@]}") ;;
    manifest) sources=("$src/efs_manifest.c") ;;
    *) echo "run.sh: unknown harness '$harness' (codec, probe or manifest)" >&2; exit 2 ;;
esac
clang -g -O1 -std=c11 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I"$src" "$here/fuzz_$harness.c" "${sources[@]}" \
    -o "$work/fuzz_$harness"
if [ "$harness" = manifest ]; then
    "${PYTHON:-python3}" "$here/make_seeds.py" --manifest "$work/corpus"
else
    "${PYTHON:-python3}" "$here/make_seeds.py" "$work/corpus"
fi
"$work/fuzz_$harness" -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="$here/crashes/$harness-" "$work/corpus" 2>&1 | tail -n 25
