#!/usr/bin/env bash
# Where fasttrace's CPU goes, per probe and per reply, on each send path: `perf record` (software
# cpu-clock sampling with kernel and user call chains; this VM has no hardware counters) of one release
# run on the lab's open list, then every sample sorted by thread and call chain into:
#
#   user, engine + send      the scheduler thread in user space: admission, pacing, timeouts, writing
#                            and framing probes                                         (per probe)
#   kernel send              the send system call itself (sendmmsg, or the TX ring's send()), down to
#                            the veth's transmit, softirq work run inside it excluded  (per probe)
#   user, receive            the receive thread in user space: draining the ring, parsing, matching
#                                                                                       (per reply)
#   kernel receive           the packet socket's capture of a reply (tpacket_rcv, the eBPF filter) and
#                            the receive thread's poll()                                (per reply)
#   lab                      softirq work the kernel charges to whichever of our threads was running:
#                            forwarding through the lab's routers, the targets' and routers' answers,
#                            the vantage's own RSTs to SYN-ACKs. Not fasttrace's; a real network does it
#                            elsewhere
#   other                    everything else (start-up, clock reads, futexes, page faults, the list
#                            reader and output threads)
#
#   scripts/profile.sh [ring|socket|both|scamper]  (default both; run as root)
#
# `scamper` profiles scamper on the same list (`-p 10000`, its maximum: about 8,700 probes/s here) and
# then fasttrace's default send path at FT_PROFILE_RATE (default 8700 in this mode: the same rate),
# each sorted into the tool's own work (user and kernel) and the lab's (softirq work charged to it). With forwarding charged to
# the sender, the lab's work per probe is what neither tool can save, so it bounds the CPU ratio at
# equal rates from below: lab µs per probe / scamper's µs per probe.
#
# Environment: FT_LAB_PREFIX (default ftprof: its own lab, brought up and taken down here),
# FT_PROFILE_N (open targets, default 10000), FT_PROFILE_RATE (default 20000), FT_SCRATCH_PATH (release
# build, default .build), FT_PROFILE_KEEP=1 keeps the perf data in the work directory.
set -Eeuo pipefail

PATHS=${1:-both}
[[ $PATHS == both ]] && PATHS="ring socket"
[[ $PATHS == scamper ]] && PATHS="scamper auto"
case " $PATHS " in *" scamper "*) command -v scamper >/dev/null || { echo "profile.sh: scamper is missing" >&2; exit 1; } ;; esac
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
export FT_LAB_PREFIX=${FT_LAB_PREFIX:-ftprof}
N=${FT_PROFILE_N:-10000}
RATE=${FT_PROFILE_RATE:-$([[ ${1:-} == scamper ]] && echo 8700 || echo 20000)}
SCRATCH=${FT_SCRATCH_PATH:-.build}

[[ $(id -u) -eq 0 ]] || { echo "profile.sh: run as root" >&2; exit 1; }
command -v perf >/dev/null || { echo "profile.sh: perf is missing: apt-get install -y linux-perf" >&2; exit 1; }

WORK=$(mktemp -d /tmp/ftprofile.XXXXXX)
cleanup() {
    "$SCRIPT_DIR/lab.sh" down >/dev/null 2>&1 || true
    [[ ${FT_PROFILE_KEEP:-0} == 1 ]] && echo "profile.sh: kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$REPO" && swift build -c release --product fasttrace --scratch-path "$SCRATCH" 2>&1 | tail -n 1)
FASTTRACE=$(cd "$REPO" && swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/fasttrace
"$SCRIPT_DIR/lab.sh" up >"$WORK/lab.log" 2>&1 || { tail -n 5 "$WORK/lab.log" >&2; exit 1; }
"$SCRIPT_DIR/lab.sh" targets open "$N" >"$WORK/targets.txt"

for path in $PATHS; do
    if [[ $path == scamper ]]; then
        pps=10000
        echo "== scamper: perf record -e cpu-clock -F 9999 -g -- ip netns exec $FT_LAB_PREFIX-vantage scamper -p $pps -w 0" \
            "-O json -c 'trace -P tcp -d 443 -q 1 -w 1 -m 16 -g 3' -f LIST"
        perf record -q -e cpu-clock -F 9999 -g -o "$WORK/scamper.perf" -- \
            ip netns exec "$FT_LAB_PREFIX-vantage" scamper -p "$pps" -w 0 -O json \
            -c "trace -P tcp -d 443 -q 1 -w 1 -m 16 -g 3" -f "$WORK/targets.txt" >"$WORK/scamper.json" 2>"$WORK/scamper.err"
        perf script -i "$WORK/scamper.perf" -F comm,pid,tid,period,ip,sym,dso 2>/dev/null >"$WORK/scamper.script"
        python3 - "$WORK/scamper.script" "$WORK/scamper.json" <<'PYEOF'
import json, re, sys
probes = 0
for line in open(sys.argv[2]):
    try:
        record = json.loads(line)
    except ValueError:
        continue
    if record.get("type") == "trace":
        probes += int(record.get("probe_count", 0))
lab = own = 0
cur = None
SOFTIRQ = ("handle_softirqs", "__do_softirq", "net_rx_action")
def done(sample):
    global lab, own
    if sample and sample[0] == "scamper":
        if any(f.startswith(SOFTIRQ) for f in sample[2]): lab += sample[1]
        else: own += sample[1]
for line in open(sys.argv[1]):
    if not line.strip():
        done(cur); cur = None; continue
    if not line.startswith((" ", "\t")):
        m = re.match(r"\s*(\S+)\s+(\d+)/(\d+)\s+(\d+)", line)
        cur = (m.group(1), int(m.group(4)), []) if m else None
        continue
    if cur is not None:
        m = re.match(r"\s*[0-9a-f]+\s+(\S+)", line)
        if m: cur[2].append(m.group(1))
done(cur)
total = lab + own
print(f"   {probes} probes (scamper's probe_count), {total / 1e9:.2f} s CPU sampled")
for name, v in (("own", own), ("lab", lab)):
    print(f"   {name:<20} {v / 1e6:8.1f} ms  {100 * v / total if total else 0:5.1f}%  {v / probes / 1e3 if probes else 0:6.2f} µs per probe")
PYEOF
        continue
    fi
    echo "== $path: perf record -e cpu-clock -F 9999 -g -- ip netns exec $FT_LAB_PREFIX-vantage fasttrace -n" \
        "--targets LIST -p 443 --format json -q 1 -w 1 -m 16 --gap 3 --rate $RATE --send-path $path"
    perf record -q -e cpu-clock -F 9999 -g -o "$WORK/$path.perf" -- \
        ip netns exec "$FT_LAB_PREFIX-vantage" "$FASTTRACE" -n --targets "$WORK/targets.txt" -p 443 --format json \
        -q 1 -w 1 -m 16 --gap 3 --rate "$RATE" --send-path "$path" >"$WORK/$path.json" 2>"$WORK/$path.err"
    grep '^fasttrace: [0-9]* traces' "$WORK/$path.err" | tail -n 1
    perf script -i "$WORK/$path.perf" -F comm,pid,tid,period,ip,sym,dso 2>/dev/null >"$WORK/$path.script"
    python3 - "$WORK/$path.script" "$WORK/$path.err" <<'PYEOF'
import re, sys
from collections import defaultdict

script, err = sys.argv[1], sys.argv[2]
summary = [l for l in open(err) if re.match(r"fasttrace: \d+ traces", l)][-1]
probes = int(re.search(r"(\d+) probes? sent", summary).group(1))
replies = int(re.search(r"(\d+) repl(?:y|ies) matched", summary).group(1))

samples = []  # (comm, pid, tid, period, [(sym, dso)] leaf first)
cur = None
for line in open(script):
    if not line.strip():
        if cur: samples.append(cur)
        cur = None
        continue
    if not line.startswith((" ", "\t")):
        m = re.match(r"\s*(\S+)\s+(\d+)/(\d+)\s+(\d+)", line)
        cur = (m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)), []) if m else None
        continue
    if cur is not None:
        m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
        if m: cur[4].append((m.group(1), m.group(2)))
if cur: samples.append(cur)

receive_tids = {s[2] for s in samples if any("8Receiver" in f[0] and "3run" in f[0] for f in s[4])}
SOFTIRQ = {"handle_softirqs", "__do_softirq", "net_rx_action", "do_softirq", "__local_bh_enable_ip"}
SEND = {"__sys_sendmmsg", "__x64_sys_sendmmsg", "packet_sendmsg", "tpacket_snd", "raw_sendmsg", "__sys_sendto",
        "__x64_sys_sendto"}
CAPTURE = {"tpacket_rcv", "packet_rcv", "run_filter", "bpf_prog_run_pin_on_cpu"}
POLL = {"do_sys_poll", "__x64_sys_poll", "do_poll"}

ns = defaultdict(int)
for comm, pid, tid, period, stack in samples:
    syms = {f[0].split("+")[0] for f in stack}
    leaf_kernel = bool(stack) and "kernel" in stack[0][1]
    if comm != "fasttrace":
        cat = "other"
    elif syms & SOFTIRQ and not (syms & CAPTURE):
        cat = "lab"
    elif syms & CAPTURE:
        cat = "kernel receive"
    elif leaf_kernel and syms & SEND:
        cat = "kernel send"
    elif leaf_kernel and syms & POLL and tid in receive_tids:
        cat = "kernel receive"
    elif leaf_kernel:
        cat = "other"
    elif tid == pid:
        cat = "user, engine + send"
    elif tid in receive_tids:
        cat = "user, receive"
    else:
        cat = "other"
    ns[cat] += period

total = sum(ns.values())
print(f"   {probes} probes, {replies} replies, {total / 1e9:.2f} s CPU sampled")
for cat, per, unit in [("user, engine + send", probes, "probe"), ("kernel send", probes, "probe"),
                       ("user, receive", replies, "reply"), ("kernel receive", replies, "reply"),
                       ("lab", probes, "probe"), ("other", probes, "probe")]:
    v = ns.get(cat, 0)
    print(f"   {cat:<20} {v / 1e6:8.1f} ms  {100 * v / total if total else 0:5.1f}%  {v / per / 1e3 if per else 0:6.2f} µs per {unit}")
own = total - ns.get("lab", 0)
print(f"   {'own (all but lab)':<20} {own / 1e6:8.1f} ms  {100 * own / total if total else 0:5.1f}%  {own / probes / 1e3 if probes else 0:6.2f} µs per probe")
PYEOF
done
