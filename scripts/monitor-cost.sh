#!/usr/bin/env bash
# What continuous mode costs on a busy host, beside scamper at the same probe rate, in the namespace lab:
# for 1,000 and 10,000 probes/s, fasttrace --interval runs for a fixed time over enough open targets to
# send at that rate, then scamper traces the same kind of list paced at the same rate (-p) for the same
# time; each prints CPU (user + sys of the whole process) per 1,000 probes, and the script prints their
# ratio. Then fasttrace's CPU and wake-ups while it waits between rounds, and its resident memory over
# the run (sampled every 10 s). Run as root from anywhere:
#
#   scripts/monitor-cost.sh
#
# Environment:
#   FT_COST_DURATION  seconds each run lasts (default 60)
#   FT_COST_RATES     probe rates, space-separated (default "1000 10000"; scamper's -p allows 1...10000)
#   FT_BIN            the fasttrace binary (default: the release build in .build-release, built if missing)
#   FT_LAB_PREFIX     the lab's namespace prefix (default ftcost: a lab of its own). A lab already up
#                     under that prefix is used and left up; otherwise one is brought up and torn down.
#   FT_COST_STEER     1 (default): the lab's forwarding is steered off the tools' CPU (RPS sends the
#                     packets the vantage point's veth hands to r1, and r1's hand back, to CPU 1; both
#                     tools run pinned to CPU 0), so "CPU" is each tool's own: its user space and its
#                     system calls, as on a production host that forwards nothing. 0: no steering, no
#                     pinning; the forwarding is charged to the sender (the figures of earlier runs).
#
# Fairness: both probe TCP port 443, one probe per hop, wait at most 1 s, stop at TTL 16 and after 3
# silent hops, and write JSON to /dev/null. "probes" is counted the same way for both, by an nftables
# counter in the first router (r1) on the SYNs the vantage point sends it (not the kernel's RSTs to
# SYN-ACKs). Unsteered, the lab's forwarding runs in the sender's softirq and is charged to the sender,
# so only equal rates give comparable CPU. Every run is under `timeout`; the whole script takes about
# 5 × FT_COST_DURATION seconds.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${FT_COST_DURATION:-60}
read -r -a RATES <<<"${FT_COST_RATES:-1000 10000}"
export FT_LAB_PREFIX=${FT_LAB_PREFIX:-ftcost}
LAB="$REPO/scripts/lab.sh"
VNS="$FT_LAB_PREFIX-vantage"
R1NS="$FT_LAB_PREFIX-r1"
INTERVAL=10          # fasttrace's --interval: the list is sized so its rounds send at the rate
PROBES_PER_TRACE=7   # an open lab target is 7 hops away: 7 SYNs a trace at -q 1

die() { echo "monitor-cost.sh: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "run as root (network namespaces and raw sockets)"
command -v scamper >/dev/null || die "scamper is needed: apt-get install -y scamper"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is needed: apt-get install -y time"

WORK=$(mktemp -d /tmp/ft-monitor-cost.XXXXXX)
brought_up=0
STEER=${FT_COST_STEER:-1}
PIN=()
steer() { "$LAB" steer "$1" 2>/dev/null || true; }  # steer CPUMASK (lab.sh steer)
cleanup() {
    steer 0
    ip netns exec "$R1NS" nft delete table ip ftcost 2>/dev/null || true
    if ((brought_up)); then "$LAB" down >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -n ${FT_BIN:-} ]]; then
    FASTTRACE=$FT_BIN
else
    echo "== building fasttrace (release, .build-release)"
    (cd "$REPO" && timeout 1800 swift build -c release --static-swift-stdlib --scratch-path .build-release \
        --product fasttrace 2>&1 | tail -n 1) || die "release build failed"
    FASTTRACE=$(cd "$REPO" && swift build -c release --static-swift-stdlib --scratch-path .build-release --show-bin-path)/fasttrace
fi

if [[ ! -e /run/netns/$VNS ]]; then
    echo "== lab ($FT_LAB_PREFIX)"
    "$LAB" up >/dev/null
    brought_up=1
fi
VANTAGE_ADDR=$(ip -n "$VNS" -4 -o addr show dev veth0 | awk '{print $4}' | cut -d/ -f1)
if [[ $STEER == 1 ]]; then
    (($(nproc) >= 2)) || die "FT_COST_STEER=1 needs two CPUs (FT_COST_STEER=0 measures without steering)"
    command -v taskset >/dev/null || die "taskset is needed (util-linux)"
    steer 2
    [[ $(ip netns exec "$R1NS" cat /sys/class/net/up0/queues/rx-0/rps_cpus) == *2 ]] || die "could not set RPS on r1"
    PIN=(taskset -c 0)
fi

# The probe counter in r1: SYNs from the vantage point, whichever tool sent them.
ip netns exec "$R1NS" nft delete table ip ftcost 2>/dev/null || true
ip netns exec "$R1NS" nft -f - <<EOF
table ip ftcost {
    counter syn {}
    chain count {
        type filter hook prerouting priority -300; policy accept;
        iifname "up0" ip saddr $VANTAGE_ADDR tcp flags & (syn | ack) == syn counter name "syn"
    }
}
EOF
reset_counter() { ip netns exec "$R1NS" nft reset counters table ip ftcost >/dev/null; }
read_counter() {
    ip netns exec "$R1NS" nft list counter ip ftcost syn | awk '/packets/ { for (i = 1; i <= NF; i++) if ($i == "packets") print $(i + 1) }'
}

# CPU seconds (user + sys) of a process so far, from /proc (all its threads).
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# Voluntary context switches of all its threads (each a wake-up after sleeping).
wakeups_of() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ { s += $2 } END { print s + 0 }'; }
rss_mb_of() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "-"; }

printf '%s\n' "== forwarding $([[ $STEER == 1 ]] && echo "steered to CPU 1, tools pinned to CPU 0" || echo "not steered (charged to the sender)")"
printf '%s\n' "== $DURATION s per run, lab $FT_LAB_PREFIX, fasttrace $("$FASTTRACE" --version 2>&1 | head -n 1), $(scamper -v 2>&1 | head -n 1)"
RESULTS="$WORK/results"
: >"$RESULTS"
for rate in "${RATES[@]}"; do
    targets=$(( rate * INTERVAL / PROBES_PER_TRACE ))
    "$LAB" targets open "$targets" >"$WORK/list-$rate"

    # fasttrace: continuous mode over the list, for DURATION seconds (no round starts after it).
    reset_counter
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/time-ft-$rate" timeout $((DURATION + 60)) \
        "${PIN[@]}" "$FASTTRACE" --netns "$VNS" -n --targets "$WORK/list-$rate" -p 443 --interval "$INTERVAL" \
        --duration "$DURATION" -q 1 -w 1 -m 16 --gap 3 --rate "$rate" --format json >/dev/null 2>"$WORK/err-ft-$rate" &
    timer=$!
    sleep 1
    pid=$(pgrep -P "$(pgrep -P "$timer" | head -n 1)" | head -n 1 || true)
    [[ -n $pid ]] || pid=$(pgrep -P "$timer" | head -n 1)
    rss=()
    for ((t = 0; t < DURATION + 60; t += 10)); do
        [[ -e /proc/$pid ]] || break
        rss+=("$(rss_mb_of "$pid")")
        sleep 10
    done
    wait "$timer" || true
    ft_probes=$(read_counter)
    read -r ft_wall ft_user ft_sys ft_peak < <(tail -n 1 "$WORK/time-ft-$rate")

    # scamper: the same kind of list, long enough for DURATION seconds at the rate, paced with -p.
    # (The lab has 65,024 open addresses: a longer list goes round them again.)
    needed=$(( rate * (DURATION + 10) / PROBES_PER_TRACE ))
    "$LAB" targets open $(( needed < 65000 ? needed : 65000 )) >"$WORK/distinct-$rate"
    : >"$WORK/slist-$rate"
    while (( $(wc -l <"$WORK/slist-$rate") < needed )); do cat "$WORK/distinct-$rate" >>"$WORK/slist-$rate"; done
    head -n "$needed" "$WORK/slist-$rate" >"$WORK/slist-$rate.tmp" && mv "$WORK/slist-$rate.tmp" "$WORK/slist-$rate"
    reset_counter
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/time-sc-$rate" timeout -s INT "$DURATION" \
        ip netns exec "$VNS" "${PIN[@]}" scamper -p "$rate" -w 0 -O json -o /dev/null \
        -c "trace -P tcp -d 443 -q 1 -w 1 -m 16 -g 3" -f "$WORK/slist-$rate" 2>"$WORK/err-sc-$rate" || true
    sc_probes=$(read_counter)
    read -r sc_wall sc_user sc_sys sc_peak < <(tail -n 1 "$WORK/time-sc-$rate")

    printf '%s %s %s %s %s %s %s\n' "$rate" fasttrace "$ft_probes" "$ft_wall" "$ft_user" "$ft_sys" "$ft_peak" >>"$RESULTS"
    printf '%s %s %s %s %s %s %s\n' "$rate" scamper "$sc_probes" "$sc_wall" "$sc_user" "$sc_sys" "$sc_peak" >>"$RESULTS"
    echo "   fasttrace at $rate probes/s ($targets targets every $INTERVAL s): resident MB every 10 s: ${rss[*]}"
    tail -n 1 "$WORK/err-ft-$rate" | sed 's/^/   fasttrace: /'
done

echo
echo "== CPU per 1,000 probes at equal rates (user + sys; probes counted in r1)"
python3 - "$RESULTS" <<'EOF'
import sys
rows = [line.split() for line in open(sys.argv[1])]
print(f"   {'rate':>6} {'tool':<10} {'probes':>9} {'probes/s':>9} {'CPU s':>7} {'ms/1000':>8} {'peak MB':>8}")
by = {}
for rate, tool, probes, wall, user, sys_, peak in rows:
    probes, wall, cpu = int(probes), float(wall), float(user) + float(sys_)
    per = 1000 * cpu / probes * 1000 if probes else float("nan")
    by[(rate, tool)] = per
    print(f"   {rate:>6} {tool:<10} {probes:>9} {probes / wall:>9.0f} {cpu:>7.2f} {per:>8.2f} {int(peak) / 1024:>8.1f}")
for rate in dict.fromkeys(r[0] for r in rows):
    f, s = by.get((rate, "fasttrace")), by.get((rate, "scamper"))
    if f and s:
        print(f"   {rate} probes/s: CPU per 1,000 probes, fasttrace/scamper = {f / s:.2f}")
EOF

echo
echo "== between rounds: one target, --interval 30, CPU and wake-ups from 3 s to 28 s (no round runs then)"
timeout 80 "$FASTTRACE" --netns "$VNS" -n --interval 30 --duration 35 -q 1 -w 1 -m 16 \
    --format json "$(head -n 1 "$WORK/list-${RATES[0]}")" 443 >/dev/null 2>&1 &
runner=$!
sleep 3
pid=$(pgrep -P "$runner" | head -n 1 || echo "$runner")
[[ -e /proc/$pid/stat ]] || pid=$runner
cpu0=$(cpu_of "$pid"); wake0=$(wakeups_of "$pid")
sleep 25
cpu1=$(cpu_of "$pid"); wake1=$(wakeups_of "$pid")
wait "$runner" || true
python3 - "$cpu0" "$cpu1" "$wake0" "$wake1" <<'EOF'
import sys
c0, c1, w0, w1 = map(float, sys.argv[1:])
print(f"   idle: {1000 * (c1 - c0):.0f} ms CPU in 25 s ({100 * (c1 - c0) / 25:.2f} % of a core), "
      f"{(w1 - w0) / 25:.0f} wake-ups/s (all threads)")
EOF
