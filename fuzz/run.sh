#!/bin/sh
# Builds every fuzz target (fuzz/Package.swift: the main package's sources with libFuzzer + ASan)
# and runs each for SECONDS (default 30) over its committed seeds in fuzz/corpus/<target>; new
# inputs go to fuzz/out/<target>/corpus, crashes to fuzz/out/<target>/crash-*, the libFuzzer log to
# fuzz/out/<target>.log. Exits non-zero when any target found a crash, leak or timeout.
# Usage: fuzz/run.sh [SECONDS] [TARGET ...]   (targets: request response chunked manifest api)
set -eu
SECONDS_TO_RUN="${1:-30}"
[ $# -gt 0 ] && shift
TARGETS="${*:-request response chunked manifest api}"
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "$HERE"
# lld: the default gold linker prints one harmless warning per ASan symbol.
FLAGS="-c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -use-ld=lld"
for t in $TARGETS; do
    swift build $FLAGS --product "fuzz-$t"
done
BIN="$(swift build $FLAGS --show-bin-path)"
failed=""
for t in $TARGETS; do
    out="$HERE/out/$t"
    mkdir -p "$out/corpus"
    # LeakSanitizer stays off for the Objects targets: JSONValue and Yams' Node are indirect enums
    # whose boxes Swift reaches through pointers with tag bits, which LSan cannot follow (every
    # stored object is reported as a "direct leak"). Growth is still bounded by -rss_limit_mb.
    case "$t" in
        manifest|api) maxlen=8192; leaks=0 ;;
        *) maxlen=4096; leaks=1 ;;
    esac
    echo "== fuzz-$t for ${SECONDS_TO_RUN}s"
    # SWIFT_BACKTRACE off: a trap is reported by libFuzzer (deadly signal, input saved), not by
    # the Swift backtracer, whose memory reader trips ASan.
    if (cd "$out" && SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="detect_leaks=$leaks" "$BIN/fuzz-$t" -max_total_time="$SECONDS_TO_RUN" -max_len="$maxlen" -timeout=10 \
            -rss_limit_mb=2048 -detect_leaks=$leaks -print_final_stats=1 -artifact_prefix="$out/" \
            "$out/corpus" "$HERE/corpus/$t") > "$HERE/out/$t.log" 2>&1; then
        grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+[[:space:]]+DONE' "$HERE/out/$t.log" | sed "s/^/fuzz-$t: /"
    else
        echo "fuzz-$t FAILED:"; tail -40 "$HERE/out/$t.log"
        failed="$failed $t"
    fi
done
if [ -n "$failed" ]; then echo "fuzz targets failed:$failed"; exit 1; fi
echo "all fuzz targets ran ${SECONDS_TO_RUN}s each without a finding"
