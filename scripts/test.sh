#!/usr/bin/env bash
# The whole test suite, from a fresh machine: system packages, the committed BPF object checked against
# bpf/, every unit test, the engine tests again under ThreadSanitizer, and the privileged tests against
# the namespace lab (brought up here and torn down on exit, also on failure). The lab's install test
# runs scripts/install.sh, whose release build (static Swift stdlib) goes to .build-release: once, then
# reused. Run as root from anywhere:
# scripts/test.sh
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

quiet() { grep -Ev '^\[[0-9]+/[0-9]+\] (Compiling|Emitting|Linking|Write|Merging|Wrapping)' || true; }
# Drops per-test chatter but keeps failures, suite results and each run's closing line.
summary() {
    awk '/^✔ Test run with/ { print; next }
         /^(✔ Test .* passed|◇ Test .* started|Test Suite|Test Case|\t Executed)/ { next }
         { print }'
}

echo "== build"
swift build --build-tests 2>&1 | quiet
swift build --product generate-manual 2>&1 | quiet  # for the man page test (CommandLineTests)

status=0
log=$(mktemp /tmp/fasttrace-test.XXXXXX)
trap 'rm -f "$log"' EXIT

echo "== wire, engine and command-line unit tests (options, marks, escaping, output formats)"
swift test --skip-build --filter 'FastTraceWireTests|FastTraceCoreTests|FastTraceAnnotationsTests|FastTraceStatsTests|FastTraceCLITests' 2>&1 | tee "$log" | summary
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

echo "== engine tests under ThreadSanitizer (the receive and scheduler threads racing)"
# Only the engine and its tests (Package.swift reads FASTTRACE_ENGINE_ONLY): not SwiftNIO, not the CLI.
FASTTRACE_ENGINE_ONLY=1 swift build --build-tests --sanitize=thread --scratch-path .build-tsan 2>&1 | quiet
FASTTRACE_ENGINE_ONLY=1 TSAN_OPTIONS=halt_on_error=1 swift test --skip-build --sanitize=thread --scratch-path .build-tsan \
    --filter FastTraceCoreTests 2>&1 | tee "$log" | summary
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
if grep -q "WARNING: ThreadSanitizer" "$log"; then
    echo "test.sh: ThreadSanitizer reported a race" >&2
    status=1
fi

echo "== lab"
cleanup() { scripts/lab.sh down >/dev/null 2>&1 || true; rm -f "$log"; }
trap cleanup EXIT
scripts/lab.sh up

echo "== lab tests (one at a time: some switch the shared lab's ICMP rate limits)"
FASTTRACE_BIN="$repo/.build/debug/fasttrace" swift test --skip-build --no-parallel --filter FastTraceLabTests 2>&1 \
    | tee "$log" | summary
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

exit "$status"
