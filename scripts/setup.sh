#!/usr/bin/env bash
# Installs what Skiff needs on a Debian 12 machine (rclone and fuse3 mount volumes and buckets), builds it, and
# prepares the base image.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in runsc:runsc runc:runc debootstrap:debootstrap skopeo:skopeo umoci:umoci ip:iproute2 iptables:iptables nsenter:util-linux docker-registry:docker-registry htpasswd:apache2-utils rclone:rclone fusermount3:fuse3; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${need[*]}; run as root (or install them), or use SKIFF_RUNTIME=process" >&2
  else
    echo "setup: installing ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

# gVisor from bookworm-backports (20240729 or later): bookworm's own runsc (20221219) keeps one host file handle
# per file, so a volume missed a file the container had closed until the container exited, and a reload kept
# old bytes (see apps/worker/src/volumes/README.md); it also answers EINVAL to coreutils' statx.
runsc_release() { runsc --version 2>/dev/null | grep -o '[0-9]\{8\}' | head -1; }
if [ "$(id -u)" -eq 0 ] && [ "$(runsc_release || true)" \< 20231120 ]; then
  if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" >/etc/apt/sources.list.d/skiff-backports.list
  fi
  echo "setup: installing runsc from bookworm-backports" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports runsc >/dev/null; } ||
    echo "setup: could not install runsc from bookworm-backports; gVisor volumes keep the limits in apps/worker/src/volumes/README.md" >&2
fi

# Debian's Chromium, for the e2e test that opens an endpoint's /docs page with playwright-core (which brings
# no browser of its own). Without recommends: those are a desktop's daemons. Not fatal: that test then skips.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  echo "setup: installing chromium" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } ||
    echo "setup: could not install chromium; the /docs browser test will skip" >&2
fi

# `npm install` against the lock file, not `npm ci`: ci empties node_modules every time, and setup must be
# quick when everything is there. The lock records every platform's optional packages (biome, rollup), as
# this npm writes it, so an install leaves it as it is.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ package.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund --loglevel=error
fi

# Rebuild when any source is newer than the build.
if [ ! -f dist/cli.mjs ] || [ -n "$(find packages apps internal scripts/build.mjs -newer dist/cli.mjs -name '*.ts' -o -newer dist/cli.mjs -name '*.mjs' -o -newer dist/cli.mjs -name package.json 2>/dev/null | grep -v node_modules | head -1)" ]; then
  node scripts/build.mjs
fi

# The base image (Debian bookworm) and a Node build for containers, cached under SKIFF_CACHE_DIR.
# (Workers also fetch them lazily; doing it here keeps the first run's wait out of the first call.)
cache="${SKIFF_CACHE_DIR:-${SKIFF_HOME:-$HOME/.skiff}/cache}"
if [ "$(id -u)" -eq 0 ] && command -v debootstrap >/dev/null 2>&1 &&
  { [ ! -d "$cache/rootfs/bookworm-minbase" ] || [ -z "$(ls -A "$cache/node" 2>/dev/null)" ]; }; then
  node dist/cli.mjs prepare >&2
fi
