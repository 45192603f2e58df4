#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: a WebGPU adapter (Mesa's lavapipe from
# bookworm-backports when no adapter is found) and the npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() { if [ "$(id -u)" -ne 0 ]; then echo "sudo"; fi; }

# npm packages: exact versions from the lockfile (npm 11 skips install scripts; none are needed on Linux)
if [ ! -d node_modules/webgpu ] || [ ! -d node_modules/wgsl_reflect ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi

probe() { node tools/probe-adapter.mjs >/dev/null 2>&1; }

if ! probe; then
  echo "[setup] no WebGPU adapter found: installing Mesa lavapipe (software Vulkan) from bookworm-backports"
  SUDO=$(need_root)
  src=/etc/apt/sources.list.d/debian.sources
  if [ -f "$src" ] && grep -q '^Suites: bookworm bookworm-updates$' "$src"; then
    $SUDO sed -i 's/^Suites: bookworm bookworm-updates$/Suites: bookworm bookworm-updates bookworm-backports/' "$src"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  if grep -q bookworm-backports "$src" 2>/dev/null; then
    $SUDO apt-get install -y -q -t bookworm-backports mesa-vulkan-drivers libvulkan1
  else
    $SUDO apt-get install -y -q mesa-vulkan-drivers libvulkan1
  fi
  if ! probe; then
    node tools/probe-adapter.mjs || true
    echo "[setup] still no WebGPU adapter after installing lavapipe" >&2
    exit 1
  fi
fi
node tools/probe-adapter.mjs

# --data: the real datasets the training commands use (Debian packages; nothing is downloaded at run time)
if [ "${1:-}" = "--data" ] && [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  echo "[setup] installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
  SUDO=$(need_root)
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q dataset-fashion-mnist
fi
