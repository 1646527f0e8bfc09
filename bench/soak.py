#!/usr/bin/env python3
"""The soak: one `beam server` and its tunnel clients (`beam http` for HTTP and
WebSockets, `beam tcp` for raw TCP) through thousands of reconnect cycles and a
million requests, sampling memory, descriptors and async tasks of every process.

Each cycle cuts the tunnel connections — from the client's side or from the
server's side in turn (`ss -K` aborts the sockets as a network failure would) —
or, every RESTART_EVERY cycles, restarts the server (SIGTERM, then the same
data directory and ports). It waits for both clients to say they are connected
again, checks the public URL and port did not change, then sends
REQUESTS/CYCLES HTTP requests of mixed sizes (GETs of 128 B to 1 MiB, POSTs of
16 KiB), one WebSocket conversation (3 messages, up to 64 KiB) and one TCP
stream (32 KiB echoed), checking every byte. Every failure after a client said
"connected" is counted and printed: a soak that passes has none.

    python3 bench/soak.py BEAM_BIN OUT_DIR [--cycles N] [--requests N]
                          [--restart-every N] [--sample-every N]

Writes OUT_DIR/samples.csv, OUT_DIR/summary.json and OUT_DIR/soak.svg (see
bench/soak_plot.py). Needs nginx and ss (iproute2), and root for `ss -K`.
Used by bench/soak.sh.
"""
import argparse
import base64
import csv
import hashlib
import http.client
import json
import os
import queue
import random
import secrets
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time

from harness import free_port

SIZES = [  # (weight, path, bytes)
    (10, "/s128", 128),
    (70, "/s1k", 1024),
    (10, "/s16k", 16 * 1024),
    (5, "/s256k", 256 * 1024),
    (1, "/s1m", 1024 * 1024),
]
POST_WEIGHT = 4
POST_BODY = 16 * 1024




# ---------------------------------------------------------------- origins

class TcpEcho(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def ws_read_frame(sock):
    b0, b1 = recv_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", recv_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(sock, 8))[0]
    mask = recv_exact(sock, 4) if b1 & 0x80 else None
    data = recv_exact(sock, n)
    if mask:
        data = xor_mask(data, mask)
    return b0 & 0x0F, data


def xor_mask(data, key):
    """RFC 6455 masking, through one big integer (fast enough for 64 KiB)."""
    n = len(data)
    if n == 0:
        return b""
    k = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ k).to_bytes(n, "big")


def ws_frame(opcode, data, masked):
    head = bytearray([0x80 | opcode])
    m = 0x80 if masked else 0
    n = len(data)
    if n < 126:
        head.append(m | n)
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if masked:
        key = os.urandom(4)
        return bytes(head) + key + xor_mask(data, key)
    return bytes(head) + data


class WsEchoHandler(socketserver.BaseRequestHandler):
    """A WebSocket echo server (RFC 6455, text/binary echo, close answered)."""

    def handle(self):
        sock = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                return
            head += chunk
        key = None
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip()
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        while True:
            try:
                op, data = ws_read_frame(sock)
            except ConnectionError:
                return
            if op == 8:
                sock.sendall(ws_frame(8, data[:2], False))
                return
            sock.sendall(ws_frame(op, data, False))


def start_origins(work):
    tcp = TcpEcho(("127.0.0.1", 0), EchoHandler)
    ws = TcpEcho(("127.0.0.1", 0), WsEchoHandler)
    for srv in (tcp, ws):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    www = os.path.join(work, "www")
    os.makedirs(www)
    for _, path, n in SIZES:
        with open(www + path, "wb") as f:
            f.write(os.urandom(n))
    os.chmod(work, 0o755)
    os.chmod(www, 0o755)
    for _, path, _ in SIZES:
        os.chmod(www + path, 0o644)
    origin = free_port()
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""worker_processes 1; daemon off; pid %(w)s/nginx.pid; error_log %(w)s/nginx.err;
events { worker_connections 4096; }
http { access_log off; client_max_body_size 4m; client_body_buffer_size 64k;
  server { listen 127.0.0.1:%(o)d; root %(w)s/www;
    location = /post { client_body_in_single_buffer on; return 200 "posted\\n"; }
    location /ws { proxy_pass http://127.0.0.1:%(ws)d; proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";
      proxy_read_timeout 60s; } } }
""" % {"w": work, "o": origin, "ws": ws.server_address[1]})
    nginx = subprocess.Popen(["nginx", "-c", conf])
    files = {path: open(www + path, "rb").read() for _, path, _ in SIZES}
    return origin, tcp.server_address[1], nginx, files


# ---------------------------------------------------------------- processes

def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Client:
    """A `beam http`/`beam tcp` process; its JSON `connected` lines go to a queue."""

    def __init__(self, argv, env, log):
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                     stderr=open(log, "ab"), text=True)
        self.events = queue.Queue()
        self.tasks = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "connected":
                self.tasks = ev.get("tasks")
                self.events.put(ev)

    def wait_connected(self, timeout=30):
        return self.events.get(timeout=timeout)


class Soak:
    def __init__(self, args):
        self.a = args
        self.work = tempfile.mkdtemp(prefix="beam-soak-")
        self.token = "beam_" + secrets.token_urlsafe(32).replace("-", "a").replace("_", "b")[:43]
        self.http, self.tun, self.metrics = free_port(), free_port(), free_port()
        self.env = dict(os.environ, HOME=self.work, BEAM_CONFIG=self.work + "/c.toml",
                        BEAM_TOKEN=self.token, BEAM_BOOTSTRAP_TOKEN=self.token)
        self.failures = []
        self.requests = self.ws = self.tcp = 0
        self.bytes = 0
        self.reconnect_ms = []
        self.server = None

    def fail(self, what):
        self.failures.append(what)
        print("FAILURE: " + what, file=sys.stderr, flush=True)

    def start_server(self):
        self.server = subprocess.Popen(
            [self.a.beam, "server", "--data-dir", self.work + "/d", "--http", "127.0.0.1:%d" % self.http,
             "--tunnel", "127.0.0.1:%d" % self.tun, "--metrics", "127.0.0.1:%d" % self.metrics],
            env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.work + "/server.log", "ab"))
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.tun), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        sys.exit("the server did not start: see " + self.work + "/server.log")

    def server_tasks(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.metrics, timeout=10)
            c.request("GET", "/metrics")
            for line in c.getresponse().read().decode().splitlines():
                if line.startswith("beam_runtime_tasks "):
                    return int(float(line.split()[1]))
        except OSError:
            return None
        return None

    # -- traffic
    def http_round(self, conn, n):
        """n requests on one keep-alive connection; returns the connection."""
        weights = [w for w, _, _ in SIZES] + [POST_WEIGHT]
        for _ in range(n):
            pick = random.choices(range(len(weights)), weights)[0]
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=30)
                if pick == len(SIZES):
                    body = os.urandom(POST_BODY)
                    conn.request("POST", "/post", body=body, headers={"Host": self.host})
                    resp = conn.getresponse()
                    data = resp.read()
                    ok = resp.status == 200 and data == b"posted\n"
                    self.bytes += len(body)
                else:
                    path = SIZES[pick][1]
                    conn.request("GET", path, headers={"Host": self.host})
                    resp = conn.getresponse()
                    data = resp.read()
                    ok = resp.status == 200 and data == self.files[path]
                    self.bytes += len(data)
                    path = "GET " + path
                if not ok:
                    self.fail("cycle %d: %s answered %d (%d bytes)" % (self.cycle, pick, resp.status, len(data)))
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                self.fail("cycle %d: HTTP request failed: %r" % (self.cycle, e))
                conn = None
            self.requests += 1
        return conn

    def ws_round(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.http), timeout=30)
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (self.host, key)).encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    raise ConnectionError("closed during the handshake")
                head += chunk
            if not head.startswith(b"HTTP/1.1 101"):
                raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace"))
            for n in (10, 4096, 65536):
                msg = os.urandom(n)
                s.sendall(ws_frame(2, msg, True))
                op, data = ws_read_frame(s)
                if op != 2 or data != msg:
                    raise ConnectionError("echo of %d bytes differs" % n)
                self.bytes += 2 * n
            s.sendall(ws_frame(8, struct.pack("!H", 1000), True))
            ws_read_frame(s)
            s.close()
        except (OSError, ConnectionError, ValueError) as e:
            self.fail("cycle %d: WebSocket failed: %r" % (self.cycle, e))
        self.ws += 1

    def tcp_round(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.tcp_port), timeout=30)
            msg = os.urandom(32 * 1024)
            s.sendall(msg)
            if recv_exact(s, len(msg)) != msg:
                raise ConnectionError("the echo differs")
            s.close()
            self.bytes += 2 * len(msg)
        except (OSError, ConnectionError) as e:
            self.fail("cycle %d: TCP stream failed: %r" % (self.cycle, e))
        self.tcp += 1

    # -- the run
    def run(self):
        a = self.a
        origin, echo, nginx, self.files = start_origins(self.work)
        self.start_server()
        common = ["--server", "127.0.0.1:%d" % self.tun, "--insecure", "--json", "--reconnect", a.reconnect]
        self.clients = [
            Client([a.beam, "http", str(origin)] + common, self.env, self.work + "/http.log"),
            Client([a.beam, "tcp", str(echo)] + common, self.env, self.work + "/tcp.log"),
        ]
        first = [c.wait_connected() for c in self.clients]
        url, tcp_url = first[0]["url"], first[1]["url"]
        self.host = url.split("://", 1)[1].split(":")[0].split("/")[0]
        self.tcp_port = int(tcp_url.rsplit(":", 1)[1])
        print("soak: %s and %s; %d cycles, %d requests" % (url, tcp_url, a.cycles, a.requests), flush=True)
        per_cycle = max(1, a.requests // a.cycles)
        out = open(os.path.join(a.out, "samples.csv"), "w", newline="")
        w = csv.writer(out)
        w.writerow(["cycle", "seconds", "requests", "server_rss_kib", "server_fds", "server_tasks",
                    "http_rss_kib", "http_fds", "http_tasks", "tcp_rss_kib", "tcp_fds", "tcp_tasks", "server_life"])
        start = time.time()
        conn = None
        life = 0
        restarts = 0
        for self.cycle in range(1, a.cycles + 1):
            if conn is not None:
                conn.close()
                conn = None
            t0 = time.time()
            if self.cycle % a.restart_every == 0:
                self.server.send_signal(signal.SIGTERM)
                self.server.wait(timeout=60)
                self.start_server()
                life += 1
                restarts += 1
            else:
                side = "dport" if self.cycle % 2 else "sport"
                subprocess.run(["ss", "-K", "-t", side, "=", ":%d" % self.tun], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=False)
            for c, was in zip(self.clients, first):
                try:
                    ev = c.wait_connected()
                except queue.Empty:
                    self.fail("cycle %d: a client did not reconnect within 30 s" % self.cycle)
                    continue
                if ev["url"] != was["url"]:
                    self.fail("cycle %d: the URL changed from %s to %s" % (self.cycle, was["url"], ev["url"]))
            self.reconnect_ms.append((time.time() - t0) * 1000)
            # Anything queued since (a second connect in one cycle) is drained.
            for c in self.clients:
                while not c.events.empty():
                    c.events.get_nowait()
            conn = self.http_round(conn, per_cycle)
            self.ws_round()
            self.tcp_round()
            if self.cycle % a.sample_every == 0 or self.cycle == 1:
                sp, hp, tp = self.server.pid, self.clients[0].proc.pid, self.clients[1].proc.pid
                w.writerow([self.cycle, round(time.time() - start, 1), self.requests,
                            rss_kib(sp), fds(sp), self.server_tasks(),
                            rss_kib(hp), fds(hp), self.clients[0].tasks,
                            rss_kib(tp), fds(tp), self.clients[1].tasks, life])
                out.flush()
            if self.cycle % 500 == 0:
                print("cycle %d: %d requests, %d failures, %.0f s" % (
                    self.cycle, self.requests, len(self.failures), time.time() - start), flush=True)
        if conn is not None:
            conn.close()
        out.close()
        elapsed = time.time() - start
        rc = sorted(self.reconnect_ms)
        summary = {
            "cycles": a.cycles, "server_restarts": restarts, "requests": self.requests,
            "websockets": self.ws, "tcp_streams": self.tcp, "bytes": self.bytes,
            "failures": len(self.failures), "first_failures": self.failures[:20],
            "url": url, "tcp_url": tcp_url, "seconds": round(elapsed, 1),
            "reconnect_ms_p50": round(rc[len(rc) // 2], 1), "reconnect_ms_p99": round(rc[int(len(rc) * 0.99)], 1),
            "reconnect": a.reconnect,
        }
        with open(os.path.join(a.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(json.dumps(summary, indent=1))
        for c in self.clients:
            c.proc.terminate()
        self.server.terminate()
        nginx.terminate()
        for p in [c.proc for c in self.clients] + [self.server, nginx]:
            p.wait(timeout=30)
        return summary


def main():
    p = argparse.ArgumentParser()
    p.add_argument("beam")
    p.add_argument("out")
    p.add_argument("--cycles", type=int, default=10000)
    p.add_argument("--requests", type=int, default=1000000)
    p.add_argument("--restart-every", type=int, default=1000)
    p.add_argument("--sample-every", type=int, default=50)
    p.add_argument("--reconnect", default="50ms,1s")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    s = Soak(a).run()
    sys.exit(1 if s["failures"] else 0)


if __name__ == "__main__":
    main()
