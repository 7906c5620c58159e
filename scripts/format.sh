#!/usr/bin/env bash
# Formats every C++ file of the repository with clang-format 14 (.clang-format), or, with
# --check, lists the files that differ from it and fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
POSENC_EXTRA_DEPS="clang-format-14 git" source scripts/deps.sh

clang_format=$(command -v clang-format-14 || command -v clang-format)
mapfile -t files < <(git ls-files '*.hpp' '*.cpp' '*.h')
if [[ ${1:-} == --check ]]; then
  bad=()
  for f in "${files[@]}"; do
    if ! "$clang_format" --dry-run -Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
  done
  if ((${#bad[@]})); then
    echo "format.sh: ${#bad[@]} files differ from .clang-format (run bash scripts/format.sh):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
  fi
  echo "format.sh: ${#files[@]} files formatted as .clang-format says"
else
  "$clang_format" -i "${files[@]}"
fi
