#!/bin/sh
# runtime-packages.sh BINARY — the Debian packages that own the shared
# libraries BINARY loads (ldd's closure), one per line: what the runtime image
# installs, so it carries those libraries and nothing of the build toolchain.
# A library no package owns is an error: the image would not run.
set -eu
bin=$1
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[ -n "$libs" ] || { echo "runtime-packages: ldd found no libraries in $bin" >&2; exit 1; }
pkgs=""
for lib in $libs; do
  real=$(readlink -f "$lib")
  # dpkg knows a file by the path its package ships it under: /lib/… on a
  # merged /usr, or the target of an alternatives link (libblas.so.3).
  pkg=""
  for p in "$real" "${real#/usr}" "$lib" "/usr$lib"; do
    pkg=$(dpkg-query -S "$p" 2>/dev/null | head -n 1 | cut -d: -f1) || pkg=""
    [ -n "$pkg" ] && break
  done
  [ -n "$pkg" ] || { echo "runtime-packages: no package owns $lib ($real)" >&2; exit 1; }
  pkgs="$pkgs $pkg"
done
printf '%s\n' $pkgs | sort -u
