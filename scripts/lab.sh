#!/usr/bin/env bash
# The fasttrace network lab: a small routed network built from network namespaces, with a known
# ground truth (which router answers at which TTL, which ports answer how), so the engine and peer
# tools can be run against real kernel routers and checked. Everything lives in namespaces this
# script creates; nothing is added to the root namespace. See scripts/README-lab.md.
#
#   scripts/lab.sh up [--ratelimit]   build the lab (tears down an existing one first)
#   scripts/lab.sh down               remove everything `up` made (idempotent)
#   scripts/lab.sh truth              print the ground-truth JSON
#   scripts/lab.sh targets KIND N     print N distinct targets: open|firewalled|silent|blackhole|dnat|wide-ecmp|mixed
#   scripts/lab.sh targets6 KIND N [--anyip]  the same over IPv6; --anyip: past the
#                                     assigned addresses of a kind, for TCP and ICMP echo only
#   scripts/lab.sh exec CMD...        run CMD in the vantage namespace
#   scripts/lab.sh ratelimit on|off   switch the routers' ICMP rate limits (kernel defaults) on the running lab
#   scripts/lab.sh verify             check the running lab against its truth with traceroute/nmap
#   scripts/lab.sh steer CPUMASK      RPS: what r1's link from the vantage point and the vantage point's
#                                     veth receive goes to CPUMASK (2: CPU 1), so the lab's forwarding is
#                                     not charged to a tool pinned elsewhere; 0 turns it off
#   scripts/lab.sh spread CPUMASK     RPS on every link of every node: the lab's forwarding spread over the
#                                     CPUs of CPUMASK by flow (3: both of a 2-core VM), so that a fast run's
#                                     forwarding is not all done on the sender's CPU; 0 turns it off
#
# Topology (all links are veth pairs; the ECMP hop answers from r4a or r4b per 5-tuple):
#
#   vantage - r1 - r2 - r3 =ECMP= {r4a|r4b} - r5 - r6 -+- t-open      198.19.0.0/16   (TTL 7)
#                                                     +- fw     - t-fw   198.18.32.0/20  (443 only)
#                                                     +- silent - t-silent 198.18.48.0/20 (no ICMP)
#                                                     +- hole              198.18.64.0/20 (drops all)
#                                                     +- nat - natr - t-nat 198.18.80.0/20 -> 198.18.96.0/20
#                                                                              2001:db8:600::/48 -> 2001:db8:700::/48
#
#   ... r1 - ws =4-way ECMP= {wa|wb|wc|wd} - wj =ECMP= +- wp ---------------------+- wm - t-wide  198.18.112.0/20
#                                                      +- wq =ECMP= {wq1|wq2} ----+      (TTL 7 or 8)
#
# The wide-ecmp branch leaves r1 (the other kinds' paths are untouched): ws splits four ways, wa-wd
# rejoin on a bridge in wj, and wj opens a nested diamond with branches of unequal length: through wp
# (one router) wm is hop 6 and the target hop 7; through wq and then wq1 or wq2 (two routers) wm is
# hop 7 and the target hop 8. ws, wj and wq hash on L4, each with its own seed.
#
# The nat router maps 198.18.80.0/20 one-to-one onto 198.18.96.0/20 (DNAT) and, like some NAT devices,
# leaves the ICMP errors coming back untranslated, so natr's time exceeded (TTL 8) quotes the
# translated destination: what tcptraceroute's DNAT detection looks for. The target answers at TTL 9.
# Over IPv6 the same (NAT66): 2001:db8:600::/48 one-to-one onto 2001:db8:700::/48, ICMPv6 untracked.
#
# Namespace names carry the prefix $FT_LAB_PREFIX (default ftlab). Addresses are the same in every
# lab; labs with different prefixes do not share anything, but tools should use one at a time.

set -Eeuo pipefail

PREFIX=${FT_LAB_PREFIX:-ftlab}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
LISTENER=$SCRIPT_DIR/lab-listener.py
if [[ $PREFIX == ftlab ]]; then
    STATE=$REPO/lab-state
else
    STATE=$REPO/lab-state/$PREFIX
fi

# --- Addressing -------------------------------------------------------------------------------
# Link networks are /30s in 198.18.0.0/26: the router farther from the vantage point takes the
# odd (.1) address, so with icmp_errors_use_inbound_ifaddr a hop answers from that address.
# r4a, r4b and r5 share one /29 through a bridge inside r5, so hop 5 has a single address
# whichever ECMP branch the probe took.

V_ADDR=198.18.0.2      # vantage veth0
R1=198.18.0.1          # hop 1
R2=198.18.0.5          # hop 2
R3=198.18.0.9          # hop 3
R4A=198.18.0.13        # hop 4, ECMP branch a
R4B=198.18.0.17        # hop 4, ECMP branch b
R5=198.18.0.25         # hop 5 (br0; r4a is .26, r4b is .27 on the same /29)
R6=198.18.0.33         # hop 6
FW=198.18.0.41         # hop 7 toward the firewalled prefix
SILENT=198.18.0.49     # hop 7 toward the silent-router prefix (never answers)
NAT=198.18.0.61        # hop 7 toward the DNAT prefix (the NAT router)
NATR=198.18.0.65       # hop 8 toward the DNAT prefix (behind the NAT: quotes the translated address)

OPEN_NET=198.19.0.0/16
FW_NET=198.18.32.0/20
SILENT_NET=198.18.48.0/20
HOLE_NET=198.18.64.0/20
DNAT_NET=198.18.80.0/20      # what the vantage point probes
INSIDE_NET=198.18.96.0/20    # where the NAT sends it (same host part)
TARGET_NETS=("$OPEN_NET" "$FW_NET" "$SILENT_NET" "$HOLE_NET" "$DNAT_NET")

# IPv6 (2001:db8::/32, RFC 3849), on every node: link k is
# 2001:db8:0:k::/64, the router farther from the vantage point ::1 (the address its ICMPv6 errors leave
# from: the one on the interface back toward the vantage point), the nearer side ::2. r4a and r4b reach
# r5's bridge as ::a and ::b. The target prefixes are /48s, AnyIP like the IPv4 ones.
L6=2001:db8:0
V6_ADDR=$L6:1::2
R1_6=$L6:1::1
R2_6=$L6:2::1
R3_6=$L6:3::1
R4A_6=$L6:4::1
R4B_6=$L6:5::1
R5_6=$L6:6::1
R6_6=$L6:7::1
FW_6=$L6:9::1
SILENT_6=$L6:b::1
NAT_6=$L6:e::1         # hop 7 toward the IPv6 DNAT prefix (the NAT66 router)
NATR_6=$L6:f::1        # hop 8 toward it (behind the NAT: quotes the translated address)
OPEN_NET6=2001:db8:100::/48
FW_NET6=2001:db8:200::/48
SILENT_NET6=2001:db8:300::/48
HOLE_NET6=2001:db8:400::/48
DNAT_NET6=2001:db8:600::/48     # what the vantage point probes over IPv6
INSIDE_NET6=2001:db8:700::/48   # where the NAT66 sends it (same interface identifier)
TARGET_NETS6=("$OPEN_NET6" "$FW_NET6" "$SILENT_NET6" "$HOLE_NET6" "$DNAT_NET6")
TARGETS6_PER_KIND=1024   # the targets6 list of each kind: ::1 to ::400

# The wide-ecmp branch, off r1: link networks in 198.18.4.0/26 (the farther router the odd address,
# as above) and 2001:db8:0:20::/59 (link 0x2k, farther side ::1; on the two bridges, wj's and wm's,
# the routers upstream are ::a, ::b, ...). Hop addresses, IPv4 and IPv6:
W4=198.18.4
WS=$W4.1               # hop 2, the 4-way split (ws: r1 is .2)
WA=$W4.5 WB=$W4.9 WC=$W4.13 WD=$W4.17   # hop 3 (ws is .6, .10, .14, .18)
WJ=$W4.25              # hop 4, join (bridge .25/29: wa .26, wb .27, wc .28, wd .29) and 2-way split
WP=$W4.33 WQ=$W4.37    # hop 5 (wj is .34, .38): wp the short branch, wq the long one and a 2-way split
WQ1=$W4.41 WQ2=$W4.45  # hop 6 on the long branch (wq is .42, .46)
WM=$W4.49              # hop 6 (short) or 7 (long): join (bridge .49/29: wp .50, wq1 .51, wq2 .52)
#                        wm - t-wide: .58 - .57
WIDE_NET=198.18.112.0/20
W6=2001:db8:0
WS_6=$W6:20::1
WA_6=$W6:21::1 WB_6=$W6:22::1 WC_6=$W6:23::1 WD_6=$W6:24::1
WJ_6=$W6:25::1
WP_6=$W6:26::1 WQ_6=$W6:27::1
WQ1_6=$W6:28::1 WQ2_6=$W6:29::1
WM_6=$W6:2a::1
#                        wm - t-wide: link 2b
WIDE_NET6=2001:db8:500::/48
WIDE6_ASSIGNED=256       # t-wide's assigned IPv6 addresses: ::1 to ::100
WIDE_ROUTERS=(ws wa wb wc wd wj wp wq wq1 wq2 wm)

ROUTERS=(r1 r2 r3 r4a r4b r5 r6 fw silent nat natr "${WIDE_ROUTERS[@]}")
TARGETS=(t-open t-fw t-silent t-nat t-wide)
NODES=(vantage "${ROUTERS[@]}" "${TARGETS[@]}" hole)

ns() { printf '%s-%s' "$PREFIX" "$1"; }

die() {
    echo "lab.sh: $*" >&2
    exit 1
}

ns_exists() { [[ -e /run/netns/$1 ]]; }

# rps_arguments COMMAND ARGS...: the checks steer and spread share: root, one hex CPU mask naming only
# CPUs this host has, and a lab that is up.
rps_arguments() {
    local command=$1
    shift
    require_root "$command"
    [[ $# -eq 1 && $1 =~ ^[0-9a-fA-F]{1,4}$ ]] || die "usage: $command CPUMASK (hex; 0 turns it off)"
    (( 16#$1 < 1 << $(nproc) )) || die "$command: CPU mask $1 names CPUs this host does not have ($(nproc) CPUs)"
    ns_exists "$(ns vantage)" || die "no lab is up ($(ns vantage) missing); run: scripts/lab.sh up"
}

require_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN): try sudo $0 $*"
}

# --- down --------------------------------------------------------------------------------------

# True if PID is one of this lab's listeners (guards against a recycled pid and another lab's).
is_listener() {
    local pid=$1
    [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" |
        grep -qF -- "lab-listener.py --ports 80,443 --ready $STATE/"
}

stop_pids() {
    local pid tries
    for pid in "$@"; do
        is_listener "$pid" && kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        for ((tries = 0; tries < 40; tries++)); do
            [[ -e /proc/$pid ]] || break
            sleep 0.05
        done
        if [[ -e /proc/$pid ]] && is_listener "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

lab_down() {
    local pids=() f pid node name
    if [[ -d $STATE ]]; then
        for f in "$STATE"/*.pid; do
            [[ -e $f ]] || continue
            pid=$(<"$f")
            [[ $pid =~ ^[0-9]+$ ]] && pids+=("$pid")
        done
    fi
    # Listeners whose pid file was lost: only lab-listener.py processes inside our target namespaces.
    for node in "${TARGETS[@]}"; do
        name=$(ns "$node")
        ns_exists "$name" || continue
        for pid in $(ip netns pids "$name" 2>/dev/null); do
            is_listener "$pid" && pids+=("$pid")
        done
    done
    ((${#pids[@]} == 0)) || stop_pids "${pids[@]}"
    for node in "${NODES[@]}"; do
        name=$(ns "$node")
        if ns_exists "$name"; then
            ip netns del "$name"
        fi
    done
    if [[ -d $STATE ]]; then
        rm -f "$STATE"/*.pid "$STATE"/*.ready "$STATE"/*.log "$STATE"/truth.json
        rmdir "$STATE" 2>/dev/null || true
    fi
}

lab_exists() {
    local node
    for node in "${NODES[@]}"; do
        ns_exists "$(ns "$node")" && return 0
    done
    compgen -G "$STATE/*.pid" >/dev/null
}

# --- up ----------------------------------------------------------------------------------------

# One `ip -batch` in the root namespace creates every veth pair directly inside its namespaces.
create_links() {
    local v r1 r2 r3 r4a r4b r5 r6 fw silent to tf ts hole nat natr tn
    v=$(ns vantage) r1=$(ns r1) r2=$(ns r2) r3=$(ns r3) r4a=$(ns r4a) r4b=$(ns r4b) r5=$(ns r5)
    r6=$(ns r6) fw=$(ns fw) silent=$(ns silent) to=$(ns t-open) tf=$(ns t-fw) ts=$(ns t-silent)
    hole=$(ns hole) nat=$(ns nat) natr=$(ns natr) tn=$(ns t-nat)
    ip -batch - <<EOF
link add veth0 netns $v type veth peer name up0 netns $r1
link add dn netns $r1 type veth peer name up0 netns $r2
link add dn netns $r2 type veth peer name up0 netns $r3
link add dn-a netns $r3 type veth peer name up0 netns $r4a
link add dn-b netns $r3 type veth peer name up0 netns $r4b
link add dn netns $r4a type veth peer name p4a netns $r5
link add dn netns $r4b type veth peer name p4b netns $r5
link add dn netns $r5 type veth peer name up0 netns $r6
link add dn-open netns $r6 type veth peer name up0 netns $to
link add dn-fw netns $r6 type veth peer name up0 netns $fw
link add dn netns $fw type veth peer name up0 netns $tf
link add dn-silent netns $r6 type veth peer name up0 netns $silent
link add dn netns $silent type veth peer name up0 netns $ts
link add dn-hole netns $r6 type veth peer name up0 netns $hole
link add dn-nat netns $r6 type veth peer name up0 netns $nat
link add dn netns $nat type veth peer name up0 netns $natr
link add dn netns $natr type veth peer name up0 netns $tn
$(wide_links)
EOF
}

# --- The wide-ecmp branch ----------------------------------------------------------------------

# Its veth pairs (lines for the `ip -batch` above). The routers rejoining a split meet on a bridge
# in the joining router (wj, wm), so the join answers from one address whichever way a probe came.
wide_links() {
    local w
    echo "link add dn-wide netns $(ns r1) type veth peer name up0 netns $(ns ws)"
    for w in a b c d; do
        echo "link add dn-$w netns $(ns ws) type veth peer name up0 netns $(ns w$w)"
        echo "link add dn netns $(ns w$w) type veth peer name p$w netns $(ns wj)"
    done
    echo "link add dn-p netns $(ns wj) type veth peer name up0 netns $(ns wp)"
    echo "link add dn-q netns $(ns wj) type veth peer name up0 netns $(ns wq)"
    echo "link add dn-1 netns $(ns wq) type veth peer name up0 netns $(ns wq1)"
    echo "link add dn-2 netns $(ns wq) type veth peer name up0 netns $(ns wq2)"
    echo "link add dn netns $(ns wp) type veth peer name pp netns $(ns wm)"
    echo "link add dn netns $(ns wq1) type veth peer name p1 netns $(ns wm)"
    echo "link add dn netns $(ns wq2) type veth peer name p2 netns $(ns wm)"
    echo "link add dn netns $(ns wm) type veth peer name up0 netns $(ns t-wide)"
}

# Addresses and link state of the branch's nodes (and r1's side of its first link), IPv4 and IPv6.
wide_addr_batch() {
    local node=$1 a=() one dev i
    case $node in
        r1) a=("$W4.2/30 dev dn-wide" "$W6:20::2/64 dev dn-wide") ;;
        ws) a=("$WS/30 dev up0" "$W4.6/30 dev dn-a" "$W4.10/30 dev dn-b" "$W4.14/30 dev dn-c" "$W4.18/30 dev dn-d"
            "$WS_6/64 dev up0" "$W6:21::2/64 dev dn-a" "$W6:22::2/64 dev dn-b" "$W6:23::2/64 dev dn-c"
            "$W6:24::2/64 dev dn-d") ;;
        wa) a=("$WA/30 dev up0" "$W4.26/29 dev dn" "$WA_6/64 dev up0" "$W6:25::a/64 dev dn") ;;
        wb) a=("$WB/30 dev up0" "$W4.27/29 dev dn" "$WB_6/64 dev up0" "$W6:25::b/64 dev dn") ;;
        wc) a=("$WC/30 dev up0" "$W4.28/29 dev dn" "$WC_6/64 dev up0" "$W6:25::c/64 dev dn") ;;
        wd) a=("$WD/30 dev up0" "$W4.29/29 dev dn" "$WD_6/64 dev up0" "$W6:25::d/64 dev dn") ;;
        wj) printf '%s\n' "link add br0 type bridge stp_state 0 forward_delay 0"
            for dev in pa pb pc pd; do printf '%s\n' "link set $dev master br0" "link set dev $dev up"; done
            a=("$WJ/29 dev br0" "$W4.34/30 dev dn-p" "$W4.38/30 dev dn-q"
                "$WJ_6/64 dev br0" "$W6:26::2/64 dev dn-p" "$W6:27::2/64 dev dn-q") ;;
        wp) a=("$WP/30 dev up0" "$W4.50/29 dev dn" "$WP_6/64 dev up0" "$W6:2a::a/64 dev dn") ;;
        wq) a=("$WQ/30 dev up0" "$W4.42/30 dev dn-1" "$W4.46/30 dev dn-2"
            "$WQ_6/64 dev up0" "$W6:28::2/64 dev dn-1" "$W6:29::2/64 dev dn-2") ;;
        wq1) a=("$WQ1/30 dev up0" "$W4.51/29 dev dn" "$WQ1_6/64 dev up0" "$W6:2a::b/64 dev dn") ;;
        wq2) a=("$WQ2/30 dev up0" "$W4.52/29 dev dn" "$WQ2_6/64 dev up0" "$W6:2a::c/64 dev dn") ;;
        wm) printf '%s\n' "link add br0 type bridge stp_state 0 forward_delay 0"
            for dev in pp p1 p2; do printf '%s\n' "link set $dev master br0" "link set dev $dev up"; done
            a=("$WM/29 dev br0" "$W4.58/30 dev dn" "$WM_6/64 dev br0" "$W6:2b::2/64 dev dn") ;;
        t-wide) a=("$W4.57/30 dev up0" "$W6:2b::1/64 dev up0")
            echo "route add local $WIDE_NET dev lo"
            echo "route add local $WIDE_NET6 dev lo"
            for ((i = 1; i <= WIDE6_ASSIGNED; i++)); do printf 'addr add 2001:db8:500::%x/128 dev lo nodad\n' "$i"; done ;;
        *) return 0 ;;
    esac
    for one in "${a[@]}"; do
        if [[ $one == *:* ]]; then echo "addr add $one nodad"; else echo "addr add $one"; fi
    done
    for dev in up0 dn dn-wide dn-a dn-b dn-c dn-d dn-p dn-q dn-1 dn-2 br0; do
        case " ${a[*]} " in *" dev $dev "*) echo "link set dev $dev up" ;; esac
    done
}

# Routes of the branch, both families (lines tagged v4 or v6): toward the vantage point only its link (no router here
# answers anyone else), away from it the link networks farther on and the target prefix; the three
# splitting routers list a nexthop per way.
wide_route_batch() {
    local node=$1 net
    local down4=() down6=() via4=() via6=()
    case $node in
        r1) down4=("$W4.0/26") down6=("$W6:20::/59") via4=("$WS dev dn-wide") via6=("$WS_6 dev dn-wide") ;;
        ws) echo "v4 route add 198.18.0.0/30 via $W4.2 dev up0"; echo "v6 route add $L6:1::/64 via $W6:20::2 dev up0"
            down4=("$W4.24/29" "$W4.32/27") down6=("$W6:25::/64" "$W6:26::/63" "$W6:28::/62")
            via4=("$WA dev dn-a" "$WB dev dn-b" "$WC dev dn-c" "$WD dev dn-d")
            via6=("$WA_6 dev dn-a" "$WB_6 dev dn-b" "$WC_6 dev dn-c" "$WD_6 dev dn-d") ;;
        wa | wb | wc | wd)
            local k=${node#w} up4 up6
            case $k in a) up4=$W4.6 ;; b) up4=$W4.10 ;; c) up4=$W4.14 ;; d) up4=$W4.18 ;; esac
            case $k in a) up6=$W6:21::2 ;; b) up6=$W6:22::2 ;; c) up6=$W6:23::2 ;; d) up6=$W6:24::2 ;; esac
            echo "v4 route add 198.18.0.0/30 via $up4 dev up0"; echo "v6 route add $L6:1::/64 via $up6 dev up0"
            down4=("$W4.32/27") down6=("$W6:26::/63" "$W6:28::/62") via4=("$WJ dev dn") via6=("$WJ_6 dev dn") ;;
        wj) echo "v4 route add 198.18.0.0/30 via $W4.26 dev br0"; echo "v6 route add $L6:1::/64 via $W6:25::a dev br0"
            echo "v4 route add $W4.40/29 via $WQ dev dn-q"; echo "v6 route add $W6:28::/63 via $WQ_6 dev dn-q"
            down4=("$W4.48/28") down6=("$W6:2a::/63") via4=("$WP dev dn-p" "$WQ dev dn-q")
            via6=("$WP_6 dev dn-p" "$WQ_6 dev dn-q") ;;
        wp | wq1 | wq2)
            local up4 up6
            case $node in wp) up4=$W4.34 up6=$W6:26::2 ;; wq1) up4=$W4.42 up6=$W6:28::2 ;; wq2) up4=$W4.46 up6=$W6:29::2 ;; esac
            echo "v4 route add 198.18.0.0/30 via $up4 dev up0"; echo "v6 route add $L6:1::/64 via $up6 dev up0"
            down4=("$W4.56/30") down6=("$W6:2b::/64") via4=("$WM dev dn") via6=("$WM_6 dev dn") ;;
        wq) echo "v4 route add 198.18.0.0/30 via $W4.38 dev up0"; echo "v6 route add $L6:1::/64 via $W6:27::2 dev up0"
            down4=("$W4.48/28") down6=("$W6:2a::/63") via4=("$WQ1 dev dn-1" "$WQ2 dev dn-2")
            via6=("$WQ1_6 dev dn-1" "$WQ2_6 dev dn-2") ;;
        wm) echo "v4 route add 198.18.0.0/30 via $W4.50 dev br0"; echo "v6 route add $L6:1::/64 via $W6:2a::a dev br0"
            via4=("$W4.57 dev dn") via6=("$W6:2b::1 dev dn") ;;
        t-wide) echo "v4 route add default via $W4.58 dev up0"; echo "v6 route add default via $W6:2b::2 dev up0"; return 0 ;;
        *) return 0 ;;
    esac
    local hops4="" hops6="" v
    if ((${#via4[@]} == 1)); then hops4="via ${via4[0]}" hops6="via ${via6[0]}"
    else
        for v in "${via4[@]}"; do hops4+=" nexthop via $v"; done
        for v in "${via6[@]}"; do hops6+=" nexthop via $v"; done
    fi
    for net in "${down4[@]}" "$WIDE_NET"; do echo "v4 route add $net $hops4"; done
    for net in "${down6[@]}" "$WIDE_NET6"; do echo "v6 route add $net $hops6"; done
}

# Addresses and link state, per namespace (stdin of `ip -n NS -batch -`).
addr_batch() {
    local node=$1
    echo "link set dev lo up"
    case $node in
        vantage) printf '%s\n' "addr add $V_ADDR/30 dev veth0" "link set dev veth0 up" ;;
        r1) printf '%s\n' "addr add $R1/30 dev up0" "addr add 198.18.0.6/30 dev dn" ;;
        r2) printf '%s\n' "addr add $R2/30 dev up0" "addr add 198.18.0.10/30 dev dn" ;;
        r3) printf '%s\n' "addr add $R3/30 dev up0" "addr add 198.18.0.14/30 dev dn-a" \
            "addr add 198.18.0.18/30 dev dn-b" ;;
        r4a) printf '%s\n' "addr add $R4A/30 dev up0" "addr add 198.18.0.26/29 dev dn" ;;
        r4b) printf '%s\n' "addr add $R4B/30 dev up0" "addr add 198.18.0.27/29 dev dn" ;;
        r5) printf '%s\n' "link add br0 type bridge stp_state 0 forward_delay 0" \
            "link set p4a master br0" "link set p4b master br0" "link set dev p4a up" "link set dev p4b up" \
            "addr add $R5/29 dev br0" "link set dev br0 up" "addr add 198.18.0.34/30 dev dn" ;;
        r6) printf '%s\n' "addr add $R6/30 dev up0" "addr add 198.18.0.38/30 dev dn-open" \
            "addr add 198.18.0.42/30 dev dn-fw" "addr add 198.18.0.50/30 dev dn-silent" \
            "addr add 198.18.0.58/30 dev dn-hole" "addr add 198.18.0.62/30 dev dn-nat" ;;
        nat) printf '%s\n' "addr add $NAT/30 dev up0" "addr add 198.18.0.66/30 dev dn" ;;
        natr) printf '%s\n' "addr add $NATR/30 dev up0" "addr add 198.18.0.70/30 dev dn" ;;
        t-nat) printf '%s\n' "addr add 198.18.0.69/30 dev up0" "route add local $INSIDE_NET dev lo" ;;
        fw) printf '%s\n' "addr add $FW/30 dev up0" "addr add 198.18.0.46/30 dev dn" ;;
        silent) printf '%s\n' "addr add $SILENT/30 dev up0" "addr add 198.18.0.54/30 dev dn" ;;
        t-open) printf '%s\n' "addr add 198.18.0.37/30 dev up0" "route add local $OPEN_NET dev lo" ;;
        t-fw) printf '%s\n' "addr add 198.18.0.45/30 dev up0" "route add local $FW_NET dev lo" ;;
        t-silent) printf '%s\n' "addr add 198.18.0.53/30 dev up0" "route add local $SILENT_NET dev lo" ;;
        hole) printf '%s\n' "addr add 198.18.0.57/30 dev up0" ;;
    esac
    wide_addr_batch "$node"
    # IPv6 (nodad: usable at once, never tentative).
    local a6=()
    case $node in
        vantage) a6=("$V6_ADDR/64 dev veth0") ;;
        r1) a6=("$R1_6/64 dev up0" "$L6:2::2/64 dev dn") ;;
        r2) a6=("$R2_6/64 dev up0" "$L6:3::2/64 dev dn") ;;
        r3) a6=("$R3_6/64 dev up0" "$L6:4::2/64 dev dn-a" "$L6:5::2/64 dev dn-b") ;;
        r4a) a6=("$R4A_6/64 dev up0" "$L6:6::a/64 dev dn") ;;
        r4b) a6=("$R4B_6/64 dev up0" "$L6:6::b/64 dev dn") ;;
        r5) a6=("$R5_6/64 dev br0" "$L6:7::2/64 dev dn") ;;
        r6) a6=("$R6_6/64 dev up0" "$L6:8::2/64 dev dn-open" "$L6:9::2/64 dev dn-fw" "$L6:b::2/64 dev dn-silent"
            "$L6:d::2/64 dev dn-hole" "$L6:e::2/64 dev dn-nat") ;;
        fw) a6=("$FW_6/64 dev up0" "$L6:a::2/64 dev dn") ;;
        silent) a6=("$SILENT_6/64 dev up0" "$L6:c::2/64 dev dn") ;;
        t-open) a6=("$L6:8::1/64 dev up0") ;;
        t-fw) a6=("$L6:a::1/64 dev up0") ;;
        t-silent) a6=("$L6:c::1/64 dev up0") ;;
        hole) a6=("$L6:d::1/64 dev up0") ;;
        nat) a6=("$NAT_6/64 dev up0" "$L6:f::2/64 dev dn") ;;
        natr) a6=("$NATR_6/64 dev up0" "$L6:10::2/64 dev dn") ;;
        t-nat) a6=("$L6:10::1/64 dev up0") ;;
    esac
    local one
    for one in "${a6[@]}"; do echo "addr add $one nodad"; done
    # The targets' first TARGETS6_PER_KIND addresses are assigned too: the AnyIP route alone would
    # make ICMPv6 errors about them (a closed UDP port's) leave from the link address, since the
    # kernel answers from the quoted destination only when it is an assigned address.
    local prefix6="" i
    case $node in
        t-open) echo "route add local $OPEN_NET6 dev lo"; prefix6=2001:db8:100 ;;
        t-fw) echo "route add local $FW_NET6 dev lo"; prefix6=2001:db8:200 ;;
        t-silent) echo "route add local $SILENT_NET6 dev lo"; prefix6=2001:db8:300 ;;
        t-nat) echo "route add local $INSIDE_NET6 dev lo"; prefix6=2001:db8:700 ;;
    esac
    if [[ -n $prefix6 ]]; then
        for ((i = 1; i <= TARGETS6_PER_KIND; i++)); do printf 'addr add %s::%x/128 dev lo nodad\n' "$prefix6" "$i"; done
    fi
    local dev
    for dev in up0 dn dn-a dn-b dn-open dn-fw dn-silent dn-hole dn-nat; do
        case "$node:$dev" in
            vantage:*) ;;
            r1:up0 | r1:dn | r2:up0 | r2:dn | r3:up0 | r3:dn-a | r3:dn-b | r4a:up0 | r4a:dn | r4b:up0 | r4b:dn | \
                r5:dn | r6:up0 | r6:dn-open | r6:dn-fw | r6:dn-silent | r6:dn-hole | r6:dn-nat | fw:up0 | \
                fw:dn | silent:up0 | silent:dn | nat:up0 | nat:dn | natr:up0 | natr:dn | t-*:up0 | hole:up0)
                echo "link set dev $dev up"
                ;;
        esac
    done
}

# IPv6 routes, per namespace: upstream the link networks nearer the vantage point (as one covering
# prefix: the more specific downstream routes win), downstream the farther links and target prefixes.
route6_batch() {
    local node=$1 net
    local links_down=("$L6:6::/64" "$L6:7::/64" "$L6:8::/64" "$L6:9::/64" "$L6:a::/64" "$L6:b::/64" "$L6:c::/64" "$L6:d::/64"
        "$L6:e::/64")
    case $node in
        vantage) echo "route add default via $R1_6 dev veth0" ;;
        r1) for net in "$L6:3::/64" "$L6:4::/64" "$L6:5::/64" "${links_down[@]}" "${TARGET_NETS6[@]}"; do
                echo "route add $net via $R2_6 dev dn"; done ;;
        r2) echo "route add $L6:1::/64 via $L6:2::2 dev up0"
            for net in "$L6:4::/64" "$L6:5::/64" "${links_down[@]}" "${TARGET_NETS6[@]}"; do
                echo "route add $net via $R3_6 dev dn"; done ;;
        r3) echo "route add $L6::/62 via $L6:3::2 dev up0"
            for net in "${links_down[@]}" "${TARGET_NETS6[@]}"; do
                echo "route add $net nexthop via $R4A_6 dev dn-a nexthop via $R4B_6 dev dn-b"
            done ;;
        r4a | r4b)
            if [[ $node == r4a ]]; then echo "route add $L6::/61 via $L6:4::2 dev up0"
            else echo "route add $L6::/61 via $L6:5::2 dev up0"; fi
            for net in "${links_down[@]:1}" "${TARGET_NETS6[@]}"; do echo "route add $net via $R5_6 dev dn"; done ;;
        r5) echo "route add $L6::/62 nexthop via $L6:6::a dev br0 nexthop via $L6:6::b dev br0"
            echo "route add $L6:4::/63 nexthop via $L6:6::a dev br0 nexthop via $L6:6::b dev br0"
            for net in "${links_down[@]:2}" "${TARGET_NETS6[@]}"; do echo "route add $net via $R6_6 dev dn"; done ;;
        r6) printf '%s\n' "route add $L6::/62 via $L6:7::2 dev up0" \
            "route add $L6:4::/63 via $L6:7::2 dev up0" "route add $L6:6::/64 via $L6:7::2 dev up0" \
            "route add $OPEN_NET6 via $L6:8::1 dev dn-open" \
            "route add $FW_NET6 via $FW_6 dev dn-fw" "route add $L6:a::/64 via $FW_6 dev dn-fw" \
            "route add $SILENT_NET6 via $SILENT_6 dev dn-silent" \
            "route add $L6:c::/64 via $SILENT_6 dev dn-silent" \
            "route add $HOLE_NET6 via $L6:d::1 dev dn-hole" \
            "route add $DNAT_NET6 via $NAT_6 dev dn-nat" ;;
        fw) echo "route add $L6::/60 via $L6:9::2 dev up0"; echo "route add $FW_NET6 via $L6:a::1 dev dn" ;;
        silent) echo "route add $L6::/60 via $L6:b::2 dev up0"; echo "route add $SILENT_NET6 via $L6:c::1 dev dn" ;;
        t-open) echo "route add default via $L6:8::2 dev up0" ;;
        t-fw) echo "route add default via $L6:a::2 dev up0" ;;
        t-silent) echo "route add default via $L6:c::2 dev up0" ;;
        # The NAT66 branch, as the IPv4 one: the NAT routes only the inside prefix onward (a probe it
        # did not translate has no route there), natr and t-nat only see inside addresses.
        nat) echo "route add $L6::/60 via $L6:e::2 dev up0"; echo "route add $INSIDE_NET6 via $NATR_6 dev dn"
            echo "route add $L6:10::/64 via $NATR_6 dev dn" ;;
        natr) echo "route add $L6::/60 via $L6:f::2 dev up0"; echo "route add $INSIDE_NET6 via $L6:10::1 dev dn" ;;
        t-nat) echo "route add default via $L6:10::2 dev up0" ;;
        *) ;;
    esac
    wide_route_batch "$node" | sed -n 's/^v6 //p'
}

# Routes, per namespace. Toward the vantage point: the link networks upstream; away from it: the
# link networks downstream and the target prefixes. No namespace has a route it could loop on.
route_batch() {
    local node=$1 net
    local -a down=()
    case $node in
        vantage) echo "route add default via $R1 dev veth0" ;;
        r1) down=("198.18.0.0/26" "${TARGET_NETS[@]}")
            for net in "${down[@]}"; do echo "route add $net via $R2 dev dn"; done ;;
        r2) echo "route add 198.18.0.0/30 via 198.18.0.6 dev up0"
            down=("198.18.0.0/26" "${TARGET_NETS[@]}")
            for net in "${down[@]}"; do echo "route add $net via $R3 dev dn"; done ;;
        r3) echo "route add 198.18.0.0/29 via 198.18.0.10 dev up0"
            down=("198.18.0.24/29" "198.18.0.32/27" "${TARGET_NETS[@]}")
            for net in "${down[@]}"; do
                echo "route add $net nexthop via $R4A dev dn-a nexthop via $R4B dev dn-b"
            done ;;
        r4a | r4b)
            if [[ $node == r4a ]]; then echo "route add 198.18.0.0/27 via 198.18.0.14 dev up0"
            else echo "route add 198.18.0.0/27 via 198.18.0.18 dev up0"; fi
            down=("198.18.0.32/27" "${TARGET_NETS[@]}")
            for net in "${down[@]}"; do echo "route add $net via $R5 dev dn"; done ;;
        r5) echo "route add 198.18.0.0/27 nexthop via 198.18.0.26 dev br0 nexthop via 198.18.0.27 dev br0"
            down=("198.18.0.32/27" "${TARGET_NETS[@]}")
            for net in "${down[@]}"; do echo "route add $net via $R6 dev dn"; done ;;
        r6) printf '%s\n' "route add 198.18.0.0/27 via 198.18.0.34 dev up0" \
            "route add $OPEN_NET via 198.18.0.37 dev dn-open" \
            "route add $FW_NET via $FW dev dn-fw" "route add 198.18.0.44/30 via $FW dev dn-fw" \
            "route add $SILENT_NET via $SILENT dev dn-silent" \
            "route add 198.18.0.52/30 via $SILENT dev dn-silent" \
            "route add $HOLE_NET via 198.18.0.57 dev dn-hole" \
            "route add $DNAT_NET via $NAT dev dn-nat" ;;
        nat) printf '%s\n' "route add 198.18.0.0/26 via 198.18.0.62 dev up0" \
            "route add $INSIDE_NET via $NATR dev dn" ;;
        natr) printf '%s\n' "route add 198.18.0.0/26 via 198.18.0.66 dev up0" \
            "route add $INSIDE_NET via 198.18.0.69 dev dn" ;;
        t-nat) echo "route add default via 198.18.0.70 dev up0" ;;
        fw) printf '%s\n' "route add 198.18.0.0/26 via 198.18.0.42 dev up0" \
            "route add $FW_NET via 198.18.0.45 dev dn" ;;
        silent) printf '%s\n' "route add 198.18.0.0/26 via 198.18.0.50 dev up0" \
            "route add $SILENT_NET via 198.18.0.53 dev dn" ;;
        t-open) echo "route add default via 198.18.0.38 dev up0" ;;
        t-fw) echo "route add default via 198.18.0.46 dev up0" ;;
        t-silent) echo "route add default via 198.18.0.54 dev up0" ;;
        hole) ;;
    esac
    wide_route_batch "$node" | sed -n 's/^v4 //p'
}

# Sysctls, as one shell script run once inside each namespace.
sysctl_script() {
    local node=$1 ratelimit=$2
    cat <<'EOF'
set -e
c=/proc/sys/net/ipv4
c6=/proc/sys/net/ipv6
for f in $c/conf/*/rp_filter; do echo 0 >"$f"; done
EOF
    # IPv6 on every node, with no router advertisements, autoconfiguration or duplicate address
    # detection: only the addresses and routes this script gives.
    cat <<'EOF'
for d in all default; do
    echo 0 >$c6/conf/$d/disable_ipv6; echo 0 >$c6/conf/$d/accept_ra; echo 0 >$c6/conf/$d/autoconf
    echo 0 >$c6/conf/$d/accept_dad
done
EOF
    case $node in
        r* | w* | fw | silent | nat | natr | t-*)
            [[ $node == t-* ]] || cat <<'EOF'
echo 1 >$c/ip_forward
echo 1 >$c/icmp_errors_use_inbound_ifaddr
for f in $c/conf/*/send_redirects; do echo 0 >"$f"; done
[ ! -d $c6 ] || [ "$(cat $c6/conf/all/disable_ipv6)" = 1 ] || echo 1 >$c6/conf/all/forwarding
EOF
            # Targets' port unreachables (UDP's closed) are ICMP errors too: limited as the routers' are.
            if [[ $ratelimit == false ]]; then
                cat <<'EOF'
echo 0 >$c/icmp_ratelimit
echo 1000000 >$c/icmp_msgs_per_sec
echo 1000000 >$c/icmp_msgs_burst
[ ! -e $c6/icmp/ratelimit ] || echo 0 >$c6/icmp/ratelimit
EOF
            fi
            ;;
    esac
    if [[ $node == r3 || $node == r5 ]]; then
        # L4 hash; a fixed seed (where the kernel has one, 6.11+) makes the branch a given
        # 5-tuple takes the same in every lab, not only for the lifetime of one.
        echo 'echo 1 >$c/fib_multipath_hash_policy'
        echo '[ ! -e $c6/fib_multipath_hash_policy ] || echo 1 >$c6/fib_multipath_hash_policy'
        echo '[ ! -e $c/fib_multipath_hash_seed ] || echo 1 >$c/fib_multipath_hash_seed'
    fi
    local seed=""
    case $node in ws) seed=2 ;; wj) seed=3 ;; wq) seed=4 ;; esac
    if [[ -n $seed ]]; then
        # The wide-ecmp branch's splits, each with its own seed: with one seed a flow's hash would be
        # the same at each split, so wj's and wq's choices would follow from ws's (and wq, which only
        # sees the flows wj sent its way, would only ever pick one of its two).
        echo 'echo 1 >$c/fib_multipath_hash_policy'
        echo 'echo 1 >$c6/fib_multipath_hash_policy'
        echo "[ ! -e \$c/fib_multipath_hash_seed ] || echo $seed >\$c/fib_multipath_hash_seed"
    fi
    return 0
}

# Packet filters: the firewall forwards only TCP/443 toward its prefix; the silent router sends
# no ICMP at all; the hole drops everything it receives and sends nothing.
nft_rules() {
    case $1 in
        fw)
            cat <<'EOF'
table inet ftlab {
    chain forward {
        type filter hook forward priority 0; policy accept;
        oifname "dn" tcp dport 443 accept
        oifname "dn" drop
    }
}
EOF
            ;;
        silent)
            cat <<'EOF'
table inet ftlab {
    chain output {
        type filter hook output priority 0; policy accept;
        meta l4proto icmp drop
        icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } drop
    }
}
EOF
            ;;
        nat)
            cat <<EOF
table ip ftlab {
    chain untracked {
        type filter hook prerouting priority -300; policy accept;
        meta l4proto icmp notrack
    }
    chain translate {
        type nat hook prerouting priority -100; policy accept;
        ip daddr $DNAT_NET dnat ip prefix to ip daddr map { $DNAT_NET : $INSIDE_NET }
    }
}
table ip6 ftlab6 {
    chain untracked {
        type filter hook prerouting priority -300; policy accept;
        meta l4proto ipv6-icmp notrack
    }
    chain translate {
        type nat hook prerouting priority -100; policy accept;
        ip6 daddr $DNAT_NET6 dnat ip6 prefix to ip6 daddr map { $DNAT_NET6 : $INSIDE_NET6 }
    }
}
EOF
            ;;
        hole)
            cat <<'EOF'
table inet ftlab {
    chain prerouting {
        type filter hook prerouting priority -300; policy drop;
        icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
    }
    chain output {
        type filter hook output priority 0; policy drop;
        icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
    }
}
EOF
            ;;
    esac
}

# Resolve every link's neighbours now (NTF_USE: the kernel sends the ARP request; the answer also
# teaches the other side), so a test's first probes do not wait on ARP: in a fresh lab that costs
# each hop some extra delay, enough for adaptive timeouts in some tools to report `*`. Entries stay
# (STALE is used without waiting). A test of cold resolution can `ip neigh flush all` in the vantage.
warm_neighbours() {
    local pair node dev addr
    local pairs=(r1:up0:198.18.0.2 r2:up0:198.18.0.6 r3:up0:198.18.0.10 r4a:up0:198.18.0.14
        r4b:up0:198.18.0.18 r5:br0:198.18.0.26 r5:br0:198.18.0.27 r6:up0:198.18.0.34
        r6:dn-hole:198.18.0.57 t-open:up0:198.18.0.38 fw:up0:198.18.0.42 t-fw:up0:198.18.0.46
        silent:up0:198.18.0.50 t-silent:up0:198.18.0.54 r6:dn-nat:$NAT nat:up0:198.18.0.62
        nat:dn:$NATR natr:up0:198.18.0.66 natr:dn:198.18.0.69 t-nat:up0:198.18.0.70
        r1:dn-wide:$WS ws:up0:$W4.2 ws:dn-a:$WA ws:dn-b:$WB ws:dn-c:$WC ws:dn-d:$WD wa:up0:$W4.6
        wb:up0:$W4.10 wc:up0:$W4.14 wd:up0:$W4.18 wa:dn:$WJ wb:dn:$WJ wc:dn:$WJ wd:dn:$WJ wj:br0:$W4.26
        wj:dn-p:$WP wj:dn-q:$WQ wp:up0:$W4.34 wq:up0:$W4.38 wq:dn-1:$WQ1 wq:dn-2:$WQ2 wq1:up0:$W4.42
        wq2:up0:$W4.46 wp:dn:$WM wq1:dn:$WM wq2:dn:$WM wm:br0:$W4.50 wm:dn:$W4.57 t-wide:up0:$W4.58)
    for pair in "${pairs[@]}"; do
        IFS=: read -r node dev addr <<<"$pair"
        ip -n "$(ns "$node")" neigh replace "$addr" dev "$dev" use
    done
    local pairs6=(r1/up0/$V6_ADDR r2/up0/$L6:2::2 r3/up0/$L6:3::2 r4a/up0/$L6:4::2 r4b/up0/$L6:5::2
        r5/br0/$L6:6::a r5/br0/$L6:6::b r6/up0/$L6:7::2 r6/dn-hole/$L6:d::1 t-open/up0/$L6:8::2
        fw/up0/$L6:9::2 t-fw/up0/$L6:a::2 silent/up0/$L6:b::2 t-silent/up0/$L6:c::2
        vantage/veth0/$R1_6 r1/dn/$R2_6 r2/dn/$R3_6 r3/dn-a/$R4A_6 r3/dn-b/$R4B_6 r4a/dn/$R5_6 r4b/dn/$R5_6
        r5/dn/$R6_6 r6/dn-open/$L6:8::1 r6/dn-fw/$FW_6 fw/dn/$L6:a::1 r6/dn-silent/$SILENT_6
        silent/dn/$L6:c::1 r6/dn-nat/$NAT_6 nat/up0/$L6:e::2 nat/dn/$NATR_6 natr/up0/$L6:f::2 natr/dn/$L6:10::1
        t-nat/up0/$L6:10::2
        r1/dn-wide/$WS_6 ws/up0/$W6:20::2 ws/dn-a/$WA_6 ws/dn-b/$WB_6 ws/dn-c/$WC_6 ws/dn-d/$WD_6
        wa/up0/$W6:21::2 wb/up0/$W6:22::2 wc/up0/$W6:23::2 wd/up0/$W6:24::2 wa/dn/$WJ_6 wb/dn/$WJ_6
        wc/dn/$WJ_6 wd/dn/$WJ_6 wj/br0/$W6:25::a wj/dn-p/$WP_6 wj/dn-q/$WQ_6 wp/up0/$W6:26::2
        wq/up0/$W6:27::2 wq/dn-1/$WQ1_6 wq/dn-2/$WQ2_6 wq1/up0/$W6:28::2 wq2/up0/$W6:29::2 wp/dn/$WM_6
        wq1/dn/$WM_6 wq2/dn/$WM_6 wm/br0/$W6:2a::a wm/dn/$W6:2b::1 t-wide/up0/$W6:2b::2)
    for pair in "${pairs6[@]}"; do
        IFS=/ read -r node dev addr <<<"$pair"
        ip -n "$(ns "$node")" -6 neigh replace "$addr" dev "$dev" use
    done
    # The requests are only sent above; wait (at most 5 s) until no entry anywhere is still
    # unresolved. A run started while one is INCOMPLETE loses most of its first burst on that hop
    # (the kernel queues only a few packets per unresolved neighbour): seen for every tool.
    local try node_name pending
    for ((try = 0; try < 50; try++)); do
        pending=""
        for node in "${NODES[@]}"; do
            node_name=$(ns "$node")
            if ip -n "$node_name" neigh show | grep -qE 'INCOMPLETE|FAILED'; then pending+=" $node"; fi
        done
        [[ -z $pending ]] && return 0
        sleep 0.1
    done
    die "neighbours still unresolved after 5 s in:$pending"
}

start_listeners() {
    local py node name tries
    py=$(python3 -c 'import sys; print(sys.executable)') || die "python3 is needed for the target listeners"
    for node in "${TARGETS[@]}"; do
        name=$(ns "$node")
        rm -f "$STATE/$node.ready"
        ip netns exec "$name" "$py" "$LISTENER" --ports 80,443 --ready "$STATE/$node.ready" --udp-ports 53,123 \
            </dev/null >"$STATE/$node.log" 2>&1 &
        echo $! >"$STATE/$node.pid"
    done
    for node in "${TARGETS[@]}"; do
        for ((tries = 0; tries < 200; tries++)); do
            [[ -e $STATE/$node.ready ]] && break
            is_listener "$(<"$STATE/$node.pid")" || die "listener in $(ns "$node") exited: $(cat "$STATE/$node.log")"
            sleep 0.025
        done
        [[ -e $STATE/$node.ready ]] || die "listener in $(ns "$node") not ready after 5 s"
    done
}

# The truth's "hops" list, per TTL, the addresses that may answer; "target" stands for the traced
# address itself (a NAT router's own ICMP errors leave with the original destination as source).
write_truth() {
    local ratelimit=$1
    local common="[\"$R1\"], [\"$R2\"], [\"$R3\"], [\"$R4A\", \"$R4B\"], [\"$R5\"], [\"$R6\"]"
    local common6="[\"$R1_6\"], [\"$R2_6\"], [\"$R3_6\"], [\"$R4A_6\", \"$R4B_6\"], [\"$R5_6\"], [\"$R6_6\"]"
    cat <<EOF
{
  "vantage": {"namespace": "$(ns vantage)", "interface": "veth0", "address": "$V_ADDR"},
  "ratelimit": $ratelimit,
  "kinds": [
    {"kind": "open", "prefix": "$OPEN_NET", "example": "$(example open)",
     "hops": [$common],
     "destination_ttl": 7,
     "ports": {"80": "open", "443": "open", "25": "closed"},
     "udp_ports": {"53": "open", "123": "open", "33434": "closed"},
     "icmp": "reachable",
     "ipv6": {"prefix": "$OPEN_NET6", "example": "$(example6 open)", "hops": [$common6]}},
    {"kind": "firewalled", "prefix": "$FW_NET", "example": "$(example firewalled)",
     "hops": [$common, ["$FW"]],
     "destination_ttl": 8,
     "ports": {"443": "open", "80": "filtered", "25": "filtered"},
     "udp_ports": {"53": "open|filtered", "123": "open|filtered", "33434": "open|filtered"},
     "icmp": "filtered",
     "filtered_last_ttl": 7,
     "ipv6": {"prefix": "$FW_NET6", "example": "$(example6 firewalled)", "hops": [$common6, ["$FW_6"]]}},
    {"kind": "silent", "prefix": "$SILENT_NET", "example": "$(example silent)",
     "hops": [$common, []],
     "destination_ttl": 8,
     "ports": {"80": "open", "443": "open", "25": "closed"},
     "udp_ports": {"53": "open", "123": "open", "33434": "closed"},
     "icmp": "reachable",
     "ipv6": {"prefix": "$SILENT_NET6", "example": "$(example6 silent)", "hops": [$common6, []]}},
    {"kind": "blackhole", "prefix": "$HOLE_NET", "example": "$(example blackhole)",
     "hops": [$common],
     "destination_ttl": null,
     "ports": {"443": "filtered", "80": "filtered", "25": "filtered"},
     "udp_ports": {"53": "open|filtered", "123": "open|filtered", "33434": "open|filtered"},
     "icmp": "filtered",
     "filtered_last_ttl": 6,
     "ipv6": {"prefix": "$HOLE_NET6", "example": "$(example6 blackhole)", "hops": [$common6]}},
    {"kind": "dnat", "prefix": "$DNAT_NET", "example": "$(example dnat)",
     "hops": [$common, ["target"], ["$NATR"]],
     "destination_ttl": 9,
     "ports": {"80": "open", "443": "open", "25": "closed"},
     "udp_ports": {"53": "open", "123": "open", "33434": "closed"},
     "icmp": "unreachable",
     "dnat": {"ttl": 8, "prefix": "$INSIDE_NET"},
     "ipv6": {"prefix": "$DNAT_NET6", "example": "$(example6 dnat)", "hops": [$common6, ["target"], ["$NATR_6"]],
       "dnat": {"ttl": 8, "prefix": "$INSIDE_NET6"}}}
  ],
  "multipath_kinds": [
    {"kind": "wide-ecmp", "prefix": "$WIDE_NET", "example": "$(example wide-ecmp)",
     $(wide_truth_paths 4),
     "destination_ttls": [7, 8],
     "ports": {"80": "open", "443": "open", "25": "closed"},
     "udp_ports": {"53": "open", "123": "open", "33434": "closed"},
     "icmp": "reachable",
     "ipv6": {"prefix": "$WIDE_NET6", "example": "$(example6 wide-ecmp)",
       $(wide_truth_paths 6)}}
  ]
}
EOF
}

# The wide-ecmp kind's truth for FAMILY (4 or 6): "hops" (per TTL every address that may answer,
# "target" standing for the traced address), "paths" (every path a flow can take: one address per
# TTL, ending with "target" at that path's destination TTL) and "splits" (per splitting router, the
# TTL and the addresses of its ways).
wide_truth_paths() {
    local r1 ws a b c d wj wp wq q1 q2 wm
    if [[ $1 == 4 ]]; then
        r1=$R1 ws=$WS a=$WA b=$WB c=$WC d=$WD wj=$WJ wp=$WP wq=$WQ q1=$WQ1 q2=$WQ2 wm=$WM
    else
        r1=$R1_6 ws=$WS_6 a=$WA_6 b=$WB_6 c=$WC_6 d=$WD_6 wj=$WJ_6 wp=$WP_6 wq=$WQ_6 q1=$WQ1_6 q2=$WQ2_6 wm=$WM_6
    fi
    local way tail paths=()
    for way in "$a" "$b" "$c" "$d"; do
        for tail in "\"$wp\", \"$wm\"" "\"$wq\", \"$q1\", \"$wm\"" "\"$wq\", \"$q2\", \"$wm\""; do
            paths+=("[\"$r1\", \"$ws\", \"$way\", \"$wj\", $tail, \"target\"]")
        done
    done
    local joined
    joined=$(printf ',\n       %s' "${paths[@]}")
    printf '"hops": [["%s"], ["%s"], ["%s", "%s", "%s", "%s"], ["%s"], ["%s", "%s"], ["%s", "%s", "%s"], ["%s", "target"], ["target"]],\n' \
        "$r1" "$ws" "$a" "$b" "$c" "$d" "$wj" "$wp" "$wq" "$wm" "$q1" "$q2" "$wm"
    printf '     "paths": [%s],\n' "${joined:1}"
    printf '     "splits": [{"router": "%s", "ttl": 3, "ways": ["%s", "%s", "%s", "%s"]}, {"router": "%s", "ttl": 5, "ways": ["%s", "%s"]}, {"router": "%s", "ttl": 6, "ways": ["%s", "%s"]}]' \
        "$ws" "$a" "$b" "$c" "$d" "$wj" "$wp" "$wq" "$wq" "$q1" "$q2"
}

lab_up() {
    local ratelimit=false arg node name start
    for arg in "$@"; do
        case $arg in
            --ratelimit) ratelimit=true ;;
            *) die "up: unknown option $arg (usage: up [--ratelimit])" ;;
        esac
    done
    require_root up
    command -v nft >/dev/null || die "nft (nftables) is needed: apt-get install -y nftables"
    command -v python3 >/dev/null || die "python3 is needed for the target listeners"
    start=$(date +%s.%N)

    if lab_exists; then
        echo "lab.sh: tearing down the existing lab ($PREFIX) first"
        lab_down
    fi
    trap 'echo "lab.sh: up failed at line $LINENO; tearing down" >&2; trap - ERR EXIT; lab_down; exit 1' ERR
    trap 'status=$?; if ((status != 0)); then trap - ERR EXIT; lab_down; fi' EXIT
    mkdir -p "$STATE"

    for node in "${NODES[@]}"; do echo "netns add $(ns "$node")"; done | ip -batch -
    for node in "${NODES[@]}"; do
        # Before the links exist, so new interfaces inherit rp_filter 0 and no IPv6.
        sysctl_script "$node" "$ratelimit" | ip netns exec "$(ns "$node")" sh
    done
    create_links
    for node in "${NODES[@]}"; do addr_batch "$node" | ip -n "$(ns "$node")" -batch -; done
    for node in "${NODES[@]}"; do
        sysctl_script "$node" "$ratelimit" | ip netns exec "$(ns "$node")" sh
        route_batch "$node" | ip -n "$(ns "$node")" -batch -
        route6_batch "$node" | ip -6 -n "$(ns "$node")" -batch -
    done
    warm_neighbours
    for node in fw silent hole nat; do nft_rules "$node" | ip netns exec "$(ns "$node")" nft -f -; done
    start_listeners
    write_truth "$ratelimit" >"$STATE/truth.json"
    trap - ERR EXIT

    printf 'lab %s up in %.1f s (ICMP rate limits: %s)\n' "$PREFIX" \
        "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')" \
        "$([[ $ratelimit == true ]] && echo "kernel defaults" || echo "off")"
    echo "  vantage  $(ns vantage) veth0 $V_ADDR   (scripts/lab.sh exec CMD...)"
    echo "  path     r1 $R1, r2 $R2, r3 $R3, r4 $R4A|$R4B (ECMP, L4 hash), r5 $R5, r6 $R6"
    echo "  open       $OPEN_NET  e.g. $(example open)  answers at TTL 7 (80, 443 open; others RST)"
    echo "  firewalled $FW_NET  e.g. $(example firewalled)  fw $FW at TTL 7; 443 open at TTL 8, rest dropped"
    echo "  silent     $SILENT_NET  e.g. $(example silent)  TTL 7 silent; answers at TTL 8"
    echo "  blackhole  $HOLE_NET  e.g. $(example blackhole)  nothing beyond r6 (TTL 6)"
    echo "  dnat       $DNAT_NET  e.g. $(example dnat)  NAT $NAT (TTL 7) maps it onto $INSIDE_NET; TTL 8 quotes that; answers at TTL 9"
    echo "  wide-ecmp  $WIDE_NET  e.g. $(example wide-ecmp)  r1, ws $WS (4-way) to $WA|$WB|$WC|$WD, wj $WJ (2-way), then wp $WP - wm $WM (answers at TTL 7) or wq $WQ (2-way) - $WQ1|$WQ2 - wm (TTL 8)"
    echo "  ipv6     vantage $V6_ADDR; open $OPEN_NET6, firewalled $FW_NET6, silent $SILENT_NET6, blackhole $HOLE_NET6, dnat $DNAT_NET6 (onto $INSIDE_NET6), wide-ecmp $WIDE_NET6"
    echo "  truth    $STATE/truth.json"
}

# --- targets -----------------------------------------------------------------------------------

# Address number I (0-based) of KIND: fourth octet 1..254, so no address ends in .0 or .255.
#   open: 198.19.B.x for B in 0..255; the others: their /20, third octet base..base+15. (mixed: the five
#   single-path kinds of "kinds", not wide-ecmp.)
kind_capacity() {
    case $1 in
        open) echo $((256 * 254)) ;;
        firewalled | silent | blackhole | dnat | wide-ecmp) echo $((16 * 254)) ;;
        mixed) echo $((16 * 254 * 10)) ;;
        *) return 1 ;;
    esac
}

print_targets() {
    local kind=$1 n=$2
    awk -v kind="$kind" -v n="$n" '
        function addr(k, i) {
            if (k == "open") return sprintf("198.19.%d.%d", int(i / 254), i % 254 + 1)
            if (k == "firewalled") base = 32
            else if (k == "silent") base = 48
            else if (k == "dnat") base = 80
            else if (k == "wide-ecmp") base = 112
            else base = 64
            return sprintf("198.18.%d.%d", base + int(i / 254), i % 254 + 1)
        }
        BEGIN {
            # mixed, per ten targets: 7 open, 1 firewalled (slot 3), 1 silent (6), 1 blackhole (9).
            split("open open open firewalled open open silent open open blackhole", slot, " ")
            for (i = 0; i < n; i++) {
                k = (kind == "mixed") ? slot[i % 10 + 1] : kind
                print addr(k, count[k]++)
            }
        }'
}

example() {
    # The tenth address of the kind (x.x.x.10).
    print_targets "$1" 10 | tail -n 1
}

# IPv6 target number I (0-based) of KIND: 2001:db8:K00::(I+1) in the kind's /48, at most
# TARGETS6_PER_KIND of a kind (WIDE6_ASSIGNED of wide-ecmp). For dnat the address probed; the NAT66
# maps it onto the same interface identifier in 2001:db8:700::/48, where t-nat has it assigned.
print_targets6() {
    local kind=$1 n=$2
    awk -v kind="$kind" -v n="$n" '
        function addr(k, i) {
            base = (k == "open") ? 1 : (k == "firewalled") ? 2 : (k == "silent") ? 3 : (k == "wide-ecmp") ? 5 \
                : (k == "dnat") ? 6 : 4
            return sprintf("2001:db8:%x00::%x", base, i + 1)
        }
        BEGIN {
            split("open open open firewalled open open silent open open blackhole", slot, " ")
            for (i = 0; i < n; i++) {
                k = (kind == "mixed") ? slot[i % 10 + 1] : kind
                print addr(k, count[k]++)
            }
        }'
}

example6() { print_targets6 "$1" 10 | tail -n 1; }

lab_targets6() {
    # --anyip: up to 65,535 of a kind. Every address of a kind's /48 is the target's (AnyIP), so TCP and
    # ICMP echo answer from the address probed; only the first 1,024 are assigned, which a closed UDP
    # port's port unreachable needs to leave from the address probed (README-lab.md, IPv6).
    local anyip=false
    if (($# == 3)) && [[ $3 == --anyip ]]; then anyip=true; set -- "$1" "$2"; fi
    (($# == 2)) || die "usage: targets6 open|firewalled|silent|blackhole|dnat|wide-ecmp|mixed N [--anyip]"
    local kind=$1 n=$2
    case $kind in open | firewalled | silent | blackhole | dnat | wide-ecmp | mixed) ;; *)
        die "targets6: unknown kind '$kind' (open, firewalled, silent, blackhole, dnat, wide-ecmp, mixed)" ;;
    esac
    [[ $n =~ ^[0-9]+$ ]] || die "targets6: N must be a non-negative integer, got '$n'"
    local cap=$TARGETS6_PER_KIND
    [[ $kind == wide-ecmp ]] && cap=$WIDE6_ASSIGNED
    $anyip && cap=65535
    [[ $kind == mixed ]] && cap=$((cap * 10 / 7))
    ((n <= cap)) || die "targets6: at most $cap distinct $kind targets"
    print_targets6 "$kind" "$n"
}

lab_targets() {
    (($# == 2)) || die "usage: targets open|firewalled|silent|blackhole|dnat|wide-ecmp|mixed N"
    local kind=$1 n=$2 cap
    cap=$(kind_capacity "$kind") || die "targets: unknown kind '$kind' (open, firewalled, silent, blackhole, dnat, wide-ecmp, mixed)"
    [[ $n =~ ^[0-9]+$ ]] || die "targets: N must be a non-negative integer, got '$n'"
    ((n <= cap)) || die "targets: at most $cap distinct $kind targets"
    print_targets "$kind" "$n"
}

# --- verify ------------------------------------------------------------------------------------

# Check the running lab against its own truth.json with peer tools from the vantage namespace:
# traceroute -T (hops, per-source-port ECMP stability, both ECMP branches seen, destination TTL,
# silence past filtered_last_ttl; for wide-ecmp one of its paths per source port) and, when installed,
# nmap -sS (port states).
lab_verify() {
    require_root verify
    [[ -r $STATE/truth.json ]] || die "no lab is up (no $STATE/truth.json); run: scripts/lab.sh up"
    command -v traceroute >/dev/null || die "verify needs traceroute: apt-get install -y traceroute"
    python3 - "$STATE/truth.json" "$(ns vantage)" <<'PYEOF'
import json, shutil, subprocess, sys

truth = json.load(open(sys.argv[1]))
vantage = sys.argv[2]
failures = 0


def run(*cmd):
    return subprocess.run(["ip", "netns", "exec", vantage, *cmd], capture_output=True, text=True,
                          timeout=120).stdout


def trace(addr, port, sport, max_ttl):
    out = run("traceroute", "-n", "-T", "-p", str(port), f"--sport={sport}", "-q", "1",
              "-w", "0.5,0,0", "-N", "32", "-m", str(max_ttl), addr)
    hops = {}
    for line in out.splitlines()[1:]:
        fields = line.split()
        hops[int(fields[0])] = fields[1]
    return hops


passed = {}


def check(ok, what):
    global failures
    if ok:
        kind = what.split()[0]
        passed[kind] = passed.get(kind, 0) + 1
    else:
        print("FAIL " + what)
        failures += 1


for kind in truth["kinds"]:
    name, addr, expected = kind["kind"], kind["example"], kind["hops"]
    dest_ttl = kind["destination_ttl"]
    last = kind.get("filtered_last_ttl")
    max_ttl = (dest_ttl or len(expected)) + 2
    port = 443 if kind["ports"].get("443") == "open" or dest_ttl is None else 80
    seen = {}
    for sport in range(41000, 41008):
        runs = [trace(addr, port, sport, max_ttl) for _ in range(2)]
        got = runs[0]
        dnat_ttl = (kind.get("dnat") or {}).get("ttl")
        for ttl, allowed in enumerate(expected, start=1):
            answer = got.get(ttl)
            allowed = [addr if a == "target" else a for a in allowed]
            ecmp = len(allowed) > 1
            if ttl == dnat_ttl:
                # traceroute does not match an ICMP error whose quote names the translated address.
                allowed = allowed + ["*"]
            good = answer == "*" if not allowed else answer in allowed
            check(good, f"{name} {addr}:{port} sport {sport} ttl {ttl}: {answer} in {allowed or ['*']}")
            if ecmp:
                seen.setdefault(ttl, set()).add(answer)
                check(runs[1].get(ttl) == answer,
                      f"{name} sport {sport} ttl {ttl}: same branch twice ({answer}, {runs[1].get(ttl)})")
        if dest_ttl is not None:
            check(got.get(dest_ttl) == addr, f"{name} {addr}:{port} sport {sport}: destination at ttl {dest_ttl}")
        else:
            beyond = [got.get(t) for t in range(len(expected) + 1, max_ttl + 1)]
            check(all(a == "*" for a in beyond), f"{name} {addr}:{port} sport {sport}: silent beyond ttl {len(expected)}")
    for ttl, answers in seen.items():
        check(answers == set(expected[ttl - 1]), f"{name} ttl {ttl}: ECMP branches seen {sorted(answers)}")
    for fport, state in kind["ports"].items():
        if state == "filtered" and last is not None:
            got = trace(addr, int(fport), 41100, last + 2)
            check(got.get(last) not in (None, "*") and got.get(last + 1) == "*" and got.get(last + 2) == "*",
                  f"{name} {addr}:{fport} filtered: last answer at ttl {last} ({got})")
    if shutil.which("nmap"):
        ports = ",".join(kind["ports"])
        out = run("nmap", "-n", "-Pn", "-sS", "--max-retries", "1", "-p", ports, addr)
        states = {l.split("/")[0]: l.split()[1] for l in out.splitlines() if "/tcp" in l}
        check(states == kind["ports"], f"{name} {addr} nmap ports {states} == {kind['ports']}")
    else:
        print(f"skip {name}: nmap not installed, port states not checked")

# Multipath kinds (wide-ecmp): per source port, twice, the responders are exactly one of the truth's
# paths, the same both times; over the ports, at least 3 of the first split's ways and both destination TTLs.
for kind in truth.get("multipath_kinds", []):
    name, addr, paths = kind["kind"], kind["example"], kind["paths"]
    max_ttl = max(kind["destination_ttls"])
    first = kind["splits"][0]
    ways, dest_ttls = set(), set()
    for sport in range(41000, 41016):
        runs = [trace(addr, 443, sport, max_ttl) for _ in range(2)]
        got = [runs[0].get(ttl) for ttl in range(1, max_ttl + 1)]
        match = [p for p in paths if all(runs[0].get(t) == (addr if a == "target" else a) for t, a in enumerate(p, 1))]
        check(len(match) == 1, f"{name} {addr}:443 sport {sport}: {got} is one of the truth's paths")
        check(runs[1] == runs[0], f"{name} sport {sport}: same path twice")
        if match:
            ways.add(match[0][first["ttl"] - 1])
            dest_ttls.add(len(match[0]))
    check(len(ways) >= len(first["ways"]) - 1, f"{name} ways of the first split seen: {sorted(ways)}")
    check(dest_ttls == set(kind["destination_ttls"]), f"{name} destination TTLs seen: {sorted(dest_ttls)}")

for kind, count in passed.items():
    print(f"ok   {kind}: {count} checks")
print("verify: " + ("all checks passed" if failures == 0 else f"{failures} check(s) FAILED"))
sys.exit(1 if failures else 0)
PYEOF
}

# Switches the routers' ICMP error rate limits on the running lab: "on" restores the kernel's defaults
# (icmp_ratelimit 1000 ms per destination, icmp_msgs_per_sec 1000, icmp_msgs_burst 50), "off" lifts
# them. The truth file's "ratelimit" follows. Existing per-destination token state is not reset.
lab_ratelimit() {
    local mode=$1 node value
    for node in "${ROUTERS[@]}" "${TARGETS[@]}"; do
        if [[ $mode == on ]]; then
            ip netns exec "$(ns "$node")" sh -c 'c=/proc/sys/net/ipv4; echo 1000 >$c/icmp_ratelimit;
                echo 1000 >$c/icmp_msgs_per_sec; echo 50 >$c/icmp_msgs_burst;
                [ ! -e /proc/sys/net/ipv6/icmp/ratelimit ] || echo 1000 >/proc/sys/net/ipv6/icmp/ratelimit'
        else
            ip netns exec "$(ns "$node")" sh -c 'c=/proc/sys/net/ipv4; echo 0 >$c/icmp_ratelimit;
                echo 1000000 >$c/icmp_msgs_per_sec; echo 1000000 >$c/icmp_msgs_burst;
                [ ! -e /proc/sys/net/ipv6/icmp/ratelimit ] || echo 0 >/proc/sys/net/ipv6/icmp/ratelimit'
        fi
    done
    value=$([[ $mode == on ]] && echo true || echo false)
    sed -i "s/\"ratelimit\": [a-z]*/\"ratelimit\": $value/" "$STATE/truth.json"
    echo "lab.sh: ICMP rate limits $mode on ${#ROUTERS[@]} routers and ${#TARGETS[@]} targets" >&2
}

# --- main --------------------------------------------------------------------------------------

usage() {
    sed -n '7,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

(($# >= 1)) || usage
cmd=$1
shift
case $cmd in
    up) lab_up "$@" ;;
    down)
        require_root down
        lab_down
        ;;
    truth)
        [[ -r $STATE/truth.json ]] || die "no lab is up (no $STATE/truth.json); run: scripts/lab.sh up"
        cat "$STATE/truth.json"
        ;;
    targets) lab_targets "$@" ;;
    targets6) lab_targets6 "$@" ;;
    verify) lab_verify ;;
    exec)
        (($# >= 1)) || die "usage: exec CMD..."
        require_root exec
        ns_exists "$(ns vantage)" || die "no lab is up ($(ns vantage) missing); run: scripts/lab.sh up"
        exec ip netns exec "$(ns vantage)" "$@"
        ;;
    ratelimit)
        require_root ratelimit
        [[ $# -eq 1 && ($1 == on || $1 == off) ]] || die "usage: ratelimit on|off"
        ns_exists "$(ns vantage)" || die "no lab is up ($(ns vantage) missing); run: scripts/lab.sh up"
        lab_ratelimit "$1"
        ;;
    steer)
        rps_arguments steer "$@"
        ip netns exec "$(ns r1)" sh -c "echo $1 >/sys/class/net/up0/queues/rx-0/rps_cpus" &&
            ip netns exec "$(ns vantage)" sh -c "echo $1 >/sys/class/net/veth0/queues/rx-0/rps_cpus" ||
            die "could not set RPS to $1 on the lab's first link"
        ;;
    spread)
        rps_arguments spread "$@"
        for node in "${NODES[@]}"; do
            ip netns exec "$(ns "$node")" sh -c "for f in /sys/class/net/*/queues/rx-*/rps_cpus; do
                case \$f in */lo/*) ;; *) echo $1 2>/dev/null >\$f || exit 1 ;; esac; done" 2>/dev/null ||
                die "could not set RPS to $1 in $(ns "$node")"
        done
        ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac
