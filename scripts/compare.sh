#!/usr/bin/env bash
# fasttrace against its peers (scamper, nmap, traceroute, tcptraceroute) on the same namespace lab in
# one run: wall time, CPU time, probes actually sent, probes/s, and correctness against the lab's
# ground truth (scripts/compare_check.py). Run as root from anywhere; builds fasttrace in release.
#
#   scripts/compare.sh [--quick] [--keep] [--equal] [--send-paths]
#
#   --quick       small lists (200 / 1,000 / 200 mixed) and short loops: about 2-3 minutes
#   --keep        keep the work directory (outputs, logs) instead of deleting it
#   --equal       only the equal-rate CPU comparison with scamper (below), in both lab settings: the
#                 forwarding charged to the sender, then steered off the tools' CPU. About 3 minutes.
#   --send-paths  only fasttrace against itself: the TX ring (--send-path ring) against the raw socket
#                 (--send-path socket) on the large open list at one rate (FT_SP_RATE, default 20000),
#                 in alternating pairs (FT_SP_PAIRS, default 3): wall, CPU (user and sys), probes/s,
#                 every trace checked, and the medians' ratios ring/socket. About 2 minutes.
#
# After the main table, two more comparisons with scamper:
#   equal rates   CPU at the same probe rate: fasttrace --rate set to the rate scamper achieved on the
#                 large open list (its -p maximum), both on that list, in alternating pairs
#                 (3, or FT_EQ_PAIRS); the medians and their ratio fasttrace/scamper. The lab's
#                 forwarding runs in the sender's softirq and is charged to the sender, so only equal
#                 rates and equal probe counts give comparable CPU. FT_EQ_STEER=1 steers it off: RPS
#                 hands what the vantage point's veth and r1's link receive to CPU 1 and both tools
#                 run pinned to CPU 0, so each tool's CPU is its own, as on a host that forwards
#                 nothing (as scripts/monitor-cost.sh does by default).
#   rate limits   the mixed list with the routers' ICMP rate limits on (lab.sh ratelimit on, then off):
#                 per tool, traces with the right reach/state, wrong hops, hops discovered, hops
#                 discovered per probe, and the hops fasttrace marked rate-limited.
#
# Environment:
#   FT_RATE          fasttrace --rate (default 20000 probes/s)
#   FT_EQ_RATE       fasttrace --rate for the equal-rate comparison (default: scamper's achieved rate,
#                    or 8000 without scamper)
#   FT_EQ_PAIRS      alternating scamper/fasttrace pairs for the equal-rate comparison (default 3)
#   FT_EQ_STEER      0 (default): the equal-rate pairs with the lab's forwarding charged to the sender;
#                    1: steered off the tools' CPU; "0 1": both, one after the other (--equal's default)
#   FT_SCRATCH_PATH  SwiftPM scratch path for the release build (default .build)
#   FT_LAB_PREFIX    lab namespace prefix (default ftbench: its own lab, not the default ftlab)
#
# Fairness: every tool probes TCP port 443 with one probe per hop, waits at most 1 s for a reply,
# stops at TTL 16, and (where it has the notion) gives up after 3 consecutive silent hops. "probes"
# is counted the same way for every tool, by an nftables counter in the first router (r1) on what
# the vantage point sends it: TCP SYNs (no ACK) plus any non-TCP packets (nmap's ICMP traceroute);
# the kernel's RSTs to unexpected SYN-ACKs and ARP are not probes. CPU is user+sys of the whole
# process tree (bash `time`). traceroute and tcptraceroute trace one target at a time, so they run
# over the first N targets only; their time for the whole list is extrapolated and marked "~".
# Every tool runs under `timeout`, and the whole script under a deadline (20 min, 5 with --quick).

set -Eeuo pipefail

QUICK=false
KEEP=false
SEND_PATHS=false
EQUAL_ONLY=false
for arg in "$@"; do
    case $arg in
        --quick) QUICK=true ;;
        --equal) EQUAL_ONLY=true ;;
        --keep) KEEP=true ;;
        --send-paths) SEND_PATHS=true ;;
        -h | --help)
            sed -n '2,37p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "compare.sh: unknown option $arg (usage: compare.sh [--quick] [--keep] [--equal] [--send-paths])" >&2
            exit 2
            ;;
    esac
done

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
LAB=$SCRIPT_DIR/lab.sh
CHECK=$SCRIPT_DIR/compare_check.py
export FT_LAB_PREFIX=${FT_LAB_PREFIX:-ftbench}
VNS=$FT_LAB_PREFIX-vantage
R1NS=$FT_LAB_PREFIX-r1
RATE=${FT_RATE:-20000}
SCRATCH=${FT_SCRATCH_PATH:-.build}
PORT=443
MAXTTL=16
WAIT=1
GAP=3
SCAMPER_PPS=10000  # scamper's maximum (-p accepts 1..10000)
EQ_PAIRS=${FT_EQ_PAIRS:-3}

if $QUICK; then
    N_SMALL=200 N_LARGE=1000 N_MIXED=200 N_LOOP=20 N_LOOP_SLOW=10 N_NMAP_MIXED=30 BUDGET=300
else
    N_SMALL=1000 N_LARGE=10000 N_MIXED=1000 N_LOOP=100 N_LOOP_SLOW=30 N_NMAP_MIXED=100 BUDGET=1200
fi
START=$SECONDS

die() {
    echo "compare.sh: $*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "must run as root (the lab needs network namespaces, the tools raw sockets): sudo $0 $*"
command -v python3 >/dev/null || die "python3 is needed for the checker"
command -v nft >/dev/null || die "nft is needed (the lab and the probe counter): apt-get install -y nftables"

WORK=$(mktemp -d /tmp/ftcompare.XXXXXX)
LAB_UP=false

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if $LAB_UP; then
        "$LAB" down >/dev/null 2>&1 || echo "compare.sh: lab down failed; run: FT_LAB_PREFIX=$FT_LAB_PREFIX $LAB down" >&2
    fi
    if $KEEP || ((status != 0)); then
        echo "compare.sh: outputs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'echo "compare.sh: interrupted" >&2; exit 130' INT TERM

# Seconds left before the script's own deadline.
remaining() { echo $((BUDGET - (SECONDS - START))); }

# The smaller of a tool's own limit and what is left of the budget (keeping 20 s for the rest).
bound() {
    local limit=$1 left
    left=$(($(remaining) - 20))
    ((left < limit)) && limit=$left
    echo "$limit"
}

# --- peers -------------------------------------------------------------------------------------

PEERS=(scamper nmap traceroute tcptraceroute)
missing_peers() {
    local p out=()
    for p in "${PEERS[@]}"; do command -v "$p" >/dev/null || out+=("$p"); done
    echo "${out[*]}"
}
missing=$(missing_peers)
if [[ -n $missing && -x $SCRIPT_DIR/install-deps.sh ]]; then
    echo "== missing peers: $missing; running scripts/install-deps.sh"
    timeout 600 "$SCRIPT_DIR/install-deps.sh" || echo "compare.sh: install-deps.sh failed; continuing without the missing peers" >&2
    missing=$(missing_peers)
fi
have() { command -v "$1" >/dev/null; }
[[ -z $missing ]] || echo "== skipping missing peers: $missing"

# --- fasttrace ---------------------------------------------------------------------------------

echo "== building fasttrace (release, scratch path $SCRATCH)"
(cd "$REPO" && timeout 900 swift build -c release --product fasttrace --scratch-path "$SCRATCH" 2>&1 | tail -n 3) ||
    die "release build failed"
FASTTRACE=$(cd "$REPO" && swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/fasttrace
[[ -x $FASTTRACE ]] || die "no fasttrace binary at $FASTTRACE"

# --- lab ---------------------------------------------------------------------------------------

echo "== lab $FT_LAB_PREFIX up"
LAB_UP=true
"$LAB" up >"$WORK/lab-up.log" 2>&1 || die "lab up failed: $(tail -n 5 "$WORK/lab-up.log")"
"$LAB" truth >"$WORK/truth.json"
VANTAGE_ADDR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["vantage"]["address"])' "$WORK/truth.json")

# The probe counter, in the first router: what the vantage point sends, whichever tool sent it and
# however (raw IP socket, AF_PACKET ring, kernel stack).
ip netns exec "$R1NS" nft -f - <<EOF
table ip ftcompare {
    counter syn {}
    counter other {}
    chain count {
        type filter hook prerouting priority -400; policy accept;
        iifname "up0" ip saddr $VANTAGE_ADDR tcp flags & (syn | ack) == syn counter name "syn"
        iifname "up0" ip saddr $VANTAGE_ADDR meta l4proto != tcp counter name "other"
    }
}
EOF

reset_counter() { ip netns exec "$R1NS" nft reset counters table ip ftcompare >/dev/null; }
read_counter() {
    ip netns exec "$R1NS" nft list counters table ip ftcompare |
        awk '/packets/ { for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1) } END { print n + 0 }'
}

# --- target lists ------------------------------------------------------------------------------

declare -A LIST_FILE LIST_N SCAMPER_RATE
LISTS=(open-$N_SMALL open-$N_LARGE mixed-$N_MIXED)
"$LAB" targets open "$N_SMALL" >"$WORK/open-$N_SMALL.txt"
"$LAB" targets open "$N_LARGE" >"$WORK/open-$N_LARGE.txt"
"$LAB" targets mixed "$N_MIXED" >"$WORK/mixed-$N_MIXED.txt"
for l in "${LISTS[@]}"; do
    LIST_FILE[$l]=$WORK/$l.txt
    LIST_N[$l]=$(wc -l <"$WORK/$l.txt")
done

# --- running and scoring -----------------------------------------------------------------------

RESULTS=$WORK/results.tsv
: >"$RESULTS"

# run TOOL LIST TIMEOUT OUTFILE CMD...: runs CMD (stdout to OUTFILE) under `timeout`, timing it and
# counting the probes it sent. Sets RUN_WALL RUN_CPU RUN_PROBES RUN_RC.
run() {
    local tool=$1 list=$2 limit=$3 out=$4
    shift 4
    local tf=$WORK/$tool-$list.time
    reset_counter
    local TIMEFORMAT='%R %U %S'
    set +e
    { time timeout --kill-after=5 "$limit" "$@" >"$out" 2>"$WORK/$tool-$list.err"; } 2>"$tf"
    RUN_RC=$?
    set -e
    RUN_PROBES=$(read_counter)
    read -r RUN_WALL user sys <"$tf"
    RUN_CPU=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
}

# score TOOL LIST OUTFILE NTARGETS [NOTE]: checks the output and appends a result row.
score() {
    local tool=$1 list=$2 out=$3 n=$4 note=${5:-} check pct detail
    # (A loop's status is its last trace's, and a trace that does not reach its target fails: the
    # loops end in `true`; anything else non-zero is shown.)
    check=$(python3 "$CHECK" --truth "$WORK/truth.json" --targets "${LIST_FILE[$list]}" --tool "$tool" \
        --output "$out" --limit "$n" --port "$PORT" --show 3) || check='{"percent": "?", "failures": []}'
    echo "$check" >"$WORK/$tool-$list.check.json"
    pct=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["percent"])' "$check")
    detail=$(python3 -c '
import json, sys
c = json.loads(sys.argv[1])
for f in c.get("failures", []):
    print("      wrong: %s (%s): %s; hops %s" % (f["target"], f["kind"], f["reason"], f["hops"]))
' "$check")
    if ((RUN_RC == 124 || RUN_RC == 137)); then
        note="${note:+$note; }timed out"
    elif ((RUN_RC != 0)); then
        note="${note:+$note; }exit $RUN_RC"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$list" "$n" "$RUN_WALL" "$RUN_CPU" "$RUN_PROBES" "$pct" \
        "$note" >>"$RESULTS"
    printf '   %-13s %-12s %6s targets  %7.2f s wall  %7.2f s CPU  %8s probes  %6s%% correct %s\n' \
        "$tool" "$list" "$n" "$RUN_WALL" "$RUN_CPU" "$RUN_PROBES" "$pct" "${note:+($note)}"
    [[ -z $detail ]] || echo "$detail"
}

# --- equal rates: CPU ----------------------------------------------------------------------------

# Both tools on the large open list at the same probe rate, in alternating pairs so that whatever
# else the machine is doing falls on both. CPU is user+sys of the process tree, as above. With the
# forwarding steered (1), RPS on the vantage point's veth and on r1's link from it hands what they
# receive to CPU 1, and both tools run pinned to CPU 0.
steer() { "$LAB" steer "$1" 2>/dev/null || true; }  # steer CPUMASK (lab.sh steer; 0 = off)
equal_rates() {
    have scamper || return 0
    local list=open-$N_LARGE
    local file=${LIST_FILE[$list]} n=${LIST_N[$list]}
    local rate=${FT_EQ_RATE:-${SCAMPER_RATE[$list]:-}}
    local modes=${FT_EQ_STEER:-0} mode pair pin
    $EQUAL_ONLY && modes=${FT_EQ_STEER:-0 1}
    for mode in $modes; do
        local equal=$WORK/equal-$mode.tsv
        : >"$equal"
        pin=()
        if [[ $mode == 1 ]]; then
            (($(nproc) >= 2)) || { echo "   (steering needs two CPUs: skipped)"; continue; }
            command -v taskset >/dev/null || { echo "   (steering needs taskset: skipped)"; continue; }
            steer 2
            pin=(taskset -c 0)
        fi
        echo
        echo "== equal rates: $list, fasttrace --rate ${rate:-"(the rate scamper achieves in its first run)"}, $EQ_PAIRS pairs, forwarding $([[ $mode == 1 ]] && echo "steered to CPU 1, tools pinned to CPU 0" || echo "charged to the sender")"
        for ((pair = 1; pair <= EQ_PAIRS; pair++)); do
            (($(bound 120) > 30)) || { echo "   (stopping early: time budget)"; break; }
            run scamper "eq$mode-$pair" "$(bound 120)" "$WORK/scamper-eq$mode-$pair.json" \
                ip netns exec "$VNS" "${pin[@]}" scamper -p "$SCAMPER_PPS" -w 0 -O json \
                -c "trace -P tcp -d $PORT -q 1 -w $WAIT -m $MAXTTL -g $GAP" -f "$file"
            printf 'scamper\t%s\t%s\t%s\t%s\t%s\n' "$pair" "$RUN_WALL" "$RUN_CPU" "$RUN_PROBES" "$RUN_RC" >>"$equal"
            printf '   pair %d  %-9s %7.2f s wall  %5.2f s CPU  %8s probes  %6.0f probes/s\n' "$pair" scamper "$RUN_WALL" \
                "$RUN_CPU" "$RUN_PROBES" "$(awk -v p="$RUN_PROBES" -v w="$RUN_WALL" 'BEGIN { print (w > 0 ? p / w : 0) }')"
            if [[ -z $rate ]]; then
                rate=$(awk -v p="$RUN_PROBES" -v w="$RUN_WALL" 'BEGIN { r = (w > 0 ? int(p / w) : 0); print (r > 0 ? r : 8000) }')
            fi
            run fasttrace "eq$mode-$pair" "$(bound 120)" "$WORK/fasttrace-eq$mode-$pair.json" \
                ip netns exec "$VNS" "${pin[@]}" "$FASTTRACE" -n --targets "$file" -p "$PORT" --format json -q 1 -w "$WAIT" \
                -m "$MAXTTL" --gap "$GAP" --rate "$rate"
            printf 'fasttrace\t%s\t%s\t%s\t%s\t%s\n' "$pair" "$RUN_WALL" "$RUN_CPU" "$RUN_PROBES" "$RUN_RC" >>"$equal"
            printf '   pair %d  %-9s %7.2f s wall  %5.2f s CPU  %8s probes  %6.0f probes/s\n' "$pair" fasttrace "$RUN_WALL" \
                "$RUN_CPU" "$RUN_PROBES" "$(awk -v p="$RUN_PROBES" -v w="$RUN_WALL" 'BEGIN { print (w > 0 ? p / w : 0) }')"
            check=$(python3 "$CHECK" --truth "$WORK/truth.json" --targets "$file" --tool fasttrace \
                --output "$WORK/fasttrace-eq$mode-$pair.json" --limit "$n" --port "$PORT" --show 3) ||
                check='{"percent": "?"}'
            echo "            fasttrace traces right: $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["percent"])' "$check") %"
        done
        [[ $mode == 1 ]] && steer 0
        python3 - "$equal" "$n" "$rate" "$mode" <<'PYEOF'
import statistics, sys

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
n, rate, mode = sys.argv[2], sys.argv[3], sys.argv[4]
med = {}
for tool in ("scamper", "fasttrace"):
    mine = [r for r in rows if r[0] == tool and r[5] == "0"]
    if not mine:
        continue
    cpu = statistics.median(float(r[3]) for r in mine)
    probes = statistics.median(int(r[4]) for r in mine)
    pps = statistics.median(int(r[4]) / float(r[2]) for r in mine if float(r[2]) > 0)
    med[tool] = cpu
    print(f"   median {tool:<9} {cpu:5.2f} s CPU  {probes:8,.0f} probes  {pps:6,.0f} probes/s"
          f"  ({1e6 * cpu / probes if probes else 0:.1f} µs CPU per probe)")
if len(med) == 2 and med["scamper"] > 0:
    how = "forwarding steered off the tools' CPU" if mode == "1" else "forwarding charged to the sender"
    print(f"   CPU at equal rates, fasttrace/scamper: {med['fasttrace'] / med['scamper']:.2f} "
          f"({n} open targets, {rate} probes/s, median of the pairs, {how})")
PYEOF
    done
}

if $EQUAL_ONLY; then
    equal_rates
    echo "== done in $((SECONDS - START)) s; outputs in $WORK$($KEEP || echo ' (deleted; --keep keeps them)')"
    exit 0
fi

# --- send paths: the TX ring against the raw socket ----------------------------------------------

# fasttrace against itself at one rate: --send-path ring and --send-path socket on the large open list,
# in alternating pairs (whatever else the machine does falls on both). CPU is user and sys of the
# process (bash `time`); probes counted at r1. Every trace is checked against the truth.
if $SEND_PATHS; then
    SP_LIST=open-$N_LARGE
    SP_RATE=${FT_SP_RATE:-20000}
    SP_PAIRS=${FT_SP_PAIRS:-3}
    SP=$WORK/send-paths.tsv
    : >"$SP"
    echo "== send paths: $SP_LIST, --rate $SP_RATE, $SP_PAIRS pairs (ring, then socket)"
    for ((pair = 1; pair <= SP_PAIRS; pair++)); do
        for path in ring socket; do
            (($(bound 120) > 30)) || { echo "   (stopping early: time budget)"; break 2; }
            run "fasttrace-$path" "sp$pair" "$(bound 120)" "$WORK/$path-sp$pair.json" \
                ip netns exec "$VNS" "$FASTTRACE" -n --targets "${LIST_FILE[$SP_LIST]}" -p "$PORT" --format json \
                -q 1 -w "$WAIT" -m "$MAXTTL" --gap "$GAP" --rate "$SP_RATE" --send-path "$path"
            read -r _ user sys <"$WORK/fasttrace-$path-sp$pair.time"
            check=$(python3 "$CHECK" --truth "$WORK/truth.json" --targets "${LIST_FILE[$SP_LIST]}" --tool fasttrace \
                --output "$WORK/$path-sp$pair.json" --limit "${LIST_N[$SP_LIST]}" --port "$PORT" --show 3) ||
                check='{"percent": "?"}'
            pct=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["percent"])' "$check")
            said=$(grep -o 'sent through the [^,]*' "$WORK/fasttrace-$path-sp$pair.err" | tail -n 1 || true)
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$path" "$pair" "$RUN_WALL" "$user" "$sys" "$RUN_PROBES" \
                "$RUN_RC" "$pct" >>"$SP"
            printf '   pair %d  %-6s %6.2f s wall  %5.2f s user  %5.2f s sys  %8s probes  %6.0f probes/s  %s%% right  (%s)\n' \
                "$pair" "$path" "$RUN_WALL" "$user" "$sys" "$RUN_PROBES" \
                "$(awk -v p="$RUN_PROBES" -v w="$RUN_WALL" 'BEGIN { print (w > 0 ? p / w : 0) }')" "$pct" "$said"
        done
    done
    python3 - "$SP" "$SP_RATE" "${LIST_N[$SP_LIST]}" <<'PYEOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
rate, n = sys.argv[2], sys.argv[3]
med = {}
for path in ("ring", "socket"):
    mine = [r for r in rows if r[0] == path and r[6] == "0"]
    if not mine:
        continue
    user = statistics.median(float(r[3]) for r in mine)
    sys_ = statistics.median(float(r[4]) for r in mine)
    cpu = statistics.median(float(r[3]) + float(r[4]) for r in mine)
    probes = statistics.median(int(r[5]) for r in mine)
    pps = statistics.median(int(r[5]) / float(r[2]) for r in mine if float(r[2]) > 0)
    med[path] = (cpu, user, sys_, pps)
    print(f"   median {path:<6} {cpu:5.2f} s CPU ({user:.2f} user, {sys_:.2f} sys)  {probes:8,.0f} probes  "
          f"{pps:6,.0f} probes/s  ({1e6 * cpu / probes if probes else 0:.1f} µs CPU per probe)")
if len(med) == 2 and med["socket"][0] > 0:
    r, s = med["ring"], med["socket"]
    print(f"   ring/socket at --rate {rate} ({n} open targets, medians of the pairs): CPU {r[0] / s[0]:.2f}, "
          f"user {r[1] / s[1]:.2f}, sys {r[2] / s[2]:.2f}, probes/s {r[3] / s[3]:.2f}")
PYEOF
    echo "== done in $((SECONDS - START)) s; outputs in $WORK$($KEEP || echo ' (deleted; --keep keeps them)')"
    exit 0
fi

# loop_cmd TOOL LIST N: a shell loop tracing the first N targets one at a time.
loop_script() {
    local tool=$1 file=$2 n=$3
    local cmd
    case $tool in
        traceroute) cmd="traceroute -T -p $PORT -q 1 -w $WAIT -m $MAXTTL -n" ;;
        tcptraceroute) cmd="tcptraceroute -q 1 -w $WAIT -m $MAXTTL -n" ;;
    esac
    # Per target: bounded by timeout; tcptraceroute takes the port after the host.
    local portarg=""
    [[ $tool == tcptraceroute ]] && portarg=$PORT
    echo "head -n $n '$file' | while read -r t; do echo \"### \$t\"; timeout 40 $cmd \"\$t\" $portarg 2>&1; done; true"
}

echo "== settings"
echo "   fasttrace     -n --targets LIST -p $PORT --format json -q 1 -w $WAIT -m $MAXTTL --gap $GAP --rate $RATE"
echo "   scamper       -p $SCAMPER_PPS -w 0 -O json -c 'trace -P tcp -d $PORT -q 1 -w $WAIT -m $MAXTTL -g $GAP' -f LIST"
echo "                 (-p $SCAMPER_PPS is scamper's maximum packets/s; -w 0 = no limit on traces in parallel)"
echo "   nmap          -sS -Pn -n -p $PORT --traceroute -T4 --min-rate 5000 -iL LIST -oX OUT"
echo "                 (not on the $N_LARGE list; first $N_NMAP_MIXED of the mixed list; nmap has no max-TTL or gap"
echo "                 option for --traceroute, and copies hops it shares with an earlier host instead of probing them)"
echo "   traceroute    -T -p $PORT -q 1 -w $WAIT -m $MAXTTL -n TARGET, one target at a time, first $N_LOOP targets"
echo "   tcptraceroute -q 1 -w $WAIT -m $MAXTTL -n TARGET $PORT, one target at a time, first $N_LOOP_SLOW targets"
echo "   (traceroute sends its 16 TTLs at once; tcptraceroute one probe at a time; neither has a gap limit)"

for list in "${LISTS[@]}"; do
    file=${LIST_FILE[$list]}
    n=${LIST_N[$list]}
    echo "== $list ($n targets)"

    limit=$(bound 180)
    if ((limit > 5)); then
        run fasttrace "$list" "$limit" "$WORK/fasttrace-$list.json" \
            ip netns exec "$VNS" "$FASTTRACE" -n --targets "$file" -p "$PORT" --format json -q 1 -w "$WAIT" \
            -m "$MAXTTL" --gap "$GAP" --rate "$RATE"
        claimed=$(grep -o '[0-9]* probes sent' "$WORK/fasttrace-$list.err" | awk '{ print $1 }' | tail -n 1)
        score fasttrace "$list" "$WORK/fasttrace-$list.json" "$n" "rate $RATE${claimed:+, says $claimed sent}"
    fi

    if have scamper && (($(bound 300) > 5)); then
        run scamper "$list" "$(bound 300)" "$WORK/scamper-$list.json" \
            ip netns exec "$VNS" scamper -p "$SCAMPER_PPS" -w 0 -O json \
            -c "trace -P tcp -d $PORT -q 1 -w $WAIT -m $MAXTTL -g $GAP" -f "$file"
        score scamper "$list" "$WORK/scamper-$list.json" "$n"
        SCAMPER_RATE[$list]=$(awk -v p="$RUN_PROBES" -v w="$RUN_WALL" 'BEGIN { if (w > 0) printf "%d", p / w }')
    fi

    # nmap is quick on open targets but slow on silent and black-holed ones (its traceroute of a
    # black hole runs to TTL 30 with retries, and results come per host group): on the mixed list it
    # gets the first $N_NMAP_MIXED targets only, extrapolated; on the large list none.
    nmap_n=$n
    [[ $list == mixed-* ]] && ((N_NMAP_MIXED < n)) && nmap_n=$N_NMAP_MIXED
    if have nmap && ((n <= N_SMALL)) && (($(bound 300) > 5)); then
        head -n "$nmap_n" "$file" >"$WORK/nmap-$list.targets"
        run nmap "$list" "$(bound 300)" /dev/null \
            ip netns exec "$VNS" nmap -sS -Pn -n -p "$PORT" --traceroute -T4 --min-rate 5000 \
            -iL "$WORK/nmap-$list.targets" -oX "$WORK/nmap-$list.xml"
        score nmap "$list" "$WORK/nmap-$list.xml" "$nmap_n" "$( ((nmap_n < n)) && echo "first $nmap_n of $n")"
    elif have nmap; then
        echo "   nmap          skipped on $list: too slow for the time budget"
        printf 'nmap\t%s\t%s\t-\t-\t-\t-\tskipped (time budget)\n' "$list" "$n" >>"$RESULTS"
    fi

    for tool in traceroute tcptraceroute; do
        have "$tool" || continue
        loop_n=$N_LOOP
        [[ $tool == tcptraceroute ]] && loop_n=$N_LOOP_SLOW
        ((loop_n <= n)) || loop_n=$n
        (($(bound 240) > 5)) || continue
        run "$tool" "$list" "$(bound 240)" "$WORK/$tool-$list.txt" \
            ip netns exec "$VNS" bash -c "$(loop_script "$tool" "$file" "$loop_n")"
        score "$tool" "$list" "$WORK/$tool-$list.txt" "$loop_n" "first $loop_n of $n"
    done
done

# --- table -------------------------------------------------------------------------------------

echo
echo "== results (lab $FT_LAB_PREFIX; port $PORT, 1 probe/hop, wait ${WAIT}s, max TTL $MAXTTL; fasttrace --rate $RATE)"
python3 - "$RESULTS" "$(declare -p LIST_N | sed 's/^declare -A LIST_N=//')" <<'PYEOF'
import re, sys

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
list_sizes = dict(re.findall(r'\[([^\]]+)\]="?(\d+)"?', sys.argv[2]))
fast = {r[1]: float(r[3]) for r in rows if r[0] == "fasttrace" and r[3] not in ("-", "")}

hdr = ["tool", "list", "targets", "wall s", "CPU s", "probes", "probes/s", "correct %", "wall, whole list", "× faster", "note"]
out = []
for tool, lst, n, wall, cpu, probes, pct, note in rows:
    if wall == "-":
        out.append([tool, lst, n, "-", "-", "-", "-", "-", "-", "-", note])
        continue
    w, total = float(wall), int(list_sizes.get(lst, n))
    pps = f"{int(probes) / w:,.0f}" if w > 0 else "-"
    whole = w * total / int(n) if int(n) else w
    mark = "" if int(n) == total else "~"
    whole_s = f"{mark}{whole:,.1f}"
    if tool == "fasttrace":
        faster = "1.0"
    elif lst in fast and fast[lst] > 0:
        faster = f"{mark}{whole / fast[lst]:,.1f}"
    else:
        faster = "-"
    out.append([tool, lst, n, f"{w:.2f}", cpu, f"{int(probes):,}", pps, pct, whole_s, faster, note])

widths = [max(len(str(r[i])) for r in out + [hdr]) for i in range(len(hdr))]
def line(r):
    return "  ".join(str(c).rjust(widths[i]) if 2 <= i <= 9 else str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip()
print(line(hdr))
print(line(["-" * w for w in widths]))
for r in out:
    print(line(r))
print()
print("probes: SYNs (and non-TCP packets) the vantage point sent, counted at r1.  × faster: the peer's wall time")
print("for the whole list / fasttrace's.  ~ = extrapolated from the first N targets (one-at-a-time tools).")
PYEOF

equal_rates

# --- rate limits on ----------------------------------------------------------------------------

RL_LIST=mixed-$N_MIXED
RL_FILE=${LIST_FILE[$RL_LIST]}
RL_N=${LIST_N[$RL_LIST]}
RATELIMITED=$WORK/ratelimited.tsv
RL_REST=7  # seconds for the routers' ICMP budgets to refill before each tool's run
: >"$RATELIMITED"

# rl_score TOOL OUT: scores a rate-limited run (reach/state, wrong hops, hops found) into the table.
rl_score() {
    local tool=$1 out=$2 check note="" rl_summary=""
    check=$(python3 "$CHECK" --truth "$WORK/truth.json" --targets "$RL_FILE" --tool "$tool" --output "$out" \
        --port "$PORT" --show 3) || check='{}'
    echo "$check" >"$WORK/$tool-rl.check.json"
    if ((RUN_RC == 124 || RUN_RC == 137)); then note="timed out"; elif ((RUN_RC != 0)); then note="exit $RUN_RC"; fi
    if [[ $tool == fasttrace ]]; then
        # (The summary says "N rate-limited hops, M likely (K re-asks)"; no match is no reason to stop.)
        rl_summary=$(grep -o '[0-9]* rate-limited hops, [0-9]* likely ([0-9]* re-asks)' "$WORK/fasttrace-rl.err" |
            tail -n 1 || true)
    fi
    python3 - "$check" "$tool" "$RL_N" "$RUN_WALL" "$RUN_PROBES" "$note" "$rl_summary" >>"$RATELIMITED" <<'PYEOF'
import json, sys
c = json.loads(sys.argv[1] or "{}")
tool, n, wall, probes, note, summary = sys.argv[2:8]
probes = int(probes or 0)
found = c.get("hops_found", 0)
print("\t".join(str(x) for x in [
    tool, n, wall, c.get("reach_correct", "?"), c.get("reach_percent", "?"), c.get("wrong_hops", "?"), found,
    probes, f"{found / probes:.3f}" if probes else "-",
    c.get("rate_limited_hops", 0) if tool == "fasttrace" else "-", summary, note]))
for f in c.get("reach_failures", []):
    print(f"#      wrong: {f['target']} ({f['kind']}): {f['reason']}; hops {f['hops']}", file=sys.stderr)
PYEOF
}

echo
echo "== rate limits on: $RL_LIST with the routers' ICMP rate limits on (lab.sh ratelimit on)"
if (($(bound 240) > 30)); then
    "$LAB" ratelimit on >"$WORK/ratelimit.log" 2>&1 || die "lab ratelimit on failed: $(tail -n 3 "$WORK/ratelimit.log")"
    # Each tool starts with the routers' full ICMP budget (a burst of 6, then 1 a second per
    # destination): the runs before have just spent it, and a tool that starts while every router is
    # still silent learns nothing from them (see the README).
    sleep "$RL_REST"
    run fasttrace rl "$(bound 240)" "$WORK/fasttrace-rl.json" \
        ip netns exec "$VNS" "$FASTTRACE" -n --targets "$RL_FILE" -p "$PORT" --format json -q 1 -w "$WAIT" \
        -m "$MAXTTL" --gap "$GAP" --rate "$RATE"
    rl_score fasttrace "$WORK/fasttrace-rl.json"
    if have scamper && (($(bound 240) > 30)); then
        sleep "$RL_REST"
        run scamper rl "$(bound 240)" "$WORK/scamper-rl.json" \
            ip netns exec "$VNS" scamper -p "$SCAMPER_PPS" -w 0 -O json \
            -c "trace -P tcp -d $PORT -q 1 -w $WAIT -m $MAXTTL -g $GAP" -f "$RL_FILE"
        rl_score scamper "$WORK/scamper-rl.json"
    fi
    "$LAB" ratelimit off >>"$WORK/ratelimit.log" 2>&1 || die "lab ratelimit off failed: $(tail -n 3 "$WORK/ratelimit.log")"
    python3 - "$RATELIMITED" <<'PYEOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
hdr = ["tool", "targets", "wall s", "reach/state right", "%", "wrong hops", "hops found", "probes", "hops/probe",
       "rate-limited hops", "note"]
out = []
for tool, n, wall, right, pct, wrong, found, probes, per, limited, summary, note in rows:
    out.append([tool, n, f"{float(wall):.2f}", right, pct, wrong, found, f"{int(probes):,}", per, limited,
                "; ".join(x for x in (summary and "fasttrace says " + summary, note) if x)])
widths = [max(len(str(r[i])) for r in out + [hdr]) for i in range(len(hdr))]
def line(r):
    return "  ".join(str(c).rjust(widths[i]) if 1 <= i <= 9 else str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip()
print("   " + line(hdr))
print("   " + line(["-" * w for w in widths]))
for r in out:
    print("   " + line(r))
print("   reach/state right: reached exactly when the truth has a destination, and the port state the truth")
print("   gives (where the tool reports one). wrong hops: answers from an address the truth does not allow at")
print("   that TTL. hops found: router TTLs answered from an allowed address. probes: counted at r1.")
PYEOF
else
    echo "   skipped: time budget"
fi

echo "== done in $((SECONDS - START)) s; outputs in $WORK$($KEEP || echo ' (deleted; --keep keeps them)')"
