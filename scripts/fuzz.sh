#!/bin/bash
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz and runs
# each one: first over its committed seeds and every regression input that
# ever crashed it (tests/data/regressions/<target>/), then fuzzing for
# FUZZ_SECONDS seconds (default 30, a CI smoke run). See docs/fuzzing.md.
#
#   scripts/fuzz.sh                      # all targets, 30 s each
#   FUZZ_SECONDS=3600 scripts/fuzz.sh fuzz_open   # one target, an hour
#
# Environment: FUZZ_SECONDS, FUZZ_JOBS (parallel fuzzing processes per
# target, default 1), JOBS (build parallelism, default 2), FUZZ_WORK (where
# generated corpora and crash files go, default build-fuzz/work).
# Exit status: non-zero when a build fails or any target crashes; the
# crashing input is in $FUZZ_WORK/<target>/crashes/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
FUZZ_JOBS=${FUZZ_JOBS:-1}
JOBS=${JOBS:-2}
FUZZ_WORK=${FUZZ_WORK:-build-fuzz/work}
ALL_TARGETS=(fuzz_open fuzz_log_replay fuzz_parent_locator fuzz_chain fuzz_plugin)
TARGETS=("$@")
[[ ${#TARGETS[@]} -eq 0 ]] && TARGETS=("${ALL_TARGETS[@]}")

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DVHDX_BUILD_FUZZ=ON -DVHDX_BUILD_TESTS=OFF -DVHDX_BUILD_TOOLS=OFF -DVHDX_BUILD_NBDKIT=OFF \
  -DVHDX_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j "$JOBS"

# Seeds generated at run time (our images, converted samples), merged with
# the small committed ones.
mkdir -p "$FUZZ_WORK"
bash fuzz/make_seeds.sh "$FUZZ_WORK/seeds" >/dev/null

# An allocation sized by an untrusted field fails the run: one malloc above
# 1 GiB, or 2 GiB resident, is a crash. -timeout: one input taking over 60 s
# is a hang.
LIMITS=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=60)
export ASAN_OPTIONS=${ASAN_OPTIONS:-"detect_leaks=1:allocator_may_return_null=0"}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-"print_stacktrace=1:halt_on_error=1"}

status=0
for t in "${TARGETS[@]}"; do
  bin=build-fuzz/fuzz/$t
  if [[ ! -x $bin ]]; then
    echo "fuzz.sh: $t was not built (skipped)" >&2
    continue
  fi
  work=$FUZZ_WORK/$t
  mkdir -p "$work/corpus" "$work/crashes"
  dirs=("$work/corpus")
  for d in "fuzz/corpus/$t" "$FUZZ_WORK/seeds/$t"; do
    [[ -d $d ]] && dirs+=("$d")
  done
  # 1. Every input that ever crashed this target, once.
  if compgen -G "tests/data/regressions/$t/*" >/dev/null; then
    echo "== $t: regression inputs"
    regs=()
    for f in tests/data/regressions/"$t"/*; do
      [[ $f == *.md ]] || regs+=("$f")
    done
    if ! "$bin" "${LIMITS[@]}" "${regs[@]}" >"$work/regressions.log" 2>&1; then
      echo "fuzz.sh: $t fails on a regression input; see $work/regressions.log" >&2
      tail -30 "$work/regressions.log" >&2
      status=1
      continue
    fi
  fi
  # 2. Fuzz for FUZZ_SECONDS; new inputs go to $work/corpus.
  echo "== $t: fuzzing for ${FUZZ_SECONDS}s"
  args=("${LIMITS[@]}" -max_total_time="$FUZZ_SECONDS" -artifact_prefix="$work/crashes/" -print_final_stats=1)
  [[ $FUZZ_JOBS -gt 1 ]] && args+=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
  # Targets with tiny seeds would otherwise be held to the seeds' length.
  case $t in
    fuzz_plugin | fuzz_parent_locator) args+=(-max_len=4096 -len_control=0) ;;
  esac
  if ! "$bin" "${args[@]}" "${dirs[@]}" >"$work/fuzz.log" 2>&1; then
    echo "fuzz.sh: $t CRASHED; input in $work/crashes/; log: $work/fuzz.log" >&2
    grep -E "ERROR|FUZZ_CHECK|SUMMARY" "$work/fuzz.log" | head -10 >&2 || true
    status=1
    continue
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:" "$work/fuzz.log" | tail -3 | sed "s/^/   $t: /"
done
exit $status
