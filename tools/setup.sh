#!/usr/bin/env bash
# Installs the Debian 12 packages that seqk's build, tests, benchmarks and
# report need. Safe to run any number of times: when everything is present it
# prints nothing and touches nothing; otherwise it runs `apt-get update` once
# and installs only what is missing (with sudo when not root).
set -euo pipefail

packages=(
  # build
  meson ninja-build g++ pkg-config cmake
  libhwy-dev
  # tests
  googletest libgtest-dev libgmock-dev
  # benchmarks (oneDNN is the peer for the RNN rows). oneDNN's CMake package
  # looks for OpenCL and fails without it; apt leaves that recommendation out.
  libbenchmark-dev libdnnl-dev ocl-icd-opencl-dev
  # report
  python3 python3-matplotlib
  # Vulkan backend: headers/loader, shader compiler, lavapipe (CPU driver)
  libvulkan-dev glslc spirv-tools vulkan-validationlayers mesa-vulkan-drivers vulkan-tools
)

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
  [[ $status == ii* ]] || missing+=("$pkg")
done

((${#missing[@]} == 0)) && exit 0

echo "seqk setup: installing ${missing[*]}" >&2
if ((EUID == 0)); then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "seqk setup: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi

# apt's chatter goes to a log that is shown only when something fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
apt() {
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "seqk setup: apt-get $* failed" >&2
    exit 1
  fi
}
apt update
apt install -y --no-install-recommends "${missing[@]}"
