#!/usr/bin/env python3
"""Self time of a `perf record` file by category (kernel scheduling and wakeups,
kernel TCP, syscall entry, malloc, memcpy, h2, HPACK, hyper, TLS, http headers,
tokio, beam's own code). Usage: perf_buckets.py FILE.data [...]"""
import collections
import re
import subprocess
import sys
def buckets(data):
    out=subprocess.run(['perf','report','-i',data,'--no-children','--sort','dso,symbol','--stdio','-g','none'],capture_output=True,text=True).stdout
    b=collections.Counter()
    for line in out.splitlines():
        m=re.match(r'\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*?)\s*$',line)
        if not m: continue
        pct=float(m.group(1)); dso=m.group(2); sym=m.group(4)
        s=sym
        if dso.startswith('[kernel'):
            if re.search(r'finish_task_switch|schedule|futex|_raw_spin_unlock_irq|try_to_wake|ttwu|select_task|enqueue|dequeue|update_curr|psi_|pick_next',s): k='kernel: scheduling & wakeups'
            elif re.search(r'tcp|ip_|skb|sock|netif|napi|dev_queue|copy_(from|to)_iter|inet|__sys_|net_rx|loopback|sk_|rcv|xmit',s): k='kernel: TCP/loopback'
            elif re.search(r'epoll|ep_',s): k='kernel: epoll'
            else: k='kernel: syscall entry/other'
        elif dso.startswith('libc'):
            if re.search(r'malloc|free|_int_|unlink_chunk|consolidate|realloc|calloc|tcache',s): k='libc: malloc/free'
            elif re.search(r'mem(move|cpy|cmp|set)|str',s): k='libc: memcpy/memcmp'
            else: k='libc: other (writev/readv/futex stubs)'
        elif dso=='beam':
            if s.startswith('h2::hpack') or 'hpack' in s: k='h2: HPACK'
            elif s.startswith('h2::') or '<h2::' in s: k='h2: framing/streams'
            elif 'hyper::proto::h1' in s or 'httparse' in s: k='hyper: HTTP/1'
            elif 'hyper::proto::h2' in s: k='hyper: h2 glue'
            elif s.startswith('hyper') or '<hyper' in s: k='hyper: other'
            elif 'ring_core' in s or 'rustls' in s or 'ring::' in s: k='TLS (rustls/ring)'
            elif s.startswith('http::') or '<http::' in s: k='http crate (headers)'
            elif 'tokio' in s or 'mio' in s: k='tokio runtime'
            elif 'beam_' in s: k='beam code'
            elif 'prometheus' in s: k='metrics'
            else: k='other Rust (futures, core, alloc, inlined)'
        else: k=dso
        b[k]+=pct
    return b
for d in sys.argv[1:]:
    print('==',d)
    for k,v in sorted(buckets(d).items(),key=lambda x:-x[1]):
        print(f'  {v:5.1f}%  {k}')
