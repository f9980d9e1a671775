#!/usr/bin/env bash
# Installs the Debian packages that building, running and testing refinery need,
# and only those that are missing, so that it is cheap to call every time.
set -euo pipefail

pkgs=(
  build-essential pkg-config
  libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libpq-dev libssl-dev
  libcmocka-dev libopenblas-dev liblapacke-dev libonig-dev libutf8proc-dev
  postgresql wrk bc nodejs npm clang-format git clang libclang-rt-14-dev
  python3 python3-torch python3-numpy chromium
  python3-optuna  # bench/hpo: the peer samplers (Optuna 3.1 in bookworm)
  python3-jinja2  # the chat-template reference (tests/reference/chat_template_reference.py)
  curl jq         # scripts/demo.sh: make run's demo drives the API as a user would
)

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

# npm on a machine that already has a node toolchain from elsewhere: keep it.
if command -v node >/dev/null && command -v npm >/dev/null; then
  keep=()
  for p in "${missing[@]}"; do
    case "$p" in nodejs|npm) ;; *) keep+=("$p") ;; esac
  done
  missing=("${keep[@]+"${keep[@]}"}")
  [ ${#missing[@]} -eq 0 ] && exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
