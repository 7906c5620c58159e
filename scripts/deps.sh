#!/usr/bin/env bash
# Installs what posenc's build needs (Debian/Ubuntu), and nothing if it is all there already.
# Run it (bash scripts/deps.sh) or source it from the other scripts.
set -euo pipefail

POSENC_DEPS=(g++ cmake make libeigen3-dev catch2 libbenchmark-dev python3 python3-numpy python3-matplotlib
  libcli11-dev nlohmann-json3-dev doxygen pkgconf)
# Scripts that need more (the sanitizer and fuzzing builds) name it before sourcing this file.
read -r -a posenc_extra_deps <<<"${POSENC_EXTRA_DEPS:-}"
POSENC_DEPS+=("${posenc_extra_deps[@]}")

posenc_install_deps() {
  local missing=() pkg status
  for pkg in "${POSENC_DEPS[@]}"; do
    status=$(dpkg -s "$pkg" 2>/dev/null || true)
    if [[ $status != *"Status: install ok installed"* ]]; then
      missing+=("$pkg")
    fi
  done
  if ((${#missing[@]} == 0)); then
    echo "deps.sh: all build dependencies present"
    return 0
  fi

  echo "deps.sh: missing packages: ${missing[*]}"
  local sudo=()
  if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "deps.sh: not root and no sudo; install them with:" >&2
      echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
      exit 1
    fi
  fi
  echo "+ ${sudo[*]} apt-get update"
  "${sudo[@]}" apt-get update
  echo "+ ${sudo[*]} apt-get install -y --no-install-recommends ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
}

if ! command -v dpkg >/dev/null 2>&1; then
  echo "deps.sh: no dpkg (not Debian/Ubuntu); make sure a C++17 compiler, CMake >= 3.21," \
    "Eigen >= 3.4, Catch2 v2 and (optionally) Google Benchmark are installed" >&2
else
  posenc_install_deps
fi
