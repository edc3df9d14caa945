#!/usr/bin/env bash
# tests/run.sh: the one command that runs every test from a fresh clone.
# Installs missing Debian packages (as root; otherwise prints the apt-get
# command and stops), builds out of tree in _build/, runs `make check`, and
# prints each test program's Criterion summary and a closing
# "N passed, N failed" line. Exit status: 0 only if everything passed.
#
#   tests/run.sh                 # everything
#   CONFIGURE_FLAGS=--enable-sanitizers tests/run.sh   # ASan + UBSan build
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/_build}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

"$top/tests/install-deps.sh"

cd "$top"
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
mkdir -p "$build"
cd "$build"
"$top/configure" -q ${CONFIGURE_FLAGS:-}
make -j"$jobs" >/dev/null
set +e
make -j"$jobs" check
rc=$?
set -e

passed=0 failed=0 crashed=0
for log in tests/*.log; do
    [ -f "$log" ] || continue
    line=$(grep -a 'Synthesis:' "$log" | tail -n 1 || true)
    name=$(basename "$log" .log)
    if [ -z "$line" ]; then
        echo "$name: no Criterion summary (see $build/$log)"
        failed=$((failed + 1))
        continue
    fi
    echo "$name: ${line#*Synthesis: }"
    p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$line")
    f=$(sed -n 's/.*Failing: \([0-9]*\).*/\1/p' <<<"$line")
    c=$(sed -n 's/.*Crashing: \([0-9]*\).*/\1/p' <<<"$line")
    passed=$((passed + p)) failed=$((failed + f)) crashed=$((crashed + c))
done
if [ "$rc" -ne 0 ]; then
    for l in tests/*.log; do
        [ -f "$l" ] && grep -q -a -E '^(FAIL|ERROR)' "$l" || continue
        echo "--- $l"
        grep -a -E '\[FAIL\]|Assertion|CRASH|Failing' "$l" | head -n 20 || true
    done
    # A build failure leaves no summary at all: count it as a failure.
    [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ] && failed=1 && echo "make check failed before any test ran"
fi
# Criterion counts crashed tests among the failing ones, too.
echo "[====] Synthesis: Tested: $((passed + failed)) | Passing: $passed | Failing: $failed | Crashing: $crashed"
echo "$passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$crashed" -eq 0 ]
