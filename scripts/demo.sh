#!/bin/sh
# `make demo`: the main job on the shared data. Grows with each feature.
set -e
build=${1:-build}
lp="$build/leanprop"
echo "== leanprop info"
"$lp" info
