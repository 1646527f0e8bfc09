"""Sends N distinct Stripe events to a beam public receiver over one keep-alive
connection, each signed with the production secret (WEBHOOK_SECRET env), and
prints the receipt rate. Used by bench/webhooks.sh.

    python3 bench/webhook_send.py HOST:PORT PATH N
"""
import hashlib
import hmac
import http.client
import json
import os
import sys
import time

host, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
secret = os.environ["WEBHOOK_SECRET"].encode()
conn = http.client.HTTPConnection(host)
start = time.perf_counter()
for i in range(n):
    body = json.dumps({"id": "evt_bench_%d" % i, "type": "payment_intent.succeeded",
                       "data": {"object": {"amount": 1000 + i, "currency": "usd"}}}).encode()
    t = int(time.time())
    sig = hmac.new(secret, b"%d." % t + body, hashlib.sha256).hexdigest()
    conn.request("POST", path, body=body, headers={
        "Host": "localhost", "Content-Type": "application/json",
        "Stripe-Signature": "t=%d,v1=%s" % (t, sig)})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 200:
        sys.exit("event %d: HTTP %d" % (i, resp.status))
elapsed = time.perf_counter() - start
print("received %d events in %.2f s: %.0f events/s" % (n, elapsed, n / elapsed))
