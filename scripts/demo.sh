#!/usr/bin/env bash
# The main job on the built-in lab, from a fresh machine: install what is needed, build fasttrace,
# bring up the namespace lab, trace a mixed batch of lab targets to TCP 443 from the lab's vantage
# point (text output, then the summary line), and tear the lab down. Run as root: scripts/demo.sh [N]
set -Eeuo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
count=${1:-200}
[[ $count =~ ^[0-9]+$ && $count -ge 1 && $count -le 10000 ]] || { echo "demo.sh: N must be 1...10000" >&2; exit 2; }
if [[ $(id -u) -ne 0 ]]; then
    echo "demo.sh: run as root (the lab needs network namespaces, fasttrace raw sockets): sudo $0" >&2
    exit 1
fi

scripts/install-deps.sh
echo "== building fasttrace (release)"
swift build -c release --product fasttrace 2>&1 | tail -1
bin=$(swift build -c release --show-bin-path)/fasttrace

cleanup() { scripts/lab.sh down >/dev/null 2>&1 || true; rm -f "${list:-}"; }
trap cleanup EXIT
scripts/lab.sh up
list=$(mktemp)
scripts/lab.sh targets mixed "$count" > "$list"

echo "== fasttrace --targets ($count mixed lab targets) -p 443, from the lab's vantage namespace"
"$bin" --netns "$(scripts/lab.sh truth | python3 -c 'import json,sys; print(json.load(sys.stdin)["vantage"]["namespace"])')" \
    --targets "$list" -p 443 -w 1
