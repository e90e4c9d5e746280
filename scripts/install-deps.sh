#!/usr/bin/env bash
# Installs the system packages fasttrace builds against (libmnl, libbpf), the BPF tooling, and what
# the lab and peer comparisons use. Non-interactive, idempotent, quiet; Debian/Ubuntu (apt), as root.
set -euo pipefail

packages=(
    libmnl-dev libbpf-dev bpftool      # build: netlink and the eBPF loader; inspecting the filter
    iproute2 nftables python3          # lab: namespaces, routes, firewall rules, listeners
    python3-jsonschema                 # tests: validating JSON output against docs/trace.schema.json
    tcpdump                            # capturing fixtures and debugging
    libcap2-bin groff-base man-db      # install.sh's setcap; the install test's getcap, groff, man -l
    traceroute tcptraceroute nmap scamper hping3  # peer tools the lab compares against
    graphviz                           # dot: reads and renders --format dot in the tests and docs
    librsvg2-bin                       # rsvg-convert: renders --plot's SVG to PNG in the tests
    prometheus                         # a real Prometheus server scraping --metrics-listen; promtool
)

if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps.sh: run as root (or with sudo)" >&2
    exit 1
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} == 0 )); then
    echo "install-deps.sh: all packages present"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps.sh: installed ${missing[*]}"
