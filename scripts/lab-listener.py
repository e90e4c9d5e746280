#!/usr/bin/env python3
"""TCP listener for the fasttrace lab's target namespaces.

Started by scripts/lab.sh inside a target namespace whose whole prefix is
local through AnyIP (`ip route add local PREFIX dev lo`). It listens on the
wildcard address on the given ports and accepts and closes connections
forever, so the kernel never drops a SYN because an accept queue is full
and every address of the prefix answers SYN-ACK on these ports (and RST on
any other port, from the kernel itself).

Usage: lab-listener.py --ports 80,443 [--ready FILE]
"""

import argparse
import os
import selectors
import signal
import socket
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", required=True, help="comma-separated TCP ports")
    parser.add_argument("--ready", help="file to create once every port is listening")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        os.setsid()  # Leave lab.sh's process group: a Ctrl-C aimed at the shell must not end us.
    except OSError:
        pass

    selector = selectors.DefaultSelector()
    for text in args.ports.split(","):
        port = int(text)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        sock.listen(4096)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)

    if args.ready:
        with open(args.ready, "w") as ready:
            ready.write("ready\n")

    while True:
        for key, _ in selector.select():
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
