#!/usr/bin/env python3
"""Scores one tool's traceroute output against the lab's ground truth (scripts/lab.sh truth).

Used by scripts/compare.sh; runnable on its own:

    compare_check.py --truth truth.json --targets LIST --tool fasttrace|scamper|nmap|traceroute|tcptraceroute
                     --output FILE [--limit N] [--port 443] [--show 5]

A target counts as correct when, for its kind in truth.json:
  * every TTL 1..len(hops) answered from an allowed address (either ECMP branch at the ECMP hop), and
    a TTL whose truth is [] (the silent router) did not answer at all;
  * the destination itself answered at `destination_ttl` (firewalled: 8, via the firewall at 7), and
    the tool calls the port open where it says so (fasttrace state, nmap port state);
  * for a black hole (`destination_ttl` null): nothing answered beyond the last truth hop and the tool
    did not claim to reach the target.
Hops past the destination TTL are ignored. A target missing from the output is wrong.
A target of a kind in the truth's `multipath_kinds` (wide-ecmp: no single destination TTL) is correct when
its responders at TTL 1..n are exactly one of the kind's `paths` (n that path's length, the destination
at n), and the port state and reach are right.

With ICMP rate limits on (lab.sh ratelimit on) routers rightly stay silent for many probes, so a
trace is not expected to show every hop. What is scored then, per tool:
  * reach/state right: the tool says reached exactly when the truth has a destination TTL, and
    (where the tool reports one) the port state the truth gives; a target missing is wrong;
  * wrong hops: answers at a TTL from an address the truth does not allow there (a silent TTL
    answering, another router, the target early, anything beyond a black hole's last hop);
  * hops discovered: router TTLs (1..len(hops)) answered from an allowed address; divided by the
    probes the tool sent (compare.sh counts them) that is hops discovered per probe;
  * rate-limited hops: hops fasttrace reported with kind "rate-limited".

Prints one JSON object: {"tool", "targets", "correct", "percent", "missing", "by_kind", "failures",
"reach_correct", "reach_percent", "reach_failures", "wrong_hops", "hops_found", "rate_limited_hops"}.
"""

import argparse
import ipaddress
import json
import re
import sys
import xml.etree.ElementTree as ET


class Trace:
    """A tool's answer for one target, normalised: TTL -> first responder (None = no answer)."""

    def __init__(self, target):
        self.target = target
        self.hops = {}
        self.reached = None  # True/False when the tool says so, None when it has no such notion
        self.port_state = None  # "open", "closed", "filtered" when the tool reports one
        self.rate_limited = 0  # hops the tool itself reported as rate-limited (fasttrace)

    def set_hop(self, ttl, addr):
        # Keep the first answer a TTL got (several probes per hop would give several).
        if self.hops.get(ttl) is None:
            self.hops[ttl] = addr


# --- parsers ---------------------------------------------------------------------------------------


def json_lines(path, tolerate_cut=False):
    """The JSON objects of a JSON-lines file, skipping lines that are not objects. With tolerate_cut,
    a line a timeout cut short is skipped too; otherwise it is an error."""
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                if not tolerate_cut:
                    raise


def parse_fasttrace(path):
    """JSON lines, one object per trace: target, port, reached, state, hops[{ttl, addr, ...}]."""
    traces = {}
    for obj in json_lines(path):
        t = Trace(obj["target"])
        for hop in obj.get("hops", []):
            t.set_hop(int(hop["ttl"]), hop.get("addr"))
            if hop.get("kind") == "rate-limited":
                t.rate_limited += 1
        t.reached = bool(obj.get("reached"))
        t.port_state = obj.get("state")
        traces[t.target] = t
    return traces


def parse_scamper(path):
    """scamper -O json: one object per line; type "trace" has dst, stop_reason, hops[{probe_ttl, addr}]."""
    traces = {}
    for obj in json_lines(path, tolerate_cut=True):
        if obj.get("type") != "trace":
            continue
        t = Trace(obj["dst"])
        for hop in obj.get("hops", []):
            t.set_hop(int(hop["probe_ttl"]), hop.get("addr"))
        t.reached = obj.get("stop_reason") == "COMPLETED"
        traces[t.target] = t
    return traces


def parse_nmap(path):
    """nmap -oX: <host><address addr/><ports><port portid><state state/></port></ports><trace><hop ttl ipaddr/>."""
    traces = {}
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        # nmap killed by its timeout leaves the XML unterminated: close it and parse what is there.
        text = open(path).read()
        text = text[: text.rfind("</host>") + len("</host>")] + "</nmaprun>"
        root = ET.fromstring(text)
    for host in root.iter("host"):
        addr = next((a.get("addr") for a in host.iter("address") if a.get("addrtype") == "ipv4"), None)
        if addr is None:
            continue
        t = Trace(addr)
        for port in host.iter("port"):
            state = port.find("state")
            if state is not None:
                t.port_state = state.get("state")
        trace = host.find("trace")
        if trace is not None:
            for hop in trace.iter("hop"):
                t.set_hop(int(hop.get("ttl")), hop.get("ipaddr"))
        t.reached = t.port_state == "open"
        traces[addr] = t
    return traces


HOP_LINE = re.compile(r"^\s*(\d+)\s+(.*)$")
IPV4 = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b")


def parse_text(path):
    """traceroute / tcptraceroute text, one block per target after a `### TARGET` marker line that
    compare.sh writes. A hop line is `TTL ADDR [open] RTT ms` or `TTL *`."""
    traces = {}
    current = None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("### "):
                current = Trace(line.split()[1])
                current.reached = False
                traces[current.target] = current
                continue
            if current is None:
                continue
            m = HOP_LINE.match(line)
            if not m:
                continue
            ttl, rest = int(m.group(1)), m.group(2).strip()
            if rest.startswith("*"):
                current.set_hop(ttl, None)
                continue
            a = IPV4.search(rest)
            current.set_hop(ttl, a.group(1) if a else None)
            if a and a.group(1) == current.target:
                current.reached = True
                if "[closed]" in rest:
                    current.port_state = "closed"
                else:
                    current.port_state = "open"
    return traces


PARSERS = {
    "fasttrace": parse_fasttrace,
    "scamper": parse_scamper,
    "nmap": parse_nmap,
    "traceroute": parse_text,
    "tcptraceroute": parse_text,
}


# --- scoring ---------------------------------------------------------------------------------------


def kind_of(addr, kinds):
    """The truth's kind holding `addr`; for an IPv6 address, the kind as its `ipv6` entry has it (prefix,
    example and routers over IPv6, the dnat kind its NAT66, and for a multipath kind its paths and splits;
    the rest alike)."""
    ip = ipaddress.ip_address(addr)
    for k in kinds:
        if ip.version == 4 and ip in ipaddress.ip_network(k["prefix"]):
            return k
        v6 = k.get("ipv6")
        if ip.version == 6 and v6 and ip in ipaddress.ip_network(v6["prefix"]):
            keys = ("prefix", "example", "hops", "paths", "splits", "dnat")
            return dict(k, **{key: v6[key] for key in keys if key in v6}, ipv6=None)
    return None


def all_kinds(truth):
    """The single-path kinds and the multipath ones (wide-ecmp), as kind_of searches them."""
    return truth["kinds"] + truth.get("multipath_kinds", [])


def destination_ttl(kind):
    """The kind's destination TTL (a multipath kind's greatest, past which hops are ignored), or None."""
    if "destination_ttls" in kind:
        return max(kind["destination_ttls"])
    return kind["destination_ttl"]


def judge_paths(trace, kind, port):
    """judge() for a multipath kind: the responders must be exactly one of its paths."""
    target = trace.target
    for path in kind["paths"]:
        if all(trace.hops.get(ttl) == (target if a == "target" else a) for ttl, a in enumerate(path, start=1)):
            break
    else:
        seen = [trace.hops.get(ttl) for ttl in range(1, destination_ttl(kind) + 1)]
        return f"responders {seen} are none of the truth's paths"
    want_state = kind["ports"].get(str(port))
    if trace.port_state is not None and want_state is not None and trace.port_state != want_state:
        return f"port state {trace.port_state}, expected {want_state}"
    if trace.reached is False:
        return "tool says not reached"
    return None


def judge(trace, kind, port):
    """Returns None when the trace matches the truth, else a short reason."""
    if "paths" in kind:
        return judge_paths(trace, kind, port)
    target = trace.target
    expected = kind["hops"]
    for ttl, allowed in enumerate(expected, start=1):
        got = trace.hops.get(ttl)
        if allowed and got not in allowed:
            return f"ttl {ttl}: got {got}, expected one of {allowed}"
        if not allowed and got is not None:
            return f"ttl {ttl}: got {got}, expected silence"
    dest_ttl = kind["destination_ttl"]
    if dest_ttl is not None:
        # Nothing between the last truth hop and the destination (there is no such TTL in this lab,
        # but keep the rule general), and the destination at its TTL.
        for ttl in range(len(expected) + 1, dest_ttl):
            if trace.hops.get(ttl) is not None:
                return f"ttl {ttl}: got {trace.hops.get(ttl)}, expected silence"
        got = trace.hops.get(dest_ttl)
        if got != target:
            return f"destination ttl {dest_ttl}: got {got}, expected {target}"
        for ttl in range(1, dest_ttl):
            if trace.hops.get(ttl) == target:
                return f"destination answered early at ttl {ttl}"
        want_state = kind["ports"].get(str(port))
        if trace.port_state is not None and want_state is not None and trace.port_state != want_state:
            return f"port state {trace.port_state}, expected {want_state}"
        if trace.reached is False:
            return "tool says not reached"
    else:
        beyond = {ttl: a for ttl, a in trace.hops.items() if ttl > len(expected) and a is not None}
        if beyond:
            return f"answers beyond ttl {len(expected)}: {beyond}"
        if trace.reached:
            return "tool says reached (black hole)"
        want_state = kind["ports"].get(str(port))
        if trace.port_state not in (None, want_state):
            return f"port state {trace.port_state}, expected {want_state}"
    return None


def allowed_at(kind, ttl, target):
    """The addresses the truth allows at `ttl` (the "target" token made the traced address), or None
    past the truth's router hops."""
    if ttl > len(kind["hops"]):
        return None
    return [target if a == "target" else a for a in kind["hops"][ttl - 1]]


def judge_reach(trace, kind, port):
    """Reach and port state only (what must hold even when rate limits hide hops): None or a reason."""
    want_reached = destination_ttl(kind) is not None
    want_state = kind["ports"].get(str(port))
    if trace.reached is not None and trace.reached != want_reached:
        return f"tool says {'reached' if trace.reached else 'not reached'}, truth says {'reached' if want_reached else 'not reached'}"
    if trace.port_state is not None and want_state is not None and trace.port_state != want_state:
        return f"port state {trace.port_state}, expected {want_state}"
    return None


def hop_counts(trace, kind):
    """(hops discovered, wrong hops) of one trace against the truth."""
    found = wrong = 0
    dest_ttl = destination_ttl(kind)
    for ttl, got in trace.hops.items():
        if got is None:
            continue
        allowed = allowed_at(kind, ttl, trace.target)
        if allowed is not None:
            if got in allowed:
                found += 1
            else:
                wrong += 1
        elif dest_ttl is None:
            wrong += 1  # anything past a black hole's last router
        elif ttl < dest_ttl:
            wrong += 1  # between the last router and the destination (none in this lab)
        elif ttl == dest_ttl and got != trace.target:
            wrong += 1
        # Past the destination TTL: ignored, as in judge().
    return found, wrong


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--targets", required=True, help="the target list the tool was given")
    ap.add_argument("--tool", required=True, choices=sorted(PARSERS))
    ap.add_argument("--output", required=True, help="the tool's output file")
    ap.add_argument("--limit", type=int, default=0, help="score only the first N targets of the list")
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--show", type=int, default=5, help="failures to list")
    args = ap.parse_args()

    truth = json.load(open(args.truth))
    targets = [l.strip() for l in open(args.targets) if l.strip() and not l.startswith("#")]
    if args.limit:
        targets = targets[: args.limit]
    try:
        traces = PARSERS[args.tool](args.output)
    except (OSError, ET.ParseError, ValueError) as e:
        traces = {}
        print(f"compare_check: cannot parse {args.output}: {e}", file=sys.stderr)

    correct = missing = 0
    reach_correct = wrong_hops = hops_found = rate_limited = 0
    by_kind = {}
    failures = []
    reach_failures = []
    for target in targets:
        kind = kind_of(target, all_kinds(truth))
        if kind is None:
            raise SystemExit(f"compare_check: {target} is in no lab prefix")
        stats = by_kind.setdefault(kind["kind"], [0, 0])
        stats[1] += 1
        trace = traces.get(target)
        if trace is None:
            missing += 1
            reason = "missing from output"
        else:
            reason = judge(trace, kind, args.port)
        reach_reason = "missing from output" if trace is None else judge_reach(trace, kind, args.port)
        if reach_reason is None:
            reach_correct += 1
        elif len(reach_failures) < args.show:
            hops = None if trace is None else {t: trace.hops[t] for t in sorted(trace.hops)}
            reach_failures.append({"target": target, "kind": kind["kind"], "reason": reach_reason, "hops": hops})
        if trace is not None:
            found, wrong = hop_counts(trace, kind)
            hops_found += found
            wrong_hops += wrong
            rate_limited += trace.rate_limited
        if reason is None:
            correct += 1
            stats[0] += 1
        elif len(failures) < args.show:
            hops = None if trace is None else {t: trace.hops[t] for t in sorted(trace.hops)}
            failures.append({"target": target, "kind": kind["kind"], "reason": reason, "hops": hops})

    n = len(targets)
    print(json.dumps({
        "tool": args.tool,
        "targets": n,
        "correct": correct,
        "percent": round(100.0 * correct / n, 1) if n else 0.0,
        "missing": missing,
        "by_kind": {k: f"{c}/{t}" for k, (c, t) in by_kind.items()},
        "failures": failures,
        "reach_correct": reach_correct,
        "reach_percent": round(100.0 * reach_correct / n, 1) if n else 0.0,
        "reach_failures": reach_failures,
        "wrong_hops": wrong_hops,
        "hops_found": hops_found,
        "rate_limited_hops": rate_limited,
    }))


if __name__ == "__main__":
    main()
