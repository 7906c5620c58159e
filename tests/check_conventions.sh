#!/bin/sh
# Usage: check_conventions.sh COPY SHARED. Fails when the repository's specification (COPY,
# docs/conventions.md) differs from the shared one (SHARED); exits 77 (ctest: skipped) when SHARED
# does not exist, as outside the project's own workspace.
copy=$1
shared=$2
if [ ! -f "$shared" ]; then
  echo "conventions_in_sync: $shared does not exist; nothing to compare"
  exit 77
fi
if cmp -s "$copy" "$shared"; then
  echo "conventions_in_sync: $copy equals $shared"
  exit 0
fi
echo "conventions_in_sync: $copy differs from $shared (copy the shared file over it):"
diff -u "$shared" "$copy" | head -40
exit 1
