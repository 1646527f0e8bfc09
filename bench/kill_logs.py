#!/usr/bin/env python3
"""kill -9 at the worst moments, for logs (issue 19).

An app prints numbered JSON lines (`{"n": N, "boot": B}`, ~RATE per second,
B new at each start) under `beam agent`; one `beam logs --json --output FILE`
follows them. A seeded killer sends SIGKILL to the agent (its app dies with it
and starts again with it) or to the follower, restarting each after a random
pause, --kills times. The follower is restarted with the same --output file, so
it continues where the file ends.

Judged on the file, line by line:
  - no duplicate: no (boot, n) twice;
  - no silent gap inside one agent's life: consecutive lines of one boot have
    consecutive n, unless a `dropped` marker (which carries the count) or a
    `left` marker (the stream from that agent broke) sits between them and
    accounts for the gap;
  - every agent restart is reported: between the last line of one boot and the
    first of the next there is a `joined` marker naming the new buffer's epoch;
  - a restarted agent's lines are complete from its first line (n = 0), since
    its buffer holds them when the follower comes back.
Lines the killed agent had read but not yet sent are lost with it; they are not
counted as a silent gap, since the restart is reported where they would be.

    python3 bench/kill_logs.py BEAM_BIN [--kills 40] [--seed 19] [--rate 500]

Prints one JSON summary line; exits 1 on a duplicate or an unreported gap.
Used by bench/kill.sh.
"""
import argparse
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time

from harness import free_port, wait_port

GEN = r'''
import json, os, sys, time
boot = os.urandom(4).hex()
rate = int(sys.argv[1])
n = 0
out = sys.stdout
while True:
    batch = max(1, rate // 100)
    out.write("".join(json.dumps({"level": "info", "msg": "line", "n": n + i, "boot": boot}) + "\n" for i in range(batch)))
    out.flush()
    n += batch
    time.sleep(0.01)
'''






def judge(path):
    """Reads the follower's file and returns the verdict."""
    seen = set()
    dup = 0
    silent_gaps = []
    restarts_reported = 0
    restarts_unreported = 0
    incomplete_starts = 0
    dropped_total = 0
    lines = 0
    cur_boot, cur_n = None, None
    pending_dropped = 0
    marker_since = False  # a joined marker since the last entry
    left_since = False
    with open(path) as f:
        for raw in f:
            obj = json.loads(raw)
            if "dropped" in obj:
                pending_dropped += obj["dropped"]
                dropped_total += obj["dropped"]
                continue
            if "joined" in obj:
                marker_since = True
                continue
            if "left" in obj:
                left_since = True
                continue
            ctx = obj.get("context", {})
            if "boot" not in ctx:
                continue
            lines += 1
            key = (ctx["boot"], ctx["n"])
            if key in seen:
                dup += 1
                continue
            seen.add(key)
            boot, n = key
            if boot != cur_boot:
                if cur_boot is not None:
                    if marker_since:
                        restarts_reported += 1
                    else:
                        restarts_unreported += 1
                    if n != 0:
                        incomplete_starts += 1
                cur_boot, cur_n = boot, n
            else:
                gap = n - cur_n - 1
                if gap > 0 and gap > pending_dropped and not left_since:
                    silent_gaps.append({"boot": boot, "after": cur_n, "missing": gap - pending_dropped})
                cur_n = n
            pending_dropped = 0
            marker_since = left_since = False
    return {"lines": lines, "duplicates": dup, "silent_gaps": len(silent_gaps), "first_silent_gaps": silent_gaps[:5],
            "agent_restarts_reported": restarts_reported, "agent_restarts_unreported": restarts_unreported,
            "restarted_agents_missing_their_first_lines": incomplete_starts, "dropped_reported": dropped_total,
            "agent_runs_seen": len({b for b, _ in seen})}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("beam")
    p.add_argument("--kills", type=int, default=40)
    p.add_argument("--seed", type=int, default=19)
    p.add_argument("--rate", type=int, default=500)
    p.add_argument("--judge", help="only judge this file")
    a = p.parse_args()
    if a.judge:
        print(json.dumps(judge(a.judge)))
        return
    rng = random.Random(a.seed)
    work = tempfile.mkdtemp(prefix="beam-kill-logs-")
    token = "beam_" + "".join(secrets.choice("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(43))
    http, tun = free_port(), free_port()
    env = dict(os.environ, HOME=work, BEAM_CONFIG=work + "/c.toml", BEAM_TOKEN=token, BEAM_BOOTSTRAP_TOKEN=token)
    conn = ["--server", "127.0.0.1:%d" % tun, "--insecure"]
    with open(work + "/gen.py", "w") as f:
        f.write(GEN)
    server = subprocess.Popen([a.beam, "server", "--data-dir", work + "/d", "--http", "127.0.0.1:%d" % http,
                               "--tunnel", "127.0.0.1:%d" % tun, "--no-analytics"], env=env,
                              stdout=subprocess.DEVNULL, stderr=open(work + "/server.log", "ab"))
    wait_port(tun)
    subprocess.run([a.beam, "projects", "create", "kill/prod"] + conn, env=env, check=True, capture_output=True)
    agent_token = subprocess.run([a.beam, "projects", "token", "kill/prod"] + conn, env=env, check=True,
                                 capture_output=True, text=True).stdout.strip()
    agent_env = dict(env, BEAM_TOKEN=agent_token)
    out = work + "/follower.jsonl"

    def start(name):
        if name == "agent":
            return subprocess.Popen([a.beam, "agent", "--project", "kill/prod", "--instance", "a1"] + conn +
                                    ["--", sys.executable, work + "/gen.py", str(a.rate)], env=agent_env,
                                    stdout=subprocess.DEVNULL, stderr=open(work + "/agent.log", "ab"),
                                    start_new_session=True)
        return subprocess.Popen([a.beam, "logs", "--project", "kill/prod", "--json", "--tail", "0",
                                 "--output", out] + conn, env=env, stdout=subprocess.DEVNULL,
                                stderr=open(work + "/follower.log", "ab"))

    procs = {"agent": start("agent")}
    time.sleep(1.5)
    procs["follower"] = start("follower")
    time.sleep(1.5)
    kills = {"agent": 0, "follower": 0}
    t0 = time.time()
    for _ in range(a.kills):
        time.sleep(rng.uniform(0.3, 2.0))
        victim = rng.choice(["agent", "follower"])
        proc = procs[victim]
        if victim == "agent":
            # The agent and its app: the whole process group, as a crashed pod.
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills[victim] += 1
        time.sleep(rng.uniform(0.05, 1.0))
        procs[victim] = start(victim)
    time.sleep(3)
    for name, proc in procs.items():
        if name == "agent":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    verdict = judge(out)
    verdict.update({"kills": kills, "seed": a.seed, "rate": a.rate, "seconds": round(time.time() - t0, 1)})
    print(json.dumps(verdict))
    bad = verdict["duplicates"] or verdict["silent_gaps"] or verdict["agent_restarts_unreported"]
    if bad:
        print("work directory kept: " + work, file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
