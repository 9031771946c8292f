#!/usr/bin/env bash
# Installs what is missing, builds seqk and runs the whole test suite.
#
#   tools/run-tests.sh                    # release build in build/
#   SEQK_SANITIZE=1 tools/run-tests.sh    # ASan + UBSan build in build-asan/
#
# Extra arguments go to `meson test` (e.g. a test name, or --suite NAME).
# The exit code is meson test's: 0 when every test passed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash tools/setup.sh

options=()
test_options=()
if [[ ${SEQK_SANITIZE:-0} == 1 ]]; then
  builddir=build-asan
  options=("-Db_sanitize=address,undefined" -Dbuildtype=debugoptimized -Dbenchmarks=false)
  # UBSan only reports by default; make any finding fail the test.
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
  export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_stack_use_after_return=1}
  # The Khronos validation layer (with synchronization validation) leaks at
  # exit; its allocations are not ours.
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp}
  test_options=(--timeout-multiplier 4)
else
  builddir=build
fi

if [[ -f $builddir/meson-private/coredata.dat ]]; then
  meson setup --reconfigure "$builddir" "${options[@]}"
else
  meson setup "$builddir" "${options[@]}"
fi
ninja -C "$builddir"

status=0
meson test -C "$builddir" --print-errorlogs --num-processes "$(nproc)" \
  "${test_options[@]}" "$@" || status=$?
# The closing line counts GoogleTest cases, not just test executables.
python3 tools/test-summary.py "$builddir/meson-logs/testlog.json" || true
exit "$status"
