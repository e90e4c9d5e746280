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
# CPU at equal rates: after each pair, fasttrace runs the same list again with --rate set to the rate
# scamper achieved (its probes, counted by an nftables counter in r1 on what the vantage point sends, over
# its wall time), and the row "CPU at equal rates" gives both tools' CPU per 1,000 probes and their ratio.
# FT_STEER=1 steers the lab's forwarding off the tools' CPU for all runs (RPS hands what the vantage
# point's veth and r1's link from it receive to CPU 1; both tools run pinned to CPU 0), so each tool's
# CPU is its own, as on a host that forwards nothing; 0 (default) charges it to the sender.
#
# FT_KINDS picks the kinds (comma-separated, default "udp 53,udp 33434,icmp,tcp 443").
# Environment: FT_RATE, FT_STEER, FT_KINDS, FT_SCRATCH_PATH (SwiftPM scratch path, default .build), FT_LAB_PREFIX
# (default ftkinds: its own lab, not the default ftlab). Every tool runs under `timeout`.

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
R1NS="$FT_LAB_PREFIX-r1"

# Probes the vantage point sends, counted in r1 as they arrive: TCP SYNs (no ACK: not the kernel's resets
# to unexpected SYN-ACKs), UDP, and ICMP/ICMPv6 echo requests.
ip netns exec "$R1NS" nft -f - <<'NFT'
table inet ftkinds {
    counter probes {}
    chain count {
        type filter hook prerouting priority -400; policy accept;
        iifname "up0" tcp flags & (syn | ack) == syn counter name "probes"
        iifname "up0" meta l4proto udp counter name "probes"
        iifname "up0" icmp type echo-request counter name "probes"
        iifname "up0" icmpv6 type echo-request counter name "probes"
    }
}
NFT
reset_probes() { ip netns exec "$R1NS" nft reset counter inet ftkinds probes >/dev/null; }
probes() {
    ip netns exec "$R1NS" nft list counter inet ftkinds probes |
        awk '/packets/ { for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }'
}

PIN=()
if [[ ${FT_STEER:-0} == 1 ]]; then
    (($(nproc) >= 2)) || { echo "compare-kinds.sh: FT_STEER=1 needs two CPUs" >&2; exit 2; }
    "$SCRIPT_DIR/lab.sh" steer 2
    PIN=(taskset -c 0)
    echo "== forwarding steered to CPU 1, tools pinned to CPU 0" >&2
fi

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

# scamper's UDP probes to 53 carry the DNS query fasttrace sends (its question `<8 hex digits>.fasttrace.invalid`,
# type A) as their payload, so that the lab's DNS service answers both tools alike and each run's wire and
# kernel work is the same; scamper rewrites the first two bytes (the DNS ID) for UDP-Paris, which leaves
# the query whole. It does not read the answers: its DNS traces still end open|filtered.
DNS_QUERY=$(python3 -c "
import struct
name = b''.join(bytes([len(l)]) + l for l in (b'00000000', b'fasttrace', b'invalid')) + b'\\0'
print((struct.pack('!6H', 0, 0x0100, 1, 0, 0, 0) + name + struct.pack('!2H', 1, 1)).hex())")

printf '%-18s %-10s %8s %8s  %s\n' "probes" "tool" "wall s" "cpu s" "traces right / total"
for family in $FAMILIES; do
IFS=, read -r -a KINDS <<<"${FT_KINDS:-udp 53,udp 33434,icmp,tcp 443}"
for kind in "${KINDS[@]}"; do
    read -r proto port <<<"$kind"
    case $proto in
        udp)
            ours=(-U -p "$port")
            theirs="trace -P udp-paris -d $port -q 1 -w 1 -g 3 -m 16"
            [[ $port != 53 ]] || theirs+=" -p $DNS_QUERY"
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
    read -r fwall fcpu < <(timed "ft-$name" ip netns exec "$NS" "${PIN[@]}" "$BIN" -n -q 1 -w 1 -m 16 --gap 3 \
        --rate "$RATE" --format json --targets "$WORK/list$family" "${ours[@]}")
    reset_probes
    read -r swall scpu < <(timed "sc-$name" ip netns exec "$NS" "${PIN[@]}" scamper -p "$RATE" -O json -c "$theirs" \
        -f "$WORK/list$family")
    sprobes=$(probes)
    # fasttrace again at the rate scamper achieved: CPU at equal rates.
    eqrate=$(python3 -c "import sys; print(max(1, int(float(sys.argv[1]) / max(float(sys.argv[2]), 0.01))))" "$sprobes" "$swall")
    reset_probes
    read -r ewall ecpu < <(timed "eq-$name" ip netns exec "$NS" "${PIN[@]}" "$BIN" -n -q 1 -w 1 -m 16 --gap 3 \
        --rate "$eqrate" --format json --targets "$WORK/list$family" "${ours[@]}")
    eprobes=$(probes)
    read -r fright sright total < <(python3 "$SCRIPT_DIR/compare_kinds_check.py" "$REPO/lab-state/$FT_LAB_PREFIX/truth.json" \
        "$proto" "${port:-0}" "$WORK/ft-$name.out" "$WORK/sc-$name.out")
    printf '%-18s %-10s %8s %8s  %s / %s\n' "$label" fasttrace "$fwall" "$fcpu" "$fright" "$total"
    printf '%-18s %-10s %8s %8s  %s / %s\n' "$label" scamper "$swall" "$scpu" "$sright" "$total"
    python3 -c "import sys; print('%-18s wall ratio fasttrace/scamper %.2f' % (sys.argv[1], float(sys.argv[2]) / float(sys.argv[3])))" \
        "$label" "$fwall" "$swall"
    python3 -c "
import sys
label, rate = sys.argv[1], sys.argv[2]
ep, ew, ec, sp, sw, sc = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
f = 1e6 * ec / max(ep, 1)
s = 1e6 * sc / max(sp, 1)
print('%-18s CPU at equal rates (%s probes/s): fasttrace %.1f ms per 1,000 probes (%d probes, %.2f s), scamper %.1f (%d probes, %.2f s), ratio %.2f'
      % (label, rate, f, ep, ew, s, sp, sw, f / s if s else 0))
" "$label" "$eqrate" "$eprobes" "$ewall" "$ecpu" "$sprobes" "$swall" "$scpu"
done
done
