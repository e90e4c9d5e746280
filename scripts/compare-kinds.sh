#!/usr/bin/env bash
# fasttrace against scamper for the UDP and ICMP echo probe kinds, side by side in one run on the
# namespace lab: wall time, CPU time (user+sys) and how many traces each got right against the lab's
# truth (udp_ports, icmp). Run as root; builds fasttrace in release; brings up its own lab.
#
#   scripts/compare-kinds.sh [N]      N mixed lab targets (default 1000)
#
# Rows for both families: IPv4 over `lab.sh targets mixed N`, then IPv6 over `lab.sh targets6 mixed N`
# (at most 1,462: the addresses assigned on the targets, so a closed UDP port's ICMPv6 port unreachable
# comes from the address probed), each with UDP 53, UDP 33434, ICMP echo and TCP 443 (scamper's
# `trace -P tcp`, SYN probes with a fixed source port; fasttrace's default -S). FT_FAMILIES=4 or 6 keeps
# one family.
#
# Both tools: one probe per hop, 1 s wait, at most 16 TTLs, 3 silent TTLs end a trace, and the same
# cap on the probe rate (FT_RATE, default 10000 probes/s: scamper's -p, fasttrace's --rate). scamper
# traces with udp-paris (fixed ports, like fasttrace -U) and icmp-echo-paris. What each finds is
# judged by scripts/compare_kinds_check.py: for UDP, open (the service answered: scamper cannot tell,
# it sends no DNS query and reads no UDP answer), closed (the destination's port unreachable) or
# nothing; for ICMP, reachable or not; for TCP, open (SYN-ACK), closed (RST) or nothing.
#
# Environment: FT_RATE, FT_SCRATCH_PATH (SwiftPM scratch path, default .build), FT_LAB_PREFIX (default
# ftkinds: its own lab, not the default ftlab). Every tool runs under `timeout`.

set -Eeuo pipefail
N=${1:-1000}
[[ $N =~ ^[0-9]+$ ]] && ((N >= 10 && N <= 40000)) || { echo "compare-kinds.sh: N must be 10...40000" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "compare-kinds.sh: run as root (network namespaces)" >&2; exit 2; }
command -v scamper >/dev/null || { echo "compare-kinds.sh: scamper is needed (apt-get install scamper)" >&2; exit 2; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
export FT_LAB_PREFIX=${FT_LAB_PREFIX:-ftkinds}
RATE=${FT_RATE:-10000}
SCRATCH=${FT_SCRATCH_PATH:-.build}
WORK=$(mktemp -d /tmp/ft-kinds.XXXXXX)
trap '"$SCRIPT_DIR/lab.sh" down >/dev/null 2>&1 || true; [[ -n ${FT_KEEP:-} ]] || rm -rf "$WORK"' EXIT

echo "== building fasttrace (release)" >&2
(cd "$REPO" && swift build -c release --scratch-path "$SCRATCH" --product fasttrace >&2)
BIN=$(cd "$REPO" && swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/fasttrace
"$SCRIPT_DIR/lab.sh" up >/dev/null
NS="$FT_LAB_PREFIX-vantage"
"$SCRIPT_DIR/lab.sh" targets mixed "$N" >"$WORK/list4"
"$SCRIPT_DIR/lab.sh" targets6 mixed "$((N < 1462 ? N : 1462))" >"$WORK/list6"
FAMILIES=${FT_FAMILIES:-4 6}

# Runs "$@" under `timeout`, writing stdout to $1.out; prints "wall cpu" in seconds.
timed() {
    local name=$1
    shift
    local start end
    start=$(date +%s.%N)
    local times
    times=$( { TIMEFORMAT='%U %S'; time timeout 600 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"; } 2>&1 )
    end=$(date +%s.%N)
    python3 -c "import sys; u, s = map(float, sys.argv[3].split()); print('%.2f %.2f' % (float(sys.argv[2]) - float(sys.argv[1]), u + s))" \
        "$start" "$end" "$times"
}

printf '%-18s %-10s %8s %8s  %s\n' "probes" "tool" "wall s" "cpu s" "traces right / total"
for family in $FAMILIES; do
for kind in "udp 53" "udp 33434" "icmp" "tcp 443"; do
    read -r proto port <<<"$kind"
    case $proto in
        udp)
            ours=(-U -p "$port")
            theirs="trace -P udp-paris -d $port -q 1 -w 1 -g 3 -m 16"
            ;;
        tcp)
            ours=(-p "$port")
            theirs="trace -P tcp -d $port -q 1 -w 1 -g 3 -m 16"
            ;;
        *)
            ours=(-I)
            theirs="trace -P icmp-paris -q 1 -w 1 -g 3 -m 16"
            ;;
    esac
    label="IPv$family $proto${port:+ $port}"
    name="$family-$proto$port"
    read -r fwall fcpu < <(timed "ft-$name" ip netns exec "$NS" "$BIN" -n -q 1 -w 1 -m 16 --gap 3 \
        --rate "$RATE" --format json --targets "$WORK/list$family" "${ours[@]}")
    read -r swall scpu < <(timed "sc-$name" ip netns exec "$NS" scamper -p "$RATE" -O json -c "$theirs" \
        -f "$WORK/list$family")
    read -r fright sright total < <(python3 "$SCRIPT_DIR/compare_kinds_check.py" "$REPO/lab-state/$FT_LAB_PREFIX/truth.json" \
        "$proto" "${port:-0}" "$WORK/ft-$name.out" "$WORK/sc-$name.out")
    printf '%-18s %-10s %8s %8s  %s / %s\n' "$label" fasttrace "$fwall" "$fcpu" "$fright" "$total"
    printf '%-18s %-10s %8s %8s  %s / %s\n' "$label" scamper "$swall" "$scpu" "$sright" "$total"
    python3 -c "import sys; print('%-18s wall ratio fasttrace/scamper %.2f' % (sys.argv[1], float(sys.argv[2]) / float(sys.argv[3])))" \
        "$label" "$fwall" "$swall"
done
done
