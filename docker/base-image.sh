#!/usr/bin/env bash
# Makes the debian:bookworm base image offline, for machines that reach Debian's
# package mirror but no container registry: debootstrap a minbase root and
# `docker import` it. Where a registry is reachable, `docker pull debian:bookworm`
# gives the official image and this script is not needed.
#   docker/base-image.sh [TAG]      (default debian:bookworm; a no-op when it exists)
# The mirror is the one this machine's apt uses (REFINERY_DEBIAN_MIRROR overrides).
set -euo pipefail
tag=${1:-debian:bookworm}
docker image inspect "$tag" >/dev/null 2>&1 && exit 0
command -v debootstrap >/dev/null || { echo "base-image: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "base-image: debootstrap needs root" >&2; exit 1; }

# The first Debian archive in apt's sources (deb822 .sources or one-line .list).
mirror=${REFINERY_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -v '^[[:space:]]*#' | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ' || true)
  mirror=${mirror:-http://deb.debian.org/debian}
fi
mirror=${mirror%/}
security=${REFINERY_DEBIAN_SECURITY_MIRROR:-${mirror}-security}

root=$(mktemp -d /tmp/refinery-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "base-image: debootstrap --variant=minbase bookworm from $mirror" >&2
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
  { tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

# The same sources the official image carries (with updates and security), and
# no package lists or caches inside the image.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
# Containers build with apt-get and no terminal: no prompts, no recommends.
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/99container"

tar -C "$root" --numeric-owner -c . |
  docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' -m "debootstrap minbase bookworm ($mirror)" - "$tag" >/dev/null
echo "base-image: $tag made ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))" >&2
