#!/usr/bin/env python3
"""A busy host's unrelated traffic, for the lab only: floods the vantage point with IPv4 and IPv6 packets a
traceroute's reply filter must drop, from the lab namespace it runs in (BusyHostLabTests runs it in r1).

    lab-flood.py CONFIG_JSON

CONFIG_JSON: {"kind": "tcp"|"udp"|"icmp" (the run's probes), "sport": the run's source port (for icmp its
identifier), "vantage4", "vantage6": where to send, "src4", "src6": spoofed sources (addresses in the lab's
black hole, so the vantage's own answers die there), "router4", "router6": the outer source of ICMP errors,
"quote4", "quote6": the destinations quoted errors name (black-hole addresses no run traces), "count": packets
to send (at most 200,000), "rate": packets per second, "deadline": seconds (at most 120), "iface": the
interface toward the vantage (for frames that are not IP), "control": how many packets of shapes the filter
passes by design to add (default 0)}.

Every shape is one the filter drops for a run of `kind` from `sport`: TCP segments that are neither SYN-ACK
nor RST (to the run's port too), SYN-ACKs and RSTs to other ports, UDP to other ports, echo requests (with the
run's identifier too) and echo replies with other identifiers, ICMP errors quoting other protocols from the
run's port and the run's protocol from other ports, ICMP types that are not errors the filter reads (packet
too big, parameter problem, neighbour discovery and MLD types with a hop limit the kernel ignores, source
quench, timestamps) quoting the run's probes, later fragments whose bytes look like replies, IPv6 packets
behind extension headers, and ARP probes and frames of an experimental EtherType. The shapes a filter for
`kind` keeps by design (SYN-ACK/RST or UDP to the run's port, echo replies with its identifier, errors quoting
its probes) are sent only as the `control` packets, to show that the count sees what gets through.

Prints one JSON line: {"sent", "control", "seconds", "shapes": {shape: count}}. Bounded: count and deadline.
"""
import json
import random
import socket
import struct
import sys
import time

cfg = json.loads(sys.argv[1])
KIND, S = cfg["kind"], int(cfg["sport"])
COUNT = min(int(cfg["count"]), 200_000)
RATE = max(1, int(cfg["rate"]))
DEADLINE = min(float(cfg["deadline"]), 120.0)
CONTROL = min(int(cfg.get("control", 0)), 10_000)
V4, V6 = cfg["vantage4"], cfg["vantage6"]
rng = random.Random(cfg.get("seed", 20261207))

for a in [V4] + cfg["src4"] + cfg["quote4"] + [cfg["router4"]]:
    o = [int(x) for x in a.split(".")]
    lab = (o[0] == 198 and o[1] in (18, 19)) or o[:3] in ([192, 0, 2], [198, 51, 100], [203, 0, 113])
    if not lab:
        sys.exit("refusing a non-lab IPv4 address: " + a)
for a in [V6] + cfg["src6"] + cfg["quote6"] + [cfg["router6"]]:
    if not socket.inet_pton(socket.AF_INET6, a).startswith(bytes.fromhex("20010db8")):
        sys.exit("refusing a non-lab IPv6 address: " + a)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def a4(x):
    return socket.inet_aton(x)


def a6(x):
    return socket.inet_pton(socket.AF_INET6, x)


def other_port():
    while True:
        p = rng.randrange(1, 65536)
        if p != S:
            return p


def ip4(src, dst, proto, payload, frag=0, mf=False, ident=None, ttl=64):
    ident = rng.randrange(1, 65536) if ident is None else ident
    flags = (0x2000 if mf else 0) | (frag & 0x1FFF)
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags, ttl, proto, 0, a4(src), a4(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload


def ip6(src, dst, nh, payload, hops=64):
    return struct.pack("!IHBB", 6 << 28, len(payload), nh, hops) + a6(src) + a6(dst) + payload


def pseudo(v6, src, dst, proto, length):
    if v6:
        return a6(src) + a6(dst) + struct.pack("!I3xB", length, proto)
    return a4(src) + a4(dst) + struct.pack("!BBH", 0, proto, length)


def tcp(v6, src, dst, sport, dport, flags, data=b"", seq=None):
    seq = rng.getrandbits(32) if seq is None else seq
    t = struct.pack("!HHIIBBHHH", sport, dport, seq, rng.getrandbits(32), 0x50, flags, 65535, 0, 0) + data
    c = csum(pseudo(v6, src, dst, 6, len(t)) + t)
    return t[:16] + struct.pack("!H", c) + t[18:]


def udp(v6, src, dst, sport, dport, data=b"fasttrace-flood"):
    u = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    c = csum(pseudo(v6, src, dst, 17, len(u)) + u) or 0xFFFF
    return u[:6] + struct.pack("!H", c) + u[8:]


def icmp(v6, src, dst, typ, code, rest, body):
    m = struct.pack("!BBH", typ, code, 0) + rest + body
    c = csum((pseudo(v6, src, dst, 58, len(m)) if v6 else b"") + m)
    return m[:2] + struct.pack("!H", c) + m[4:]


def echo(v6, src, dst, reply, ident):
    typ = (129 if reply else 128) if v6 else (0 if reply else 8)
    return icmp(v6, src, dst, typ, 0, struct.pack("!HH", ident, rng.randrange(65536)), b"flood-echo-data!")


def quoted_probe(v6, proto, port):
    """The first bytes of a probe of `proto` from the vantage (source port or identifier `port`) as an ICMP
    error quotes it, to a black-hole address no run traces."""
    src, dst = (V6, rng.choice(cfg["quote6"])) if v6 else (V4, rng.choice(cfg["quote4"]))
    if proto == "tcp":
        inner, nh = tcp(v6, src, dst, port, 443, 0x02), 6
    elif proto == "udp":
        inner, nh = udp(v6, src, dst, port, 53, b"\0" * 12), 17
    else:
        inner, nh = echo(v6, src, dst, False, port), (58 if v6 else 1)
    return ip6(src, dst, nh, inner, hops=1) if v6 else ip4(src, dst, nh, inner, ttl=1)


def error(v6, typ, code, proto, port, rest=b"\0\0\0\0"):
    """An ICMP(v6) message of `typ`/`code` from a router, quoting a probe of `proto` from `port`."""
    router = cfg["router6"] if v6 else cfg["router4"]
    dst = V6 if v6 else V4
    body = icmp(v6, router, dst, typ, code, rest, quoted_probe(v6, proto, port))
    return ip6(router, dst, 58, body) if v6 else ip4(router, dst, 1, body)


def spoofed(v6):
    return rng.choice(cfg["src6"]) if v6 else rng.choice(cfg["src4"])


def tcp_packet(v6, dport, flags, data=b""):
    src = spoofed(v6)
    dst = V6 if v6 else V4
    seg = tcp(v6, src, dst, rng.choice([80, 443, 22, 8080, other_port()]), dport, flags, data)
    return ip6(src, dst, 6, seg) if v6 else ip4(src, dst, 6, seg)


def udp_packet(v6, dport):
    src = spoofed(v6)
    dst = V6 if v6 else V4
    d = udp(v6, src, dst, rng.choice([53, 123, 161, other_port()]), dport)
    return ip6(src, dst, 17, d) if v6 else ip4(src, dst, 17, d)


def echo_packet(v6, reply, ident):
    src = spoofed(v6)
    dst = V6 if v6 else V4
    e = echo(v6, src, dst, reply, ident)
    return ip6(src, dst, 58, e) if v6 else ip4(src, dst, 1, e)


def later_fragments(v6, inner_proto, inner):
    """`inner` (bytes that look like a reply) as the payload of a fragment at offset 8 or more: the filter
    must not read a transport header there."""
    src = spoofed(v6)
    dst = V6 if v6 else V4
    off = rng.choice([1, 2, 3, 64]) * 8
    if v6:
        fh = struct.pack("!BBHI", inner_proto, 0, off | rng.choice([0, 1]), rng.getrandbits(32))
        return ip6(src, dst, 44, fh + inner)
    return ip4(src, dst, inner_proto, inner, frag=off // 8, mf=rng.choice([True, False]))


def first_fragment(v6, inner_proto, inner):
    """A first fragment (offset 0, more to come) of a packet the filter drops anyway."""
    src = spoofed(v6)
    dst = V6 if v6 else V4
    if v6:
        fh = struct.pack("!BBHI", inner_proto, 0, 1, rng.getrandbits(32))
        return ip6(src, dst, 44, fh + inner)
    return ip4(src, dst, inner_proto, inner, mf=True)


def with_extension_headers(v6_payload_nh, payload):
    """An IPv6 packet with a hop-by-hop and a destination-options header (PadN) before `payload`."""
    src = spoofed(True)
    pad = b"\x01\x04\0\0\0\0"
    dest = struct.pack("!BB", v6_payload_nh, 0) + pad
    hop = struct.pack("!BB", 60, 0) + pad
    return ip6(src, V6, 0, hop + dest + payload)


PROTOS = ["tcp", "udp", "icmp"]


def shapes(v6):
    """(name, builder) for every flood shape of one family; each builder returns IP packet bytes."""
    fam = "v6" if v6 else "v4"
    other_protos = [p for p in PROTOS if p != KIND]
    syn_ack_port = other_port if KIND == "tcp" else (lambda: rng.choice([S, other_port()]))
    udp_port = other_port if KIND == "udp" else (lambda: rng.choice([S, other_port()]))
    reply_id = other_port if KIND == "icmp" else (lambda: rng.choice([S, other_port()]))
    if v6:
        err_types = [(3, 0), (3, 1), (1, 0), (1, 1), (1, 3), (1, 4)]
        non_errors = [(2, 0, struct.pack("!I", 1280)), (4, 0, struct.pack("!I", 40)), (4, 1, struct.pack("!I", 6))]
        nd_types = [130, 131, 132, 133, 134, 135, 136, 137, 143]
    else:
        err_types = [(11, 0), (3, 0), (3, 1), (3, 3), (3, 10), (3, 13)]
        non_errors = [(12, 0, b"\x14\0\0\0"), (4, 0, b"\0\0\0\0")]
        nd_types = []
    out = [
        (fam + " tcp ack/psh/fin to the run's port", lambda: tcp_packet(v6, S, rng.choice([0x10, 0x18, 0x11, 0x02]),
            b"x" * rng.choice([0, 100]))),
        (fam + " tcp segments to other ports", lambda: tcp_packet(v6, other_port(), rng.choice([0x10, 0x18, 0x02, 0x11]))),
        (fam + " tcp syn-ack/rst to other ports", lambda: tcp_packet(v6, syn_ack_port(), rng.choice([0x12, 0x04, 0x14]))),
        (fam + " udp to other ports", lambda: udp_packet(v6, udp_port())),
        (fam + " echo requests", lambda: echo_packet(v6, False, rng.choice([S, other_port()]))),
        (fam + " echo replies with other identifiers", lambda: echo_packet(v6, True, reply_id())),
        (fam + " errors quoting other protocols",
            lambda: error(v6, *rng.choice(err_types), rng.choice(other_protos), S)),
        (fam + " errors quoting other ports", lambda: error(v6, *rng.choice(err_types), KIND, other_port())),
        (fam + " other icmp types quoting the run's probes",
            lambda: error(v6, *(lambda t: (t[0], t[1], KIND, S, t[2]))(rng.choice(non_errors)))),
        (fam + " later fragments that look like replies", lambda: later_fragments(v6, *rng.choice([
            (6, tcp(v6, spoofed(v6), V6 if v6 else V4, 443, S, 0x12)),
            (17, udp(v6, spoofed(v6), V6 if v6 else V4, 53, S)),
            ((58 if v6 else 1), echo(v6, spoofed(v6), V6 if v6 else V4, True, S)),
            ((58 if v6 else 1), icmp(v6, spoofed(v6), V6 if v6 else V4, 3 if v6 else 11, 0, b"\0" * 4,
                quoted_probe(v6, KIND, S)))]))),
        (fam + " first fragments", lambda: first_fragment(v6, 17, udp(v6, spoofed(v6), V6 if v6 else V4, 53,
            udp_port(), b"f" * 64))),
    ]
    if v6:
        def nd():
            src = spoofed(True)
            return ip6(src, V6, 58, icmp(True, src, V6, rng.choice(nd_types), 0, b"\0" * 4,
                a6(V6) + b"\x01\x01" + bytes(6)))
        out.append(("v6 neighbour discovery and MLD types (hop limit 64: the kernel ignores them)", nd))
        out.append(("v6 behind extension headers", lambda: with_extension_headers(6,
            tcp(True, spoofed(True), V6, 443, rng.choice([S, other_port()]), 0x10))))
    return out


def control_shapes(v6):
    """Shapes the filter keeps by design for a run of KIND from S: not flood, the test's control."""
    if KIND == "tcp":
        return [lambda: tcp_packet(v6, S, rng.choice([0x12, 0x04, 0x14])),
                lambda: error(v6, 3 if v6 else 11, 0, "tcp", S)]
    if KIND == "udp":
        return [lambda: udp_packet(v6, S), lambda: error(v6, 3 if v6 else 11, 0, "udp", S)]
    return [lambda: echo_packet(v6, True, S), lambda: error(v6, 3 if v6 else 11, 0, "icmp", S)]


# Build a pool of distinct packets first (so the send loop only sends), then cycle through it.
pool = []
for v6 in (False, True):
    for name, build in shapes(v6):
        for _ in range(150):
            pool.append((name, v6, build()))
rng.shuffle(pool)
controls = []
for i in range(CONTROL):
    v6 = i % 2 == 1
    controls.append(("control", v6, rng.choice(control_shapes(v6))()))

s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
frames = []
iface = cfg.get("iface")
if iface:
    ll = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    ll.bind((iface, 0))
    mac = bytes.fromhex(open("/sys/class/net/%s/address" % iface).read().strip().replace(":", ""))
    bcast = b"\xff" * 6
    # ARP probes (sender 0.0.0.0, so no neighbour table learns anything) for an address nobody has.
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, bytes(4), bytes(6), a4("198.18.0.3"))
    frames = [bcast + mac + b"\x08\x06" + arp, bcast + mac + b"\x88\xb5" + b"fasttrace flood frame".ljust(46, b"\0")]

shape_counts = {}
sent = 0
start = time.monotonic()
schedule = []
for i in range(COUNT):
    schedule.append(pool[i % len(pool)])
    if frames and i % 50 == 49:
        schedule[-1] = ("frames that are not IP", None, frames[(i // 50) % 2])
# Controls are spread evenly through the flood.
if controls:
    step = max(1, len(schedule) // (len(controls) + 1))
    for k, c in enumerate(controls):
        schedule.insert(min(len(schedule), (k + 1) * step + k), c)
errors = 0
for name, v6, pkt in schedule:
    now = time.monotonic() - start
    if now > DEADLINE:
        break
    ahead = sent / RATE - now
    if ahead > 0.002:
        time.sleep(ahead)
    try:
        if v6 is None:
            ll.send(pkt)
        elif v6:
            s6.sendto(pkt, (V6, 0))
        else:
            s4.sendto(pkt, (V4, 0))
    except OSError:
        errors += 1
        continue
    sent += 1
    shape_counts[name] = shape_counts.get(name, 0) + 1
control_sent = shape_counts.pop("control", 0)
print(json.dumps({"sent": sent - control_sent, "control": control_sent, "errors": errors,
                  "seconds": round(time.monotonic() - start, 3), "shapes": shape_counts}))
