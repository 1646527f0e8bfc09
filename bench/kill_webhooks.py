#!/usr/bin/env python3
"""kill -9 at the worst moments, for webhooks (issue 19).

A provider (this script) sends N distinct Stripe events to a release `beam
server`'s public receiver, retrying each until it is answered 200 as Stripe
does; `beam webhook` forwards them to a local app (this script again, as a
separate process) that records each delivery's event id and body hash. While
that runs, a seeded killer sends SIGKILL to `beam webhook`, the server or the
local app at random moments (and, with --postgres, restarts PostgreSQL once
mid-run), restarting each after a random pause, until at least --kills kills
were made and every event was sent. Then everything is left running until the
server holds an acknowledgement for every event.

Judged: every event sent reached the app byte-exact at least once (none lost),
every one is acknowledged on the server, and the duplicates (deliveries beyond
the first) are counted and reported.

    python3 bench/kill_webhooks.py BEAM_BIN [--events 1000] [--kills 50]
                                   [--seed 19] [--postgres URL] [--restart-postgres CMD]

Prints one JSON summary line; exits 1 if an event was lost or never
acknowledged. Used by bench/kill.sh.
"""
import argparse
import hashlib
import hmac
import http.client
import http.server
import json
import os
import random
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

SECRET = "whsec_kill_production"






# ------------------------------------------------------------ the local app

def run_app(port, log_path):
    """The developer's app: appends `event_id sha256(body)` per delivery, then 200."""
    log = open(log_path, "a")

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                ev = json.loads(body)["id"]
            except (ValueError, KeyError):
                ev = "?"
            log.write("%s %s\n" % (ev, hashlib.sha256(body).hexdigest()))
            log.flush()  # in the kernel before the 200: a kill -9 loses nothing recorded
            self.send_response(200)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, *a):
            pass

    http.server.ThreadingHTTPServer.allow_reuse_address = True
    http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()


# ------------------------------------------------------------ the harness

class Harness:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.work = tempfile.mkdtemp(prefix="beam-kill-wh-")
        self.token = "beam_" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(43))
        self.http, self.tun, self.app_port = free_port(), free_port(), free_port()
        self.env = dict(os.environ, HOME=self.work, BEAM_CONFIG=self.work + "/c.toml", BEAM_TOKEN=self.token,
                        BEAM_BOOTSTRAP_TOKEN=self.token, KILL_STRIPE_SECRET=SECRET)
        self.conn = ["--server", "127.0.0.1:%d" % self.tun, "--insecure"]
        self.procs = {}
        self.kills = {"webhook": 0, "server": 0, "app": 0, "postgres": 0}
        self.sent = {}  # event id -> sha256 of the body the provider sent
        self.send_retries = 0
        self.lock = threading.Lock()
        with open(self.work + "/sources.toml", "w") as f:
            f.write('[[source]]\norg = 1\nproject = "kill"\nenvironment = "prod"\nprovider = "stripe"\n'
                    'secret_env = "KILL_STRIPE_SECRET"\n')

    def log(self, name):
        return open("%s/%s.log" % (self.work, name), "ab")

    def start(self, name):
        a = self.a
        if name == "server":
            argv = [a.beam, "server", "--data-dir", self.work + "/d", "--http", "127.0.0.1:%d" % self.http,
                    "--tunnel", "127.0.0.1:%d" % self.tun, "--no-analytics",
                    "--webhook-sources", self.work + "/sources.toml"]
            if a.postgres:
                argv += ["--database", a.postgres]
            p = subprocess.Popen(argv, env=self.env, stdout=subprocess.DEVNULL, stderr=self.log("server"))
            wait_port(self.tun)
        elif name == "webhook":
            p = subprocess.Popen([a.beam, "webhook", "--project", "kill/prod", "--forward",
                                  "http://127.0.0.1:%d/webhooks" % self.app_port, "--json"] + self.conn,
                                 env=self.env, stdout=self.log("deliveries"), stderr=self.log("webhook"))
        else:
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--app", str(self.app_port),
                                  self.work + "/app.log"], stdout=subprocess.DEVNULL, stderr=self.log("app"))
            wait_port(self.app_port)
        self.procs[name] = p

    def kill(self, name):
        p = self.procs[name]
        p.send_signal(signal.SIGKILL)
        p.wait()
        self.kills[name] += 1

    def cli(self, *args):
        return subprocess.run([self.a.beam, *args] + self.conn, env=self.env, capture_output=True, text=True)

    # -- the provider
    def send_all(self):
        c = None
        for i in range(self.a.events):
            body = json.dumps({"id": "evt_kill_%d" % i, "type": "payment_intent.succeeded",
                               "data": {"object": {"amount": 1000 + i, "n": secrets.token_hex(8)}}}).encode()
            self.sent["evt_kill_%d" % i] = hashlib.sha256(body).hexdigest()
            while True:
                t = int(time.time())
                sig = hmac.new(SECRET.encode(), b"%d." % t + body, hashlib.sha256).hexdigest()
                try:
                    if c is None:
                        c = http.client.HTTPConnection("127.0.0.1", self.http, timeout=10)
                    c.request("POST", "/hooks/1/kill/prod/stripe", body=body,
                              headers={"Host": "localhost", "Content-Type": "application/json",
                                       "Stripe-Signature": "t=%d,v1=%s" % (t, sig)})
                    r = c.getresponse()
                    r.read()
                    if r.status == 200:
                        break
                except (OSError, http.client.HTTPException):
                    c = None
                with self.lock:
                    self.send_retries += 1
                time.sleep(0.1)
            time.sleep(1 / self.a.rate)

    # -- the store's view
    def store_counts(self):
        if self.a.postgres:
            q = ("SELECT (SELECT count(*) FROM webhook_events), "
                 "(SELECT count(*) FROM webhook_acks WHERE status BETWEEN 200 AND 299)")
            out = subprocess.run(["psql", self.a.postgres, "-Atc", q], capture_output=True, text=True)
            if out.returncode:
                return None
            ev, acked = out.stdout.strip().split("|")
            return int(ev), int(acked)
        db = sqlite3.connect("file:%s/d/beam.db?mode=ro" % self.work, uri=True, timeout=10)
        try:
            ev = db.execute("SELECT count(*) FROM webhook_events").fetchone()[0]
            acked = db.execute("SELECT count(*) FROM webhook_acks WHERE status BETWEEN 200 AND 299").fetchone()[0]
            return ev, acked
        except sqlite3.Error:
            return None
        finally:
            db.close()

    def run(self):
        a = self.a
        self.start("server")
        r = self.cli("projects", "create", "kill/prod")
        if r.returncode:
            sys.exit("projects create: " + r.stderr)
        self.start("app")
        self.start("webhook")
        # The subscription exists once `beam webhook` said ready.
        end = time.time() + 30
        while b"ready" not in open(self.work + "/webhook.log", "rb").read() and time.time() < end:
            time.sleep(0.05)
        sender = threading.Thread(target=self.send_all)
        t0 = time.time()
        sender.start()
        victims = ["webhook", "server", "app"]
        pg_restart_at = a.kills // 2 if a.restart_postgres else -1
        made = 0
        while sender.is_alive() or made < a.kills:
            time.sleep(self.rng.uniform(0.2, 1.2))
            if made == pg_restart_at:
                subprocess.run(a.restart_postgres, shell=True, check=True, stdout=subprocess.DEVNULL)
                self.kills["postgres"] += 1
            victim = self.rng.choice(victims)
            self.kill(victim)
            made += 1
            time.sleep(self.rng.uniform(0.05, 0.8))
            self.start(victim)
        sender.join()
        sent_done = time.time() - t0
        # Everything is up again: wait for every acknowledgement.
        end = time.time() + a.settle
        counts = None
        while time.time() < end:
            counts = self.store_counts()
            if counts and counts[1] >= a.events:
                break
            time.sleep(0.5)
        settled = time.time() - t0
        deliveries = {}
        bad_bytes = 0
        for line in open(self.work + "/app.log"):
            parts = line.split()
            if len(parts) != 2:
                continue
            ev, digest = parts
            deliveries[ev] = deliveries.get(ev, 0) + 1
            if self.sent.get(ev) != digest:
                bad_bytes += 1
        lost = sorted(set(self.sent) - set(deliveries), key=lambda e: int(e.rsplit("_", 1)[1]))
        summary = {
            "store": "postgres" if a.postgres else "sqlite", "seed": a.seed, "events": a.events,
            "kills": self.kills, "provider_retries": self.send_retries,
            "stored_events": counts[0] if counts else None, "acknowledged": counts[1] if counts else None,
            "delivered_unique": len(deliveries), "deliveries": sum(deliveries.values()),
            "duplicates": sum(deliveries.values()) - len(deliveries),
            "events_delivered_more_than_once": sum(1 for n in deliveries.values() if n > 1),
            "body_mismatches": bad_bytes, "lost": len(lost), "first_lost": lost[:10],
            "seconds_sending": round(sent_done, 1), "seconds_until_all_acknowledged": round(settled, 1),
        }
        print(json.dumps(summary))
        for p in self.procs.values():
            p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        ok = not lost and not bad_bytes and counts and counts[1] >= a.events and counts[0] == a.events
        if not ok:
            print("work directory kept: " + self.work, file=sys.stderr)
        return ok


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--app":
        run_app(int(sys.argv[2]), sys.argv[3])
        return
    p = argparse.ArgumentParser()
    p.add_argument("beam")
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--kills", type=int, default=50)
    p.add_argument("--seed", type=int, default=19)
    p.add_argument("--rate", type=float, default=25.0, help="events per second the provider sends")
    p.add_argument("--settle", type=float, default=180.0, help="seconds to wait for every acknowledgement")
    p.add_argument("--postgres", help="a PostgreSQL database URL for the store (default: SQLite)")
    p.add_argument("--restart-postgres", help="a shell command restarting PostgreSQL, run once mid-run")
    a = p.parse_args()
    sys.exit(0 if Harness(a).run() else 1)


if __name__ == "__main__":
    main()
