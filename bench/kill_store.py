#!/usr/bin/env python3
"""The store under abuse (issue 19): what a `beam server` does when its database
goes away while tunnels carry traffic.

  full      SQLite on a small tmpfs filled to the last byte: tunnels keep
            serving, the API and the webhook receiver answer 503
            `store_unavailable` with Retry-After, and once space returns the
            same calls succeed and `PRAGMA integrity_check` says ok (before and
            after a restart).
  postgres  PostgreSQL behind a relay that refuses every connection for
            --outage seconds: tunnels keep serving, the API says 503, and
            everything resumes by itself when the database is back (no restart).

Traffic through the tunnel runs the whole time from a separate thread; every
request is counted by outcome per phase.

    python3 bench/kill_store.py BEAM_BIN full
    python3 bench/kill_store.py BEAM_BIN postgres [--outage 30] [--postgres URL]

Prints one JSON line per scenario; exits 1 when a promise above was broken.
Needs root (mount, for `full`), nginx and python3. Used by bench/kill.sh.
"""
import argparse
import http.client
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

from harness import free_port, wait_port






class Relay:
    """A TCP relay to PostgreSQL that can refuse everything (an unreachable database)."""

    def __init__(self, target_port):
        self.target = target_port
        self.blocked = False
        self.pairs = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            c, _ = self.sock.accept()
            if self.blocked:
                reset(c)
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                reset(c)
                continue
            with self.lock:
                self.pairs.append((c, u))
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def block(self):
        """Refuse new connections and cut the open ones."""
        self.blocked = True
        with self.lock:
            for c, u in self.pairs:
                reset(c)
                reset(u)
            self.pairs = []

    def unblock(self):
        self.blocked = False


def reset(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    except OSError:
        pass


class Traffic:
    """Requests through the tunnel, back to back, counted by the current phase."""

    def __init__(self, port, host):
        self.port, self.host = port, host
        self.phase = "before"
        self.counts = {}
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        c = None
        while not self.stop:
            outcome = "error"
            try:
                if c is None:
                    c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                c.request("GET", "/1k", headers={"Host": self.host})
                r = c.getresponse()
                body = r.read()
                outcome = "ok" if r.status == 200 and len(body) == 1024 else "status %d" % r.status
            except (OSError, http.client.HTTPException):
                c = None
            k = self.counts.setdefault(self.phase, {})
            k[outcome] = k.get(outcome, 0) + 1
            if outcome != "ok":
                time.sleep(0.01)


class Server:
    def __init__(self, beam, work, db_args=(), data_dir=None):
        self.beam, self.work = beam, work
        self.http, self.tun = free_port(), free_port()
        self.token = "beam_" + "".join(secrets.choice("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(43))
        self.env = dict(os.environ, HOME=work, BEAM_CONFIG=work + "/c.toml", BEAM_TOKEN=self.token,
                        BEAM_BOOTSTRAP_TOKEN=self.token, KILL_STRIPE_SECRET="whsec_store_test")
        self.data_dir = data_dir or work + "/d"
        self.db_args = list(db_args)
        with open(work + "/sources.toml", "w") as f:
            f.write('[[source]]\norg = 1\nproject = "store"\nenvironment = "prod"\nprovider = "stripe"\n'
                    'secret_env = "KILL_STRIPE_SECRET"\n')
        self.procs = []

    def start(self):
        self.proc = subprocess.Popen(
            [self.beam, "server", "--data-dir", self.data_dir, "--http", "127.0.0.1:%d" % self.http,
             "--tunnel", "127.0.0.1:%d" % self.tun, "--webhook-sources", self.work + "/sources.toml"] + self.db_args,
            env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.work + "/server.log", "ab"))
        if not wait_port(self.tun):
            sys.exit("the server did not start: " + open(self.work + "/server.log").read()[-2000:])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)

    def api(self, method, path, body=None, timeout=30):
        """(status, JSON or text, seconds) of one API call with the operator token."""
        t0 = time.time()
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.http, timeout=timeout)
            data = json.dumps(body).encode() if body is not None else None
            c.request(method, path, body=data, headers={"Host": "localhost", "Authorization": "Bearer " + self.token,
                                                        "Content-Type": "application/json"})
            r = c.getresponse()
            raw = r.read()
            try:
                out = json.loads(raw)
            except ValueError:
                out = raw.decode(errors="replace")[:200]
            return r.status, out, round(time.time() - t0, 2), r.getheader("Retry-After")
        except (OSError, http.client.HTTPException) as e:
            return None, repr(e), round(time.time() - t0, 2), None

    def webhook(self, n):
        import hashlib
        import hmac
        body = json.dumps({"id": "evt_store_%s" % n, "type": "ping"}).encode()
        t = int(time.time())
        sig = hmac.new(b"whsec_store_test", b"%d." % t + body, hashlib.sha256).hexdigest()
        c = http.client.HTTPConnection("127.0.0.1", self.http, timeout=30)
        c.request("POST", "/hooks/1/store/prod/stripe", body=body,
                  headers={"Host": "localhost", "Content-Type": "application/json", "Stripe-Signature": "t=%d,v1=%s" % (t, sig)})
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")[:200]

    def tunnel(self, origin):
        p = subprocess.Popen([self.beam, "http", str(origin), "--server", "127.0.0.1:%d" % self.tun, "--insecure",
                              "--json", "--no-inspect"], env=self.env, stdout=subprocess.PIPE,
                             stderr=open(self.work + "/client.log", "ab"), text=True)
        self.procs.append(p)
        line = json.loads(p.stdout.readline())
        return line["url"].split("://", 1)[1].split(":")[0]

    def close(self):
        for p in self.procs:
            p.terminate()
            p.wait(timeout=30)
        if self.proc.poll() is None:
            self.stop()


def origin(work):
    port = free_port()
    os.makedirs(work + "/www", exist_ok=True)
    with open(work + "/www/1k", "w") as f:
        f.write("x" * 1024)
    for p in (work, work + "/www"):
        os.chmod(p, 0o755)
    os.chmod(work + "/www/1k", 0o644)
    with open(work + "/nginx.conf", "w") as f:
        f.write("worker_processes 1; daemon off; pid %s/nginx.pid; error_log %s/nginx.err;\n"
                "events {} http { access_log off; server { listen 127.0.0.1:%d; root %s/www; } }\n" % (work, work, port, work))
    return port, subprocess.Popen(["nginx", "-c", work + "/nginx.conf"])


def scenario_full(a):
    work = tempfile.mkdtemp(prefix="beam-store-full-")
    data = work + "/d"
    os.makedirs(data)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % a.tmpfs_mib, "tmpfs", data], check=True)
    port, nginx = origin(work)
    s = Server(a.beam, work)
    broken = []
    try:
        s.start()
        host = s.tunnel(port)
        traffic = Traffic(s.http, host)
        st = s.api("POST", "/api/projects", {"project": "store", "environment": "prod"})
        if st[0] not in (200, 201):
            sys.exit("creating the project failed: %r" % (st,))
        time.sleep(2)
        # Fill the filesystem to the last byte.
        traffic.phase = "disk full"
        with open(data + "/filler", "wb", buffering=0) as f:
            for chunk in (1 << 20, 4096, 1):
                try:
                    while True:
                        f.write(b"\0" * chunk)
                except OSError:
                    pass
        full = {}
        full["df_avail_bytes"] = os.statvfs(data).f_bavail * os.statvfs(data).f_bsize
        time.sleep(a.hold / 2)
        full["create_project"] = s.api("POST", "/api/projects", {"project": "full", "environment": "prod"})
        full["create_token"] = s.api("POST", "/api/tokens", {"description": "during-full"})
        full["list_tunnels"] = s.api("GET", "/api/tunnels")[:3]
        full["webhook"] = s.webhook("full")
        time.sleep(a.hold / 2)
        traffic.phase = "space back"
        os.remove(data + "/filler")
        t1 = time.time()
        after = {}
        while True:
            after["create_project"] = s.api("POST", "/api/projects", {"project": "after", "environment": "prod"})[:3]
            if after["create_project"][0] in (200, 201) or time.time() - t1 > 60:
                break
            time.sleep(0.5)
        after["recovered_after_s"] = round(time.time() - t1, 2)
        after["webhook"] = s.webhook("after")
        time.sleep(2)
        traffic.stop = True
        traffic.t.join()
        server_alive = s.proc.poll() is None
        s.close()
        db = sqlite3.connect(data + "/beam.db")
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        projects = [r[0] for r in db.execute("SELECT name FROM projects ORDER BY id")]
        events = db.execute("SELECT count(*) FROM webhook_events").fetchone()[0]
        db.close()
        s.start()  # and it starts again on that database
        restarted = s.api("GET", "/api/tunnels")[0]
        s.close()
        result = {"scenario": "sqlite disk full", "tmpfs_mib": a.tmpfs_mib, "traffic": traffic.counts,
                  "during": full, "after": after, "server_survived": server_alive, "integrity_check": integrity,
                  "projects": projects, "webhook_events_stored": events, "api_after_restart": restarted}
        print(json.dumps(result))
        if any(k != "ok" for ph in traffic.counts.values() for k in ph):
            broken.append("tunnel requests failed")
        for k in ("create_project", "create_token", "webhook"):
            if full[k][0] != 503:
                broken.append("%s answered %s while the disk was full" % (k, full[k][0]))
        if after["create_project"][0] not in (200, 201) or after["webhook"][0] != 200:
            broken.append("writes did not resume when space returned")
        if integrity != "ok" or not server_alive or restarted != 200:
            broken.append("integrity %s, survived %s, restarted %s" % (integrity, server_alive, restarted))
    finally:
        nginx.terminate()
        subprocess.run(["umount", "-l", data], check=False)
    return broken


def scenario_postgres(a):
    work = tempfile.mkdtemp(prefix="beam-store-pg-")
    db = "beam_store_%d" % os.getpid()
    base = a.postgres.rstrip("/")
    subprocess.run(["psql", base + "/postgres", "-qc", "CREATE DATABASE " + db], check=True)
    relay = Relay(int(base.rsplit(":", 1)[1]))
    url = "%s:%d/%s" % (base.rsplit(":", 1)[0], relay.port, db)
    port, nginx = origin(work)
    s = Server(a.beam, work, ["--database", url])
    broken = []
    try:
        s.start()
        host = s.tunnel(port)
        traffic = Traffic(s.http, host)
        s.api("POST", "/api/projects", {"project": "store", "environment": "prod"})
        time.sleep(2)
        traffic.phase = "database unreachable"
        relay.block()
        t0 = time.time()
        during = []
        while time.time() - t0 < a.outage:
            st = s.api("GET", "/api/tunnels")
            during.append({"at": round(time.time() - t0, 1), "status": st[0], "seconds": st[2],
                           "code": st[1].get("error", {}).get("code") if isinstance(st[1], dict) else st[1][:80],
                           "retry_after": st[3]})
            time.sleep(2)
        hook_during = s.webhook("during")
        relay.unblock()
        traffic.phase = "database back"
        t1 = time.time()
        while True:
            st = s.api("GET", "/api/tunnels", timeout=15)
            if st[0] == 200 or time.time() - t1 > 60:
                break
            time.sleep(0.2)
        recovered_after = round(time.time() - t1, 2)
        hook_after = s.webhook("after")
        host2 = s.tunnel(port)  # a new tunnel connects (its token is checked in the database)
        time.sleep(2)
        traffic.stop = True
        traffic.t.join()
        survived = s.proc.poll() is None
        s.close()
        result = {"scenario": "postgresql unreachable", "outage_seconds": a.outage, "traffic": traffic.counts,
                  "api_during": during, "webhook_during": hook_during, "api_recovered_after_s": recovered_after,
                  "api_after": st[0], "webhook_after": hook_after, "new_tunnel_after": bool(host2),
                  "server_survived": survived}
        print(json.dumps(result))
        if any(k != "ok" for ph in traffic.counts.values() for k in ph):
            broken.append("tunnel requests failed")
        if any(d["status"] != 503 for d in during):
            broken.append("the API did not answer 503 throughout the outage")
        if hook_during[0] != 503:
            broken.append("the webhook receiver answered %s during the outage" % hook_during[0])
        if st[0] != 200 or hook_after[0] != 200 or not survived:
            broken.append("did not resume by itself")
    finally:
        nginx.terminate()
        subprocess.run(["psql", base + "/postgres", "-qc", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db], check=False)
    return broken


def main():
    p = argparse.ArgumentParser()
    p.add_argument("beam")
    p.add_argument("scenario", choices=["full", "postgres"])
    p.add_argument("--tmpfs-mib", type=int, default=24)
    p.add_argument("--hold", type=float, default=10.0, help="seconds the disk stays full")
    p.add_argument("--outage", type=float, default=30.0)
    p.add_argument("--postgres", default=os.environ.get("BEAM_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    a = p.parse_args()
    broken = scenario_full(a) if a.scenario == "full" else scenario_postgres(a)
    for b in broken:
        print("BROKEN: " + b, file=sys.stderr)
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
