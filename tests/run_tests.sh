#!/bin/sh
# Runs every test binary in BUILD/tests, prints one line per binary and a
# closing "N passed, N failed, N skipped" line; exits non-zero on any failure
# (including a binary that crashed or reported nothing).
build=${1:-build}
# idle OpenMP workers must not spin against OpenBLAS threads (see src/cli/main.c)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
passed=0; failed=0; skipped=0; broken=""
log=$(mktemp)
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    start=$(date +%s.%N)
    "$t" >"$log" 2>&1
    rc=$?
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
    s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
    p=${p:-0}; f=${f:-0}; s=${s:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi  # crash, sanitizer report, or early exit
    if [ "$f" -gt 0 ] || [ "$rc" -ne 0 ]; then
        broken="$broken $name"
        echo "---- $name (exit $rc) ----"; cat "$log"; echo "----"
    fi
    grep -h '^\[ SKIP REASON \]' "$log" | sed "s/^/  $name: /"
    printf '%-32s %4d passed %3d failed %3d skipped  %ss\n' "$name" "$p" "$f" "$s" "$secs"
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
done
rm -f "$log"
echo "tests ($build): $passed passed, $failed failed, $skipped skipped"
[ -n "$broken" ] && { echo "failing:$broken"; exit 1; }
[ "$passed" -gt 0 ] || { echo "no test ran"; exit 1; }
exit 0
