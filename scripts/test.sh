#!/usr/bin/env bash
# Configures, builds and runs every posenc test.
#   BUILD_DIR    build directory (default: build)
#   CMAKE_ARGS   extra configure arguments, split on whitespace (they override the defaults)
#   CTEST_ARGS   extra ctest arguments, split on whitespace (e.g. "-E consumer")
#   POSENC_BENCH=1 also builds the benchmarks
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh

build_dir=${BUILD_DIR:-build}
bench=OFF
if [[ ${POSENC_BENCH:-0} == 1 ]]; then bench=ON; fi
read -r -a cmake_args <<<"${CMAKE_ARGS:-}"
read -r -a ctest_args <<<"${CTEST_ARGS:-}"

run() {
  echo "+ $*"
  "$@"
}

run cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DPOSENC_BUILD_TESTS=ON \
  -DPOSENC_BUILD_EXAMPLES=ON -DPOSENC_BUILD_BENCHMARKS="$bench" "${cmake_args[@]}"
run cmake --build "$build_dir" -j2
run ctest --test-dir "$build_dir" --output-on-failure -j2 "${ctest_args[@]}"
