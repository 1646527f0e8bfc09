#!/usr/bin/env python3
"""What an idle tunnel costs the server: opens N HTTP tunnels to a running beam
server (TLS, the beam handshake, then HTTP/2 answered by python3-h2, which also
answers the server's keep-alive PINGs), and reports the server's RSS before and
after, and the cost per tunnel. The tunnels stay open until the script ends.

    python3 bench/idle_tunnels.py SERVER_PID HOST:PORT TOKEN N [HOLD_SECONDS]

Start the server with limits that allow N tunnels from one address, e.g.
`beam server --dev --default-limits tunnels=none --max-tunnels-per-token 100000
--auth-rate-limit 100000`. Needs python3-h2 (Debian package).
"""
import json
import resource
import selectors
import socket
import ssl
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise SystemExit("no such process")


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise SystemExit("server closed during the handshake")
        buf += chunk
    return buf


def open_tunnel(host, port, token):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["beam/1"])
    sock = ctx.wrap_socket(socket.create_connection((host, port)), server_hostname="localhost")
    hello = json.dumps({"token": token, "tunnel": {"kind": "http"}, "client": "idle-bench"}).encode()
    sock.sendall(b"BEAM" + bytes([1]) + struct.pack(">I", len(hello)) + hello)
    n = struct.unpack(">I", recv_exact(sock, 4))[0]
    reply = json.loads(recv_exact(sock, n))
    if "welcome" not in json.dumps(reply).lower() and "public_url" not in json.dumps(reply):
        raise SystemExit(f"refused: {reply}")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    sock.setblocking(False)
    return sock, conn


def pump(sel, timeout):
    for key, _ in sel.select(timeout):
        sock, conn = key.data
        try:
            data = sock.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            continue
        if not data:
            sel.unregister(sock)
            continue
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                conn.send_headers(ev.stream_id, [(":status", "204")], end_stream=True)
        out = conn.data_to_send()
        if out:
            sock.setblocking(True)
            sock.sendall(out)
            sock.setblocking(False)


def main():
    pid, addr, token, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    hold = float(sys.argv[5]) if len(sys.argv) > 5 else 5
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port = addr.rsplit(":", 1)
    sel = selectors.DefaultSelector()
    first = open_tunnel(host, int(port), token)  # one tunnel warms up the server's paths
    sel.register(first[0], selectors.EVENT_READ, first)
    end = time.time() + 2
    while time.time() < end:
        pump(sel, 0.1)
    before = rss_mib(pid)
    for i in range(n):
        t = open_tunnel(host, int(port), token)
        sel.register(t[0], selectors.EVENT_READ, t)
        if i % 50 == 0:
            pump(sel, 0)
    end = time.time() + hold
    while time.time() < end:
        pump(sel, 0.2)
    after = rss_mib(pid)
    alive = len(sel.get_map())
    per = (after - before) * 1024 / n
    print(f"tunnels: {n} (+1 warm-up), open at the end: {alive}")
    print(f"server RSS: {before:.1f} MiB -> {after:.1f} MiB: {per:.1f} KiB per idle tunnel")
    print(f"projected for 10,000 idle tunnels: {before + per * 10000 / 1024:.0f} MiB")


main()
