#!/bin/sh
# `make bench`: every benchmark binary in BUILD/bench, in order. Not a test.
build=${1:-build}
for b in "$build"/bench/bench_*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    "$b" || echo "(benchmark $(basename "$b") exited $?)"
done
