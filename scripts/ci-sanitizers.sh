#!/bin/bash
# Runs the unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
# (build-asan) and the concurrency tests under ThreadSanitizer (build-tsan).
# Called from .ci/run; see docs/fuzzing.md ("Sanitizers"). Budget: well
# under 25 minutes on 2 cores.
#
# Environment:
#   CXX            compiler (default g++; clang++ needs libclang-rt-14-dev)
#   JOBS           parallel build jobs (default 2)
#   SANITIZERS     which runs: "asan tsan" (default), or one of them
#   ASAN_FILTER    extra gtest negative filter for the ASan run
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CXX=${CXX:-g++}
JOBS=${JOBS:-2}
SANITIZERS=${SANITIZERS:-"asan tsan"}

# Tests excluded from the ASan run, and why:
#  * SampleTest.*iotest_dirtylog_10G*: digests all 10 GiB of the dirty sample
#    (an hour-scale job under ASan's shadow-memory checks, minutes without).
#    The same sample's open, replay and read paths are covered by the other
#    sample tests and by fuzz_open's seeds.
ASAN_EXCLUDE="*SampleTest*iotest_dirtylog_10G*${ASAN_FILTER:+:$ASAN_FILTER}"

# Concurrency tests run under TSan: every test whose suite or name says so.
TSAN_FILTER='*Concurren*:*concurren*:*Thread*:*thread*:*Race*:*race*:*Stress*:*stress*:*Parallel*:*parallel*'

configure() {  # dir sanitize test-target
  # -O1 -g1: sanitizer builds compile about twice as fast as with -O2 -g and
  # still report functions and lines.
  cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$CXX" \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
    -DVHDX_SANITIZE="$2" -DVHDX_BUILD_TESTS=ON -DVHDX_BUILD_TOOLS=OFF -DVHDX_BUILD_NBDKIT=ON \
    -DVHDX_BUILD_BENCH=OFF -DVHDX_BUILD_FUZZ=OFF >/dev/null
  local targets=("$3")
  # The plugin's request-layer test exists when nbdkit-plugin.h was found.
  if ninja -C "$1" -t targets all 2>/dev/null | grep -q '^nbdkit_disk_test:'; then
    targets+=(nbdkit_disk_test)
  fi
  cmake --build "$1" -j "$JOBS" --target "${targets[@]}"
}

# Runs the unit tests of build dir $1 with gtest filter $2 (and extra args).
run_tests() {
  local dir=$1 binary=$2 filter=$3
  shift 3
  local rc=0
  "$dir/tests/$binary" --gtest_brief=1 --gtest_filter="$filter" "$@" || rc=1
  if [[ -x $dir/nbdkit/nbdkit_disk_test ]]; then
    "$dir/nbdkit/nbdkit_disk_test" --gtest_brief=1 --gtest_filter="$filter" "$@" || rc=1
  fi
  return $rc
}

status=0
start=$SECONDS

if [[ " $SANITIZERS " == *" asan "* ]]; then
  echo "== ASan+UBSan: build-asan"
  configure build-asan "address,undefined" vhdx_unit_tests
  # detect_leaks: LeakSanitizer works in containers only with ptrace rights;
  # keep it on when it can run.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-"abort_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1"}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-"print_stacktrace=1:halt_on_error=1"}
  # The power-cut suite runs in full in the normal build; here it runs a
  # quarter of its cuts, which still covers every scenario and flush point.
  export VHDX_CRASH_QUICK=1
  if ! run_tests build-asan vhdx_unit_tests "-$ASAN_EXCLUDE"; then
    echo "ci-sanitizers: ASan/UBSan run FAILED" >&2
    status=1
  fi
  unset VHDX_CRASH_QUICK
  echo "== ASan+UBSan done after $((SECONDS - start)) s"
fi

if [[ " $SANITIZERS " == *" tsan "* ]]; then
  echo "== TSan: build-tsan"
  # Only the multi-threaded tests are built for TSan (vhdx_concurrency_tests).
  configure build-tsan "thread" vhdx_concurrency_tests
  export TSAN_OPTIONS=${TSAN_OPTIONS:-"halt_on_error=1:second_deadlock_stack=1"}
  # Each concurrency test is also run a few times: races are probabilistic.
  if ! run_tests build-tsan vhdx_concurrency_tests "$TSAN_FILTER" --gtest_repeat=3; then
    echo "ci-sanitizers: TSan run FAILED" >&2
    status=1
  fi
  echo "== TSan done after $((SECONDS - start)) s"
fi

exit $status
