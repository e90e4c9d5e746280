#!/usr/bin/env bash
# The whole test suite, from a fresh machine: system packages, the committed BPF object checked against
# bpf/, every unit test, and the privileged tests against the namespace lab (brought up here and torn
# down on exit, also on failure). Run as root from anywhere: scripts/test.sh
set -Eeuo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if [[ $(id -u) -ne 0 ]]; then
    echo "test.sh: run as root (the lab tests need network namespaces and raw sockets): sudo $0" >&2
    exit 1
fi

echo "== system packages"
scripts/install-deps.sh

echo "== the committed eBPF object matches bpf/"
scripts/build-bpf.sh --check

echo "== build"
swift build --build-tests 2>&1 | { grep -Ev '^\[[0-9]+/[0-9]+\] (Compiling|Emitting|Linking|Write|Merging|Wrapping)' || true; }

echo "== lab"
cleanup() { scripts/lab.sh down >/dev/null 2>&1 || true; }
trap cleanup EXIT
scripts/lab.sh up

echo "== tests"
FASTTRACE_BIN="$repo/.build/debug/fasttrace" swift test --skip-build 2>&1 | tee /tmp/fasttrace-test.log \
    | grep -Ev '^(✔ Test .* passed|◇ Test .* started|Test Suite|Test Case|	 Executed)'
status=${PIPESTATUS[0]}
grep -E '^(✔|✘) Test run with' /tmp/fasttrace-test.log || true
exit "$status"
