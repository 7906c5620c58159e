#!/usr/bin/env bash
# Builds posenc's libFuzzer targets (fuzz/: the .npy and .safetensors readers and the command
# line) with clang++-14, ASan and UBSan in a build tree of their own, runs them side by side for
# FUZZ_SECONDS each with their seed corpus and dictionary, and fails on any finding.
#
#   bash scripts/fuzz.sh                     # CI: 60 s per target
#   FUZZ_SECONDS=3600 bash scripts/fuzz.sh   # an hour per target
#
#   FUZZ_SECONDS   seconds per target (default 60)
#   FUZZ_TARGETS   targets to run (default "fuzz_npy fuzz_safetensors fuzz_cli")
#   BUILD_DIR      build directory (default build-fuzz)
#   FUZZ_JOBS      parallel build jobs (default 2)
#
# Everything goes under BUILD_DIR: libFuzzer's output in fuzz-logs/<target>.log, the corpus it
# grows in fuzz-corpus/<target>/ (fuzz/corpus/ is only read), the findings of the last run
# (crash-*, leak-*, timeout-*, oom-*) in fuzz-findings/<target>/. A finding is reproduced by
# running the target on the file; for fuzz_cli, POSENC_FUZZ_PRINT=1 also prints the command line
# it ran, and POSENC_FUZZ_DIR=<dir> keeps the input files that command line names.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh
if command -v dpkg >/dev/null 2>&1; then
  POSENC_DEPS=(clang-14 libclang-rt-14-dev nlohmann-json3-dev)
  posenc_install_deps
fi

seconds=${FUZZ_SECONDS:-60}
read -r -a targets <<<"${FUZZ_TARGETS:-fuzz_npy fuzz_safetensors fuzz_cli}"
build_dir=${BUILD_DIR:-build-fuzz}
jobs=${FUZZ_JOBS:-2}
logs=$build_dir/fuzz-logs
mkdir -p "$logs"

start=$SECONDS
echo "fuzz.sh: configuring $build_dir (clang++-14, ASan + UBSan + libFuzzer)"
if ! cmake -S . -B "$build_dir" -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Debug \
  -DPOSENC_BUILD_FUZZERS=ON -DPOSENC_BUILD_TOOLS=ON -DPOSENC_BUILD_TESTS=OFF \
  -DPOSENC_BUILD_EXAMPLES=OFF -DPOSENC_BUILD_BENCHMARKS=OFF -DPOSENC_USE_OPENMP=OFF \
  -DPOSENC_SANITIZE=OFF -DPOSENC_INSTALL=OFF >"$logs/configure.log" 2>&1; then
  tail -n 40 "$logs/configure.log"
  exit 1
fi
echo "fuzz.sh: building ${targets[*]} (-j$jobs; log in $logs/build.log)"
if ! cmake --build "$build_dir" --target "${targets[@]}" -j "$jobs" >"$logs/build.log" 2>&1; then
  tail -n 40 "$logs/build.log"
  exit 1
fi
build_seconds=$((SECONDS - start))
echo "fuzz.sh: built in ${build_seconds} s"

# One libFuzzer run per target, all at once (one core each). Options per target: the seed corpus
# and dictionary, the largest input, and the slowest acceptable execution.
options() {
  case $1 in
    fuzz_npy) echo "-max_len=4096 -timeout=10 -dict=fuzz/npy.dict" ;;
    fuzz_safetensors) echo "-max_len=4096 -timeout=10 -dict=fuzz/safetensors.dict" ;;
    fuzz_cli) echo "-max_len=1024 -timeout=30 -dict=fuzz/cli.dict -close_fd_mask=1" ;;
    *) echo "fuzz.sh: unknown target $1" >&2 && exit 2 ;;
  esac
}
# A single allocation above 1 GiB fails as it would on a machine without the memory (malloc
# returns null: Eigen throws std::bad_alloc, which posenc turns into posenc::error) instead of
# tripping libFuzzer's -malloc_limit_mb (= -rss_limit_mb, 2 GiB) after it succeeded: a legal
# request for a 4 GiB table is an error to report, not a finding. operator new still aborts on
# null under ASan, so a std::vector that large is reported.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:max_allocation_size_mb=1024}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
pids=()
for t in "${targets[@]}"; do
  seeds=fuzz/corpus/${t#fuzz_}
  corpus=$build_dir/fuzz-corpus/$t
  findings=$build_dir/fuzz-findings/$t
  rm -rf "$findings"
  mkdir -p "$corpus" "$findings"
  read -r -a opts <<<"$(options "$t")"
  echo "fuzz.sh: running $t for ${seconds} s (log in $logs/$t.log)"
  "$build_dir/fuzz/$t" "${opts[@]}" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$findings/" "$corpus" "$seeds" >"$logs/$t.log" 2>&1 &
  pids+=($!)
done

failed=0
summaries=()
for i in "${!targets[@]}"; do
  t=${targets[$i]}
  status=0
  wait "${pids[$i]}" || status=$?
  log=$logs/$t.log
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
  cov=$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' "$log" | tail -n 1)
  summary="$t: ${runs:-?} executions in ${took:-?} s (${rate:-?}/s), ${cov:-?} coverage edges, peak RSS ${rss:-?} MB"
  if ((status != 0)) || grep -q -E '^==[0-9]+==ERROR|^SUMMARY: |deadly signal' "$log"; then
    failed=1
    echo "fuzz.sh: FINDING in $t (exit status $status); the end of $log:"
    tail -n 60 "$log"
    for f in "$build_dir/fuzz-findings/$t"/*; do
      [[ -e $f ]] || continue
      echo "fuzz.sh: reproduce with: $build_dir/fuzz/$t $f"
      if [[ $t == fuzz_cli ]]; then
        echo "fuzz.sh: its command line: POSENC_FUZZ_PRINT=1 $build_dir/fuzz/$t $f 2>&1 | grep -m1 '^posenc '"
      fi
    done
    summaries+=("$summary: FINDING")
  else
    summaries+=("$summary: no findings")
  fi
done
printf '%s\n' "${summaries[@]}"
echo "fuzz.sh: build ${build_seconds} s, total $((SECONDS - start)) s"
exit "$failed"
