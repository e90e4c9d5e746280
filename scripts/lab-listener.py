#!/usr/bin/env python3
"""TCP listener and UDP services for the fasttrace lab's target namespaces.

Started by scripts/lab.sh inside a target namespace whose whole prefix is
local through AnyIP (`ip route add local PREFIX dev lo`). It listens on the
wildcard address on the given ports and accepts and closes connections
forever, so the kernel never drops a SYN because an accept queue is full
and every address of the prefix answers SYN-ACK on these ports (and RST on
any other port, from the kernel itself).

With --udp-ports it also answers UDP on those ports as the services there do:
on 53 a DNS server that knows no names (every query is answered NXDOMAIN with
its question echoed, as RFC 1035 servers answer), on 123 an NTPv4 server
(mode 4, the request's transmit timestamp copied into the origin timestamp,
RFC 5905). Answers leave from the address the query was sent to (IP_PKTINFO),
as a real server bound to every address of the prefix answers. Other UDP
ports are closed: the kernel answers port unreachable.

Usage: lab-listener.py --ports 80,443 [--ready FILE] [--udp-ports 53,123]
"""

import argparse
import os
import selectors
import signal
import socket
import struct
import sys
import time

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900 to 1970


def dns_answer(query: bytes):
    """NXDOMAIN for a standard query, echoing the ID, RD and the question; None for anything else."""
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or (flags >> 11) & 0xF != 0 or qdcount != 1:
        return None
    # The question: labels up to the root, then type and class.
    offset = 12
    while offset < len(query):
        length = query[offset]
        if length == 0:
            break
        if length & 0xC0:
            return None
        offset += 1 + length
    end = offset + 1 + 4
    if end > len(query):
        return None
    question = query[12:end]
    reply_flags = 0x8000 | (flags & 0x0100) | 0x0080 | 3  # QR, RD echoed, RA, NXDOMAIN
    return struct.pack("!HHHHHH", ident, reply_flags, 1, 0, 0, 0) + question


def ntp_to_bytes(now: float) -> bytes:
    seconds = int(now) + NTP_EPOCH_OFFSET
    fraction = int((now - int(now)) * (1 << 32)) & 0xFFFFFFFF
    return struct.pack("!II", seconds & 0xFFFFFFFF, fraction)


def ntp_answer(request: bytes):
    """A server's answer to a client (mode 3) request; None for anything else."""
    if len(request) < 48 or request[0] & 0x7 != 3:
        return None
    version = (request[0] >> 3) & 0x7
    received = ntp_to_bytes(time.time())
    header = bytes([(version << 3) | 4, 2, request[2], 0xEC])  # leap 0, mode 4, stratum 2, precision
    root = struct.pack("!II", 0, 0) + b"LAB\x00"
    reference = received
    origin = request[40:48]
    return header + root + reference + origin + received + ntp_to_bytes(time.time())


def serve_udp(sock: socket.socket, answer) -> None:
    """Answers what is queued on `sock` (bounded), each from the address it was sent to."""
    for _ in range(1024):
        try:
            data, ancillary, _, peer = sock.recvmsg(2048, socket.CMSG_SPACE(20))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        reply = answer(data)
        if reply is None:
            continue
        if sock.family == socket.AF_INET6:
            # in6_pktinfo: addr (16), ifindex; reply from the address the datagram was sent to.
            pktinfo = [c for c in ancillary if c[0] == socket.IPPROTO_IPV6 and c[1] == IPV6_PKTINFO]
            if not pktinfo:
                continue
            control = [(socket.IPPROTO_IPV6, IPV6_PKTINFO, pktinfo[0][2][0:16] + bytes(4))]
        else:
            pktinfo = [c for c in ancillary if c[0] == socket.IPPROTO_IP and c[1] == IP_PKTINFO]
            if not pktinfo:
                continue
            # in_pktinfo: ifindex, spec_dst, addr; reply from the address the datagram was sent to.
            control = [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("!I", 0) + pktinfo[0][2][8:12] + bytes(4))]
        try:
            sock.sendmsg([reply], control, 0, peer)
        except OSError:
            pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", required=True, help="comma-separated TCP ports")
    parser.add_argument("--ready", help="file to create once every port is listening")
    parser.add_argument("--udp-ports", default="", help="comma-separated UDP ports (53 DNS, 123 NTP)")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        os.setsid()  # Leave lab.sh's process group: a Ctrl-C aimed at the shell must not end us.
    except OSError:
        pass

    selector = selectors.DefaultSelector()
    # One socket per family and port: IPv4 on 0.0.0.0, IPv6 (IPV6_V6ONLY) on ::, where the namespace
    # has IPv6.
    families = [(socket.AF_INET, "0.0.0.0")]
    if socket.has_ipv6 and os.path.exists("/proc/net/if_inet6"):
        families.append((socket.AF_INET6, "::"))
    for text in args.ports.split(","):
        port = int(text)
        for family, anywhere in families:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((anywhere, port))
            sock.listen(4096)
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
    for text in filter(None, args.udp_ports.split(",")):
        port = int(text)
        services = {53: dns_answer, 123: ntp_answer}
        if port not in services:
            parser.error(f"no UDP service for port {port} (53, 123)")
        for family, anywhere in families:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            sock.bind((anywhere, port))
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, services[port])

    if args.ready:
        with open(args.ready, "w") as ready:
            ready.write("ready\n")

    while True:
        for key, _ in selector.select():
            if key.data is not None:
                serve_udp(key.fileobj, key.data)
                continue
            # Drain what is queued, bounded so one busy port cannot starve the other.
            for _ in range(1024):
                try:
                    conn, _ = key.fileobj.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                conn.close()


if __name__ == "__main__":
    sys.exit(main())
