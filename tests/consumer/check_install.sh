#!/usr/bin/env bash
# Checks that an installed seqk is usable by another project:
#   1. `meson install` the given (already built) build dir into a temp DESTDIR,
#   2. build tests/consumer against it through pkg-config (`dependency('seqk')`),
#   3. run the consumer (one GEMM and one LSTM forward checked against plain
#      loops) with the staged library, then delete everything it made.
#
# usage: check_install.sh BUILD_DIR SOURCE_ROOT [B_SANITIZE]
#   B_SANITIZE: the library build's b_sanitize value ('none' or e.g.
#   'address,undefined'); the consumer is built the same way, since a
#   sanitized library needs a sanitized executable.
set -euo pipefail

if (($# < 2 || $# > 3)); then
  echo "usage: $0 BUILD_DIR SOURCE_ROOT [B_SANITIZE]" >&2
  exit 2
fi
builddir=$(cd "$1" && pwd)
srcroot=$(cd "$2" && pwd)
sanitize=${3:-none}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/seqk-install-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
stage=$tmp/stage

echo "== meson install -C $builddir --destdir $stage"
meson install -C "$builddir" --no-rebuild --quiet --destdir "$stage"

pc=$(find "$stage" -name seqk.pc -path '*/pkgconfig/*' | head -n 1)
if [[ -z $pc ]]; then
  echo "FAIL: no seqk.pc was installed" >&2
  exit 1
fi
# The .pc file names the configured prefix (e.g. /usr/local); point every
# absolute path in it into the staging directory instead.
sed -i -E "s|^([A-Za-z_][A-Za-z0-9_]*)=/|\\1=$stage/|" "$pc"
pcdir=$(dirname "$pc")
export PKG_CONFIG_PATH=$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}

includedir=$(pkg-config --variable=includedir seqk)
libdir=$(pkg-config --variable=libdir seqk)
for header in error.h tensor.h gemm.h lstm.h simd.h thread_pool.h aligned.h; do
  if [[ ! -f $includedir/seqk/$header ]]; then
    echo "FAIL: header seqk/$header was not installed (looked in $includedir)" >&2
    exit 1
  fi
done
if ! compgen -G "$libdir/libseqk.*" >/dev/null; then
  echo "FAIL: no libseqk in $libdir" >&2
  exit 1
fi
echo "== installed: $(pkg-config --modversion seqk), headers in $includedir, library in $libdir"

echo "== building tests/consumer against the staged install"
meson setup "$tmp/build" "$srcroot/tests/consumer" -Db_sanitize="$sanitize"
ninja -C "$tmp/build"

exe=$tmp/build/seqk_consumer
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
resolved=$(ldd "$exe" | awk '/libseqk/ {print $3}')
if [[ $resolved != "$stage"/* ]]; then
  echo "FAIL: the consumer loads libseqk from '$resolved', not from the staged install" >&2
  exit 1
fi

echo "== running the consumer (libseqk: $resolved)"
"$exe"
