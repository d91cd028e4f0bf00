#!/bin/sh
# Runs every libFuzzer harness in build-fuzz/ for SECONDS seconds from its seed
# corpus (fuzz/corpus/<name>/); new inputs go to build-fuzz/corpus-<name>/ and
# crashes to build-fuzz/crash-<name>-*. Exits non-zero if any harness crashed.
secs=${1:-20}
status=0
for f in build-fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    name=$(basename "$f" | sed 's/^fuzz_//')
    mkdir -p "build-fuzz/corpus-$name"
    seeds="fuzz/corpus/$name"
    [ -d "$seeds" ] || seeds=""
    echo "== fuzz $name for ${secs}s"
    if ! "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="build-fuzz/crash-$name-" "build-fuzz/corpus-$name" $seeds 2>"build-fuzz/$name.log"; then
        echo "   CRASH or hang: see build-fuzz/$name.log"; tail -30 "build-fuzz/$name.log"; status=1
    else
        grep -E "stat::number_of_executed_units|cov:" "build-fuzz/$name.log" | tail -2 | sed 's/^/   /'
    fi
done
exit $status
