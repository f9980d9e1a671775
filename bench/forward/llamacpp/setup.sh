#!/usr/bin/env bash
# Makes bench/forward's llama.cpp peer ready, once: node-llama-cpp 3.21.1 from
# npm (pinned by package-lock.json, installed with --ignore-scripts so that its
# postinstall downloads and builds nothing; the optional GPU builds are left
# out), its bundled llama.cpp sources' headers (a git bundle inside the package,
# read with git archive), and llama_peer.c compiled against them and linked to
# the package's prebuilt libllama.so. Prints the peer's path and its backend
# folder; exits non-zero with a reason when it cannot (no network for npm, not
# x86-64 Linux). Never part of `make all`: llama.cpp is a peer, not a dependency.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$here/../../.." && pwd)/build/bench/llamacpp
[ "$(uname -sm)" = "Linux x86_64" ] || { echo "llama.cpp peer: prebuilt for Linux x86-64 only" >&2; exit 1; }
bins=$here/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
if ! ls "$bins"/libllama.*so >/dev/null 2>&1; then
  (cd "$here" && npm ci --ignore-scripts --omit=optional --no-audit --no-fund >&2) ||
    { echo "llama.cpp peer: npm ci failed" >&2; exit 1; }
fi
mkdir -p "$out"
if [ ! -f "$out/src/include/llama.h" ]; then
  rm -rf "$out/src" "$out/bundle.git"
  git clone --quiet --bare "$here/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$out/bundle.git"
  mkdir -p "$out/src"
  git --git-dir="$out/bundle.git" archive HEAD include ggml/include | tar -x -C "$out/src"
  rm -rf "$out/bundle.git"
fi
libs=$(ls "$bins"/libllama.*so "$bins"/libggml.*so "$bins"/libggml-base.so)
if [ ! -x "$out/llama_peer" ] || [ "$here/llama_peer.c" -nt "$out/llama_peer" ]; then
  cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -I"$out/src/include" -I"$out/src/ggml/include" \
    "$here/llama_peer.c" -o "$out/llama_peer" $libs -Wl,-rpath,"$bins"
fi
echo "$out/llama_peer $bins"
