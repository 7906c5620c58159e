#!/usr/bin/env bash
# Builds and runs the word_order example.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh

run() {
  echo "+ $*"
  "$@"
}

run cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DPOSENC_BUILD_TESTS=OFF \
  -DPOSENC_BUILD_EXAMPLES=ON -DPOSENC_BUILD_BENCHMARKS=OFF
run cmake --build build --target word_order -j2
run build/examples/word_order
