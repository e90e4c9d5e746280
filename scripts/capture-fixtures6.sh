#!/usr/bin/env bash
# Captures the IPv6 reply fixtures of Tests/FastTraceWireTests/CapturedFixtures6.swift: every reply kind
# fasttrace reads over IPv6, each answering a probe fasttrace itself sent from the lab's vantage namespace.
#
# Needs a running lab (FT_LAB_PREFIX=PREFIX scripts/lab.sh up) and a built fasttrace (FASTTRACE_BIN,
# default .build/debug/fasttrace). For each case it starts `tcpdump -i veth0 -w` in the vantage
# namespace, runs `fasttrace --netns PREFIX-vantage -n -q 1 -f TTL -m TTL --sport SPORT ...` for one probe,
# and keeps the first packet the vantage sent (the probe) and the first it received (the reply), each
# from its IPv6 header on (the 14-byte Ethernet header stripped, as an AF_PACKET SOCK_DGRAM socket
# delivers it). The per-run key is secret, so the fixture keeps the probe beside its reply and the word
# the probe carried, read here from the probe's bytes where each kind puts it.
#
# One case needs a reply the lab does not give by itself: the firewalled kind drops what it filters,
# so for the administratively prohibited case a reject rule for TCP port 8443 is added to fw's forward
# chain while that probe is sent, and removed right after (also on failure).
#
# Usage: sudo FT_LAB_PREFIX=ftn scripts/capture-fixtures6.sh [OUTPUT.swift]   (default: stdout)
set -euo pipefail

out=${1:-/dev/stdout}
PREFIX=${FT_LAB_PREFIX:-ftlab}
V=$PREFIX-vantage FW=$PREFIX-fw
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${FASTTRACE_BIN:-$SCRIPT_DIR/../.build/debug/fasttrace}
[[ -x $BIN ]] || { echo "no fasttrace at $BIN (set FASTTRACE_BIN)" >&2; exit 1; }
[[ -e /run/netns/$V ]] || { echo "no lab $PREFIX is up: FT_LAB_PREFIX=$PREFIX scripts/lab.sh up" >&2; exit 1; }
work=$(mktemp -d)
tcpdump_pid=""

cleanup() {
    set +e
    [[ -n $tcpdump_pid ]] && kill "$tcpdump_pid" 2>/dev/null && wait "$tcpdump_pid" 2>/dev/null
    ip netns exec "$FW" nft delete table ip6 ftcapture 2>/dev/null
    [[ -n ${KEEP_WORK:-} ]] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

OPEN=2001:db8:100::a FWT=2001:db8:200::a DNAT=2001:db8:600::a
NOHOST=2001:db8:0:8::99   # on r6's link to t-open, where nothing has that address: address unreachable

# name | fasttrace arguments | what answers. Source ports 41001... name the cases.
cases=(
    "timeExceededTCPSyn|-S -f 1 -m 1 $OPEN 443|r1's time exceeded quoting a TCP SYN"
    "timeExceededTCPAck|-A -f 1 -m 1 $OPEN 443|r1's time exceeded quoting a TCP ACK"
    "timeExceededUDPDNS|-U -f 1 -m 1 $OPEN 53|r1's time exceeded quoting a DNS query to 53"
    "timeExceededUDPClosed|-U -f 1 -m 1 $OPEN 33434|r1's time exceeded quoting a UDP probe to a closed port"
    "timeExceededICMPEcho|-I -f 1 -m 1 $OPEN|r1's time exceeded quoting an ICMPv6 echo request"
    "timeExceededBehindNAT66|-S -f 8 -m 8 $DNAT 443|natr's time exceeded behind the NAT66, quoting the translated destination"
    "portUnreachable|-U -f 7 -m 7 $OPEN 33434|the target's port unreachable (nothing on 33434)"
    "adminProhibited|-S -f 8 -m 8 $FWT 8443|fw's administratively prohibited (reject rule for 8443 added for this probe)"
    "addressUnreachable|-S -w 6 -f 10 -m 10 $NOHOST 443|r6's address unreachable (no neighbour answers for $NOHOST)"
    "noRoute|-I -f 7 -m 7 $DNAT|the NAT66's no route: it does not translate ICMPv6, and routes only the inside prefix"
    "synAck|-S -f 7 -m 7 $OPEN 443|the target's SYN-ACK (listener on 443)"
    "resetToSyn|-S -f 7 -m 7 $OPEN 25|the target's RST-ACK to a SYN (nothing on 25)"
    "resetToAck|-A -f 7 -m 7 $OPEN 443|the target's RST to an ACK"
    "dnsReply|-U -f 7 -m 7 $OPEN 53|the target's DNS answer (lab listener on 53)"
    "ntpReply|-U -f 7 -m 7 $OPEN 123|the target's NTP answer (lab listener on 123)"
    "echoReply|-I -f 7 -m 7 $OPEN|the target's echo reply"
)

sport=41000
: >"$work/cases"
for entry in "${cases[@]}"; do
    IFS='|' read -r name args what <<<"$entry"
    sport=$((sport + 1))
    [[ $name == adminProhibited ]] && ip netns exec "$FW" nft -f - <<'NFT'
table ip6 ftcapture {
    chain forward { type filter hook forward priority -10; oifname "dn" tcp dport 8443 reject with icmpv6 type admin-prohibited; }
}
NFT
    # No neighbour discovery in the capture (ICMPv6 types 133-137).
    ip netns exec "$V" tcpdump -i veth0 -U --immediate-mode -n -w "$work/$name.pcap" \
        'ip6 and not (ip6[6] == 58 and ip6[40] >= 133 and ip6[40] <= 137)' 2>"$work/$name.tcpdump" &
    tcpdump_pid=$!
    for _ in $(seq 50); do grep -q listening "$work/$name.tcpdump" && break; sleep 0.1; done
    w="-w 1"; [[ $args == *"-w "* ]] && w=""
    # shellcheck disable=SC2086
    cmd="fasttrace --netns $V -n -q 1${w:+ $w} --sport $sport $args"
    # shellcheck disable=SC2086
    "$BIN" --netns "$V" -n -q 1 $w --sport "$sport" $args >"$work/$name.out" 2>&1 || true
    sleep 1
    kill "$tcpdump_pid"; wait "$tcpdump_pid" 2>/dev/null || true; tcpdump_pid=""
    [[ $name == adminProhibited ]] && ip netns exec "$FW" nft delete table ip6 ftcapture
    printf '%s|%s|%s\n' "$name" "$cmd" "$what" >>"$work/cases"
done

date=$(date -u +%Y-%m-%d)
python3 - "$work" "$date" >"$out" <<'PY'
import struct, sys
work, date = sys.argv[1], sys.argv[2]
VANTAGE = bytes.fromhex("20010db8000000010000000000000002")

def packets(path):
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    assert struct.unpack(endian + "I", data[20:24])[0] == 1, "expected Ethernet captures"
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if frame[12:14] == b"\x86\xdd":
            yield frame[14:]

def word(probe):
    """The 32-bit word the probe carries, where each kind writes it over IPv6 (RFC layouts)."""
    nh, l4 = probe[6], probe[40:]
    if nh == 6:
        return struct.unpack(">I", l4[4:8])[0]                       # TCP sequence number
    if nh == 58:
        return struct.unpack(">I", l4[8:12])[0]                      # echo data's first 4 bytes
    dport, data = struct.unpack(">H", l4[2:4])[0], l4[8:]
    if dport == 53:
        return int(data[13:21].decode(), 16)                         # the question's first label
    if dport == 123:
        return struct.unpack(">I", data[40:44])[0]                   # transmit timestamp, first 32 bits
    return struct.unpack(">H", l4[6:8])[0] << 16 | struct.unpack(">H", data[0:2])[0]  # checksum | payload

print("// Generated by scripts/capture-fixtures6.sh on", date, "- real IPv6 replies to fasttrace's own probes,")
print("// captured in the lab (scripts/lab.sh, vantage 2001:db8:0:1::2; routers answer with the kernel's ICMPv6).")
print("// Regenerate with: sudo FT_LAB_PREFIX=ftn scripts/capture-fixtures6.sh Tests/FastTraceWireTests/CapturedFixtures6.swift")
print("// Captured with `tcpdump -i veth0 -w` in the vantage namespace while the command named on each ran;")
print("// the Ethernet header is stripped, so each packet starts at its IPv6 header. The run's key is secret:")
print("// each fixture keeps the probe beside its reply, and the word the probe carried (read from the probe).")
print()
print("/// One probe fasttrace sent and the reply it drew, as hex, with the tag word the probe carried.")
print("struct CapturedExchange: Sendable {")
print("    /// The probe, from its IPv6 header on.")
print("    let probe: String")
print("    /// The reply, from its IPv6 header on.")
print("    let reply: String")
print("    /// The 32-bit word the probe carried (where its kind puts it), which the reply must give back.")
print("    let word: UInt32")
print("}")
print()
print("enum CapturedFixtures6 {")
for line in open(f"{work}/cases"):
    name, cmd, what = line.rstrip("\n").split("|")
    sent = [p for p in packets(f"{work}/{name}.pcap") if p[8:24] == VANTAGE]
    got = [p for p in packets(f"{work}/{name}.pcap") if p[24:40] == VANTAGE]
    assert sent and got, f"{name}: probe or reply missing ({len(sent)} sent, {len(got)} received)"
    print(f"    /// {cmd}: {what}")
    print(f"    static let {name} = CapturedExchange(")
    print(f"        probe: \"{sent[0].hex()}\",")
    print(f"        reply: \"{got[0].hex()}\",")
    print(f"        word: 0x{word(sent[0]):08X})")
print("}")
PY
echo "captured $(grep -c '|' "$work/cases") exchanges into $out" >&2
