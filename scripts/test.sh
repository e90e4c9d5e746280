#!/usr/bin/env bash
# The whole test suite, from a fresh machine: system packages, the committed BPF object checked against
# bpf/, every unit test, the engine tests again under ThreadSanitizer, and the privileged tests against
# two namespace labs (brought up here and torn down on exit, also on failure), the lab suites split
# between them and run side by side. The install test's release build (static Swift stdlib, in
# .build-release) is made before the lab tests, so that it does not run beside them. Run as root from
# anywhere:
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
         /^(✔ Test .* passed|◇ Test .* started|◇ Suite .* started|↳ |Test Suite|Test Case|\t Executed)/ { next }
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
# ShardTests is skipped there: one thread hashing 100,000 list entries, no race to find, 3 minutes.
FASTTRACE_ENGINE_ONLY=1 swift build --build-tests --sanitize=thread --scratch-path .build-tsan 2>&1 | quiet
FASTTRACE_ENGINE_ONLY=1 TSAN_OPTIONS=halt_on_error=1 swift test --skip-build --sanitize=thread --scratch-path .build-tsan \
    --filter FastTraceCoreTests --skip 'FastTraceCoreTests\.ShardTests\b' 2>&1 | tee "$log" | summary
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
if grep -q "WARNING: ThreadSanitizer" "$log"; then
    echo "test.sh: ThreadSanitizer reported a race" >&2
    status=1
fi

echo "== release build (for the install test)"
FT_RELEASE=(-c release --static-swift-stdlib --scratch-path "$repo/.build-release")  # as scripts/install.sh builds
swift build "${FT_RELEASE[@]}" --product fasttrace 2>&1 | quiet
swift build "${FT_RELEASE[@]}" --product generate-manual 2>&1 | quiet

echo "== labs"
# Two labs, each its own set of namespaces (FT_LAB_PREFIX), so that two groups of suites can run side by
# side: each group runs its suites one at a time (some switch their lab's ICMP rate limits, inject loss
# or change a route), and nothing is shared between the groups but the machine. Group B is the suites
# that mostly wait (rounds a second apart, rate-limited routers), group A the rest.
labs=(ftlab ftlb)
group_b='FastTraceLabTests\.(RoundsLabTests|MonitorLabTests|ReadmeExampleTests|AnnotationLabTests|TcptracerouteCompatibilityTests|LeastPrivilegeTests|TerminalOutputTests)\b'
logs=()
cleanup() {
    for prefix in "${labs[@]}"; do FT_LAB_PREFIX=$prefix scripts/lab.sh down >/dev/null 2>&1 || true; done
    rm -f "$log" "${logs[@]}"
}
trap cleanup EXIT
for prefix in "${labs[@]}"; do FT_LAB_PREFIX=$prefix scripts/lab.sh up; done

echo "== lab tests (two groups side by side, each one suite at a time)"
# The test binary itself, not `swift test`, which holds a lock on .build for its whole run.
tests=$(swift build --show-bin-path)/fasttracePackageTests.xctest
group() {  # group LAB_PREFIX LOG ARGS...: one group's run against its own lab
    local prefix=$1 out=$2; shift 2
    FT_LAB_PREFIX=$prefix NO_COLOR=1 FASTTRACE_BIN="$repo/.build/debug/fasttrace" \
        "$tests" --testing-library swift-testing --no-parallel "$@" >"$out" 2>&1
}
logs=("$(mktemp /tmp/fasttrace-lab-a.XXXXXX)" "$(mktemp /tmp/fasttrace-lab-b.XXXXXX)")
group "${labs[0]}" "${logs[0]}" --filter FastTraceLabTests --skip "$group_b" & a=$!
group "${labs[1]}" "${logs[1]}" --filter "$group_b" & b=$!
wait "$a" || status=1
wait "$b" || status=1
for i in 0 1; do
    echo "-- group $( ((i == 0)) && echo A || echo B ) (lab ${labs[i]})"
    summary <"${logs[i]}"
done
# Group A is every lab suite that group B does not name, so none is left out; each must have run some.
for i in 0 1; do grep -qE '^. Test run with [1-9]' "${logs[i]}" || { echo "test.sh: lab group $i ran no test" >&2; status=1; }; done

exit "$status"
