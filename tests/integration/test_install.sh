#!/usr/bin/env bash
# `cmake --install` gives a usable package: a separate project finds it with
# find_package(vhdx), links vhdx::vhdx and runs.
set -euo pipefail
BUILD=${VHDX_BUILD_DIR:-build}
SRC=${VHDX_SOURCE_DIR:-.}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cmake --install "$BUILD" --prefix "$WORK/prefix" > /dev/null
test -f "$WORK/prefix/include/vhdx/image.h"
test -f "$WORK/prefix/lib/cmake/vhdx/vhdxConfig.cmake" || test -f "$WORK/prefix/lib/x86_64-linux-gnu/cmake/vhdx/vhdxConfig.cmake"
cmake -S "$SRC/tests/install_consumer" -B "$WORK/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$WORK/prefix" > /dev/null
cmake --build "$WORK/consumer" > /dev/null
"$WORK/consumer/consumer" | grep -qx "consumer ok"
echo "install consumer ok"
