#!/usr/bin/env bash
# Captures the real reply fixtures of Tests/FastTraceWireTests/CapturedFixtures.swift.
#
# Builds a throwaway three-namespace lab (never touches the root namespace's interfaces):
#
#   ftwire-v (vantage) 192.0.2.2 --- 192.0.2.1 ftwire-r (router, forwarding) 198.51.100.1 --- 198.51.100.10 ftwire-t (target)
#
# The target listens on TCP 443 (python3), has nothing on 81, and rejects TCP 83 with ICMP
# admin-prohibited (nft); the router rejects forwarded TCP 82 with ICMP host-unreachable (nft).
# hping3 in the vantage sends one SYN per case with a fixed source port and sequence number; tcpdump
# on the vantage veth records what comes back. The Ethernet header (14 bytes) is stripped so each
# fixture starts at the IPv4 header, as an AF_PACKET SOCK_DGRAM socket delivers it. Everything is
# torn down on exit, also on failure.
#
# Usage: sudo scripts/capture-fixtures.sh [OUTPUT.swift]   (default: print to stdout)
# Needs: iproute2, hping3, tcpdump, nftables, python3 (apt-get install -y hping3 tcpdump nftables).
set -euo pipefail

out=${1:-/dev/stdout}
V=ftwire-v R=ftwire-r T=ftwire-t
work=$(mktemp -d)
pids=()

cleanup() {
    set +e
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    for ns in "$V" "$R" "$T"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

for ns in "$V" "$R" "$T"; do
    if ip netns list | grep -qw "$ns"; then echo "namespace $ns already exists; remove it first" >&2; exit 1; fi
done
for ns in "$V" "$R" "$T"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done

# veth pairs are created inside the namespaces (peer moved straight into its namespace).
ip -n "$V" link add fwv0 type veth peer name fwr0 netns "$R"
ip -n "$R" link add fwr1 type veth peer name fwt0 netns "$T"

ip -n "$V" addr add 192.0.2.2/24 dev fwv0
ip -n "$R" addr add 192.0.2.1/24 dev fwr0
ip -n "$R" addr add 198.51.100.1/24 dev fwr1
ip -n "$T" addr add 198.51.100.10/24 dev fwt0
ip -n "$V" link set fwv0 up; ip -n "$R" link set fwr0 up; ip -n "$R" link set fwr1 up; ip -n "$T" link set fwt0 up
ip -n "$V" route add default via 192.0.2.1
ip -n "$T" route add default via 198.51.100.1
ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1
for ns in "$R" "$T"; do ip netns exec "$ns" sysctl -qw net.ipv4.icmp_ratelimit=0; done

ip netns exec "$R" nft -f - <<'NFT'
table inet ftwire {
    chain forward { type filter hook forward priority 0; tcp dport 82 reject with icmp type host-unreachable; }
}
NFT
ip netns exec "$T" nft -f - <<'NFT'
table inet ftwire {
    chain input { type filter hook input priority 0; tcp dport 83 reject with icmp type admin-prohibited; }
}
NFT

ip netns exec "$T" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.51.100.10", 443)); s.listen(64)
while True:
    c, _ = s.accept(); c.close()
' &
pids+=($!)
for _ in $(seq 50); do ip netns exec "$T" ss -Hltn 'sport = :443' | grep -q 443 && break; sleep 0.1; done

ip netns exec "$V" tcpdump -i fwv0 -Q in -U -n -w "$work/in.pcap" 'ip' 2>"$work/tcpdump.log" &
pids+=($!)
sleep 1

# case name, hping3 arguments. Sequence numbers are ProbeTagCodec(key0: 0x0123456789ABCDEF,
# key1: 0xFEDCBA9876543210).encode(tag) for the tags named in the Swift file.
probe() { ip netns exec "$V" hping3 -q -c 1 -S "$@" 198.51.100.10 >/dev/null 2>&1 || true; sleep 0.3; }
probe -t 1 -p 443 -s 40001 -M 659328528 -N 4097  # timeExceeded
probe -p 443 -s 40002 -M 340262749 -N 4098  # synAck
probe -p 81 -s 40003 -M 2081780872 -N 4099  # reset
probe -p 82 -s 40004 -M 560714626 -N 4100  # unreachable, host (router)
probe -t 1 -p 443 -s 40005 -M 424415921 -N 4101 --rroute  # timeExceeded quoting IP options
probe -p 83 -s 40006 -M 1930870991 -N 4102  # unreachable, admin-prohibited (target)
sleep 0.5
kill "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true

date=$(date -u +%Y-%m-%d)
python3 - "$work/in.pcap" "$date" >"$out" <<'PY'
import struct, sys
path, date = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
magic = struct.unpack("<I", data[:4])[0]
endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
linktype = struct.unpack(endian + "I", data[20:24])[0]
assert linktype == 1, f"expected Ethernet captures, got linktype {linktype}"
off, packets = 24, []
while off + 16 <= len(data):
    _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
    frame = data[off + 16:off + 16 + incl]
    off += 16 + incl
    if frame[12:14] == b"\x08\x00":
        packets.append(frame[14:])
# Which case a packet answers: the probe's source port, quoted (ICMP) or as destination port (TCP).
def probe_port(p):
    ihl = (p[0] & 15) * 4
    if p[9] == 6:
        return struct.unpack(">H", p[ihl + 2:ihl + 4])[0]
    q = p[ihl + 8:]
    qihl = (q[0] & 15) * 4
    return struct.unpack(">H", q[qihl:qihl + 2])[0]
names = {40001: "timeExceeded", 40002: "synAck", 40003: "reset", 40004: "hostUnreachable",
         40005: "timeExceededQuotingOptions", 40006: "adminProhibited"}
found = {}
for p in packets:
    name = names.get(probe_port(p))
    if name and name not in found:
        found[name] = p
missing = [n for n in names.values() if n not in found]
assert not missing, f"no reply captured for {missing}"
print("// Generated by scripts/capture-fixtures.sh on", date, "- real replies captured in a netns lab.")
print("// Regenerate with: sudo scripts/capture-fixtures.sh Tests/FastTraceWireTests/CapturedFixtures.swift")
print("// Lab: vantage 192.0.2.2 -> router 192.0.2.1 / 198.51.100.1 -> target 198.51.100.10 (Linux kernel).")
print("// Captured with `tcpdump -i fwv0 -Q in -w` in the vantage namespace; the 14-byte Ethernet header")
print("// is stripped, so each packet starts at its IPv4 header. Probes were sent with `hping3 -c 1 -S`:")
print()
print("enum CapturedFixtures {")
cmds = {
    "timeExceeded": "hping3 -S -t 1 -p 443 -s 40001 -M 659328528 -N 4097 198.51.100.10 (router answers)",
    "synAck": "hping3 -S -p 443 -s 40002 -M 340262749 -N 4098 198.51.100.10 (python3 listener on 443)",
    "reset": "hping3 -S -p 81 -s 40003 -M 2081780872 -N 4099 198.51.100.10 (nothing listens on 81)",
    "hostUnreachable": "hping3 -S -p 82 -s 40004 -M 560714626 -N 4100 198.51.100.10 (router: nft `tcp dport 82 reject with icmp type host-unreachable`)",
    "timeExceededQuotingOptions": "hping3 -S -t 1 -p 443 -s 40005 -M 424415921 -N 4101 --rroute 198.51.100.10 (quoted IPv4 header carries a record-route option)",
    "adminProhibited": "hping3 -S -p 83 -s 40006 -M 1930870991 -N 4102 198.51.100.10 (target: nft `tcp dport 83 reject with icmp type admin-prohibited`)",
}
for name in names.values():
    p = found[name]
    print(f"    /// {cmds[name]}")
    print(f"    static let {name} = \"{p.hex()}\"")
print("}")
PY
echo "captured 6 fixtures into $out" >&2
