#!/bin/sh
# Checks that the Debian packages leanprop builds on are present; installs the
# missing ones with apt-get when run as root, otherwise prints the exact
# command and fails. Called by the Makefile before any compilation.
set -u
missing=""
need() { # need <header or file> <package>
    for d in /usr/include /usr/include/x86_64-linux-gnu /usr/include/aarch64-linux-gnu /usr/lib/gcc/*/*/include; do
        [ -e "$d/$1" ] && return 0
    done
    missing="$missing $2"
}
need cblas.h libopenblas-dev
need cjson/cJSON.h libcjson-dev
need zlib.h zlib1g-dev
need pcre2.h libpcre2-dev
need cmocka.h libcmocka-dev
need omp.h libgcc-12-dev
if [ "${LEANPROP_FUZZ:-0}" = 1 ]; then   # `make fuzz` only: clang with libFuzzer and sanitizers
    command -v clang >/dev/null 2>&1 || missing="$missing clang"
    ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1 || missing="$missing libclang-rt-dev"
fi
[ -z "$missing" ] && exit 0
cmd="apt-get install -y$missing"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "leanprop: installing missing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq $missing >/dev/null || { echo "leanprop: '$cmd' failed" >&2; exit 1; }
    exit 0
fi
echo "leanprop: missing Debian packages:$missing" >&2
echo "leanprop: run as root:  sudo $cmd" >&2
exit 1
