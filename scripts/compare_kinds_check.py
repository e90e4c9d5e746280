#!/usr/bin/env python3
"""Judges fasttrace's and scamper's UDP, ICMP echo or TCP SYN traces against the lab's truth, over IPv4
and IPv6.

Usage: compare_kinds_check.py TRUTH PROTO PORT FASTTRACE_JSON SCAMPER_JSON
Prints "fasttrace_right scamper_right total".

The truth (scripts/lab.sh truth) gives per target kind what a UDP probe to PORT finds (udp_ports:
open, closed, open|filtered), what an ICMP echo finds (icmp: reachable, filtered, unreachable), or what a
TCP SYN to PORT finds (ports: open, closed, filtered); an IPv6 target's kind is the one whose `ipv6`
prefix holds it.
A trace is right when its tool found that:
- fasttrace: its JSON state (open|filtered and filtered both mean "nothing answered"; for the NAT
  kind's ICMP, "unreachable" is a trace stopped by the NAT's unreachable or, its route-error limit
  spent, nothing heard there);
- scamper: stop_reason COMPLETED with the destination's port unreachable (ICMP 3/3, ICMPv6 1/4) is
  closed, COMPLETED for ICMP is reachable, for TCP open with a SYN-ACK and closed with a RST; UNREACH from a router is unreachable; anything else is nothing answered. scamper
  sends no DNS or NTP request and reads no UDP answer, so it cannot find an open UDP port.
"""

import ipaddress
import json
import sys


def kind_of(truth, address):
    a = ipaddress.ip_address(address)
    for kind in truth["kinds"]:
        prefix = kind["prefix"] if a.version == 4 else (kind.get("ipv6") or {}).get("prefix")
        if prefix and a in ipaddress.ip_network(prefix, strict=False):
            return kind
    return None


def expected(kind, proto, port):
    if proto == "udp":
        state = kind.get("udp_ports", {}).get(str(port), "closed")
        return {"open": "open", "closed": "closed"}.get(state, "nothing")
    if proto == "tcp":
        state = kind.get("ports", {}).get(str(port), "closed")
        return {"open": "open", "closed": "closed"}.get(state, "nothing")
    return {"reachable": "reachable", "unreachable": "unreachable"}.get(kind.get("icmp"), "nothing")


def fasttrace_found(trace):
    state, stop = trace.get("state"), trace.get("stop")
    if state in ("open", "closed", "reachable"):
        return state
    if stop == "unreachable":
        return "unreachable"
    return "nothing"


def scamper_found(trace, proto):
    stop = trace.get("stop_reason")
    hops = trace.get("hops", [])
    last = hops[-1] if hops else {}
    if stop == "COMPLETED":
        if proto == "icmp":
            return "reachable"
        if proto == "tcp":
            flags = last.get("tcp_flags") or 0
            if last.get("addr") != trace.get("dst"):
                return "nothing"
            return "open" if flags & 0x12 == 0x12 else "closed" if flags & 0x04 else "nothing"
        unreach = (last.get("icmp_type"), last.get("icmp_code")) in ((3, 3), (1, 4))
        if unreach and last.get("addr") == trace.get("dst"):
            return "closed"
        return "open"
    if stop == "UNREACH":
        return "unreachable"
    return "nothing"


def main():
    truth_path, proto, port, ours_path, theirs_path = sys.argv[1:6]
    truth = json.load(open(truth_path))
    ours, theirs = {}, {}
    for line in open(ours_path):
        if line.strip():
            t = json.loads(line)
            ours[t["target"]] = fasttrace_found(t)
    for line in open(theirs_path):
        if line.strip():
            t = json.loads(line)
            if t.get("type") == "trace":
                theirs[t["dst"]] = scamper_found(t, proto)
    total = ours_right = theirs_right = 0
    for target in set(ours) | set(theirs):
        kind = kind_of(truth, target)
        if kind is None:
            continue
        want = expected(kind, proto, port)
        total += 1
        nat_silence_ok = want == "unreachable"  # the NAT's route-error limit may silence it (README-lab)
        got = ours.get(target)
        if got == want or (nat_silence_ok and got == "nothing"):
            ours_right += 1
        got = theirs.get(target)
        if got == want or (nat_silence_ok and got == "nothing"):
            theirs_right += 1
    print(ours_right, theirs_right, total)


if __name__ == "__main__":
    main()
