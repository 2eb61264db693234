#!/bin/sh
# Builds the HTTP1 parser fuzzer with libFuzzer + ASan and runs it for TARGET_SECONDS (default 30)
# over fuzz/corpus/request (new inputs found go to fuzz/out/corpus, crashes to fuzz/out/).
# Usage: fuzz/run.sh [TARGET_SECONDS]
# (lld: the default gold linker prints one harmless warning per ASan symbol.)
set -eu
SECONDS_TO_RUN="${1:-30}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
mkdir -p "$HERE/out/corpus"
swiftc -sanitize=fuzzer,address -parse-as-library -O -wmo -use-ld=lld \
    -module-name HTTP1Fuzz \
    "$ROOT"/Sources/HTTP1/*.swift "$HERE/RequestParserFuzz.swift" \
    -o "$HERE/out/request-parser"
cd "$HERE/out"
exec ./request-parser -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$HERE/out/" "$HERE/out/corpus" "$HERE/corpus/request"
