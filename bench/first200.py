#!/usr/bin/env python3
"""Time from starting beam to the first 200 through a tunnel, on loopback.

For each run: start `beam server` on a fresh data dir, wait for its tunnel port,
start `beam http` for a local origin, then poll the public URL every 2 ms until it
answers 200. Prints server start→listening, client start→first 200, and the total,
as the median and max over the runs. Usage: first200.py BEAM_BIN [RUNS]
"""
import http.client, http.server, os, socket, statistics, subprocess, sys, tempfile, threading, time

from harness import free_port

beam = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
threading.Thread(target=origin.serve_forever, daemon=True).start()




def wait(pred, limit=10.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.002)
    return False


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
        return True
    except OSError:
        return False


def ok(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        c.request("GET", "/", headers={"Host": "first.localhost"})
        return c.getresponse().status == 200
    except OSError:
        return False


srv, cli, tot = [], [], []
for _ in range(runs):
    home = tempfile.mkdtemp()
    env = dict(os.environ, HOME=home, BEAM_CONFIG=os.path.join(home, "c.toml"), RUST_LOG="error")
    hp, tp = free_port(), free_port()
    t0 = time.monotonic()
    s = subprocess.Popen([beam, "server", "--dev", "--http", f"127.0.0.1:{hp}", "--tunnel", f"127.0.0.1:{tp}"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait(lambda: listening(tp) and os.path.exists(env["BEAM_CONFIG"])), "server did not start"
    t1 = time.monotonic()
    c = subprocess.Popen([beam, "http", str(origin.server_port), "--subdomain", "first"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait(lambda: ok(hp)), "no 200 through the tunnel"
    t2 = time.monotonic()
    c.terminate(); s.terminate(); c.wait(); s.wait()
    srv.append(t1 - t0); cli.append(t2 - t1); tot.append(t2 - t0)

fmt = lambda xs: f"median {statistics.median(xs)*1000:.0f} ms, max {max(xs)*1000:.0f} ms"
print(f"runs: {runs}")
print(f"server start -> listening:      {fmt(srv)}")
print(f"beam http start -> first 200:   {fmt(cli)}")
print(f"total start -> first 200:       {fmt(tot)}")
