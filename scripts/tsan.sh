#!/usr/bin/env bash
# Builds the concurrency tests (tests/test_concurrency.cpp: shared encoders and their caches,
# attention from several threads, OpenMP inside) with Clang's ThreadSanitizer and runs them.
# OpenMP is LLVM's libomp with the Archer tool, which tells ThreadSanitizer about OpenMP's own
# synchronisation (GCC's libgomp is not instrumented and would report false races).
#   BUILD_DIR   build directory (default: build-tsan)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
POSENC_EXTRA_DEPS="clang-14 libclang-rt-14-dev libomp-14-dev" source scripts/deps.sh

build_dir=${BUILD_DIR:-build-tsan}
archer=/usr/lib/llvm-14/lib/libarcher.so
run() {
  echo "+ $*"
  "$@"
}
run cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  -DPOSENC_SANITIZE_THREAD=ON -DPOSENC_BUILD_TESTS=ON -DPOSENC_BUILD_EXAMPLES=OFF \
  -DPOSENC_BUILD_BENCHMARKS=OFF -DPOSENC_BUILD_TOOLS=OFF -DPOSENC_INSTALL=OFF
run cmake --build "$build_dir" -j2 --target posenc_concurrency_tests
if [[ ! -f $archer ]]; then
  echo "tsan.sh: $archer not found (Debian: libomp-14-dev)" >&2
  exit 1
fi
export OMP_TOOL_LIBRARIES=$archer OMP_NUM_THREADS=2
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ignore_noninstrumented_modules=1"
run "$build_dir/tests/posenc_concurrency_tests" --durations yes
