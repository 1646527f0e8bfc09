#!/usr/bin/env python3
"""Runs deploy/compose.yaml's beam nodes and load balancer as plain processes.

No container runtime here can pull images, so this starts exactly the
commands and environment the compose file declares for node1..3 and lb
(after compose's own `${VAR:-default}` interpolation, with the variables set
for one machine: loopback addresses, one port per node, the machine's
PostgreSQL, secrets in a temporary directory), in compose's order
(depends_on), and runs a tunnel and a visitor request through the balancer.

Usage: compose_as_processes.py BEAM_BIN DATABASE_URL   (needs haproxy, openssl)
"""
import os, random, re, socket, subprocess, sys, tempfile, time, urllib.error, urllib.request, json
from ruamel.yaml import YAML

here = os.path.dirname(os.path.abspath(__file__))
beam, db = sys.argv[1], sys.argv[2]

def _ephemeral_range():
    try:
        lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999

_handed = set()
def free_port():
    """A port that is free now and stays free until a node binds it: below the
    kernel's ephemeral range, so no outgoing connection (a node's to PostgreSQL
    or to another node) can take it in between, and never the same one twice.
    bind(0) would pick from that range, and did collide once in CI."""
    lo, _ = _ephemeral_range()
    for _ in range(1000):
        p = random.randrange(max(1024, lo - 12000), lo)
        if p in _handed:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            s.close()
        _handed.add(p)
        return p
    raise SystemExit("no free port below the ephemeral range")

tmp = tempfile.mkdtemp(prefix="beam-compose-")
secrets = os.path.join(tmp, "secrets"); os.makedirs(secrets)
with open(os.path.join(secrets, "cluster_secret"), "w") as f:
    f.write(os.urandom(32).hex() + "\n")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-days", "1", "-subj", "/CN=beam", "-addext", "subjectAltName=DNS:localhost",
                "-keyout", os.path.join(secrets, "tunnel_key"), "-out", os.path.join(secrets, "tunnel_cert")],
               check=True, capture_output=True)

# The variables compose would read from the shell or .env.
env = {"BEAM_DATABASE_URL": db, "SECRETS_DIR": secrets, "BEAM_PUBLIC_PORT": "0",
       "LB_HTTP": f"127.0.0.1:{free_port()}", "LB_TUNNEL": f"127.0.0.1:{free_port()}"}
for n in "123":
    env.update({f"NODE{n}_HOST": "127.0.0.1", f"NODE{n}_BIND": "127.0.0.1",
                f"NODE{n}_HTTP": str(free_port()), f"NODE{n}_TUNNEL": str(free_port()),
                f"NODE{n}_PORT": str(free_port()), f"NODE{n}_DATA": os.path.join(tmp, f"data{n}")})

def interpolate(value):
    """compose's ${VAR}, ${VAR:-default} and ${VAR-default}."""
    def one(m):
        name, op, default = m.group(1), m.group(2), m.group(3) or ""
        v = env.get(name)
        if op == ":-": return v if v else default
        if op == "-": return v if v is not None else default
        return v or ""
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}", one, str(value))

compose = YAML(typ="safe").load(open(os.path.join(here, "compose.yaml")))
procs = []
def start(name):
    svc = compose["services"][name]
    environ = {k: interpolate(v) for k, v in (svc.get("environment") or {}).items()}
    cmd = svc["command"]
    if name.startswith("node"):
        cmd = [beam] + cmd  # the image's ENTRYPOINT is `beam`
    elif cmd[0] == "haproxy":
        # The config file the compose file mounts, where it lives here.
        mount = [v for v in svc["volumes"] if v.endswith("haproxy.cfg:ro")][0].split(":")
        cmd = ["haproxy", "-db", "-f", os.path.join(here, mount[0])]
    log = open(os.path.join(tmp, name + ".log"), "w")
    full = {"PATH": os.environ["PATH"], "HOME": tmp, "NO_COLOR": "1", **environ}
    procs.append(subprocess.Popen(cmd, env=full, stdout=log, stderr=subprocess.STDOUT))
    return environ

def wait_listening(port, what):
    for _ in range(150):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} never listened on {port}; logs in {tmp}")

def wait_ready(addr, what):
    for _ in range(150):
        try:
            req = urllib.request.Request(f"http://{addr}/ready", headers={"Host": "localhost"})
            if urllib.request.urlopen(req, timeout=1).status == 200: return
        except Exception: pass
        time.sleep(0.1)
    raise SystemExit(f"{what} never became ready; logs in {tmp}")

try:
    # The operator's first token, as they would put it in .env.
    token = "beam_" + os.urandom(24).hex()
    env["BEAM_BOOTSTRAP_TOKEN"] = token
    # compose's order: nodes after postgres (here: already running), lb after the nodes.
    for n in ["node1", "node2", "node3"]:
        e = start(n)
        wait_ready(e["BEAM_HTTP_ADDR"], n)
    start("lb")
    # The balancer answers /ready once it has a node to send it to.
    wait_ready(env["LB_HTTP"], "the balancer")
    # A tunnel through the balancer's tunnel port, a visitor through its HTTP port.
    origin = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(origin_port := free_port())],
                              cwd=here, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(origin)
    # The visitor's first request must not race the app's start.
    wait_listening(origin_port, "the local app")
    fp = subprocess.run(["openssl", "x509", "-in", os.path.join(secrets, "tunnel_cert"), "-noout", "-fingerprint", "-sha256"],
                        check=True, capture_output=True, text=True).stdout.split("=")[1].strip().replace(":", "").lower()
    client_env = {"PATH": os.environ["PATH"], "HOME": tmp, "NO_COLOR": "1", "BEAM_TOKEN": token,
                  "BEAM_SERVER": env["LB_TUNNEL"], "BEAM_FINGERPRINT": "sha256:" + fp}
    client = subprocess.Popen([beam, "http", str(origin_port), "--json", "--transport", "tls"], env=client_env,
                              stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "client.log"), "w"), text=True)
    procs.append(client)
    line = client.stdout.readline()
    event = json.loads(line)
    name = event["name"]
    req = urllib.request.Request(f"http://{env['LB_HTTP']}/compose.yaml", headers={"Host": f"{name}.localhost"})
    # Through each node in turn (round robin): held by one, forwarded by the others.
    for _ in range(6):
        try:
            body = urllib.request.urlopen(req, timeout=5).read()
        except urllib.error.HTTPError as e:
            raise SystemExit(f"a visitor got {e.code}: {e.read()[:500]!r}; logs in {tmp}")
        assert body == open(os.path.join(here, "compose.yaml"), "rb").read(), "the file came back changed"
    print(f"compose as processes: 3 nodes + haproxy; tunnel {name} served compose.yaml through the balancer")
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try: p.wait(timeout=10)
        except Exception: p.kill()
