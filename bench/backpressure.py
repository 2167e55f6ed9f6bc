#!/usr/bin/python3
"""System calls of parleyd per delivered message when the recipient reads
slowly, so that its socket fills and parleyd's write watcher runs.

    bench/backpressure.py [--rounds N] [--messages M] BUILD...

BUILD is a directory with parleyd, parleyctl and sql/ (a built checkout or
a copy of one); the builds are measured interleaved, N rounds.  In each
round alice and bob log in (TCP, STARTTLS; bob with an 8 KiB receive
buffer).  Bob reads nothing while alice sends messages of 1000 bytes in
bursts of 100 until parleyd's socket to bob stops taking more (its Send-Q
stands still).  Then `perf stat` counts parleyd's system calls while bob
reads everything, 4 KiB at a time with a pause of 0.5 ms, and alice sends
M more, staying LEAD_EXTRA messages beyond the full socket; the figures are
per message bob read in that phase.  Needs perf (root) and ss.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / 'tests' / 'integration'))
import parleytest  # noqa: E402

BODY = 'x' * 1000
BURST = 100
LEAD_EXTRA = 200  # messages in parleyd's own queue for bob (1 KB each; the cap is 1 MB)


def perf_start(pid, out):
    return subprocess.Popen(['perf', 'stat', '-x,', '-e', 'syscalls:sys_enter_*', '-e',
                             'context-switches', '-e', 'task-clock', '-p', str(pid), '-o', out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def send_q(port, peer_port):
    """The Send-Q of parleyd's socket to the client on peer_port."""
    out = subprocess.run(['ss', '-tnH', 'sport = :%d and dport = :%d' % (port, peer_port)],
                         capture_output=True, text=True).stdout.split()
    return int(out[2]) if len(out) > 2 else -1


def perf_counts(path):
    counts = {}
    for line in open(path):
        f = line.strip().split(',')
        if len(f) < 3 or not f[0].replace('.', '').isdigit():
            continue
        if f[2].startswith('syscalls:sys_enter_'):
            counts[f[2][len('syscalls:sys_enter_'):]] = float(f[0])
        elif f[2] in ('context-switches', 'task-clock'):
            counts['(%s)' % f[2]] = float(f[0])
    return counts


def one_run(build, messages, workdir):
    os.environ['PARLEY_BUILDDIR'] = str(build)
    os.environ['PARLEY_SQL_DIR'] = str(Path(build) / 'sql')
    srv = parleytest.Parleyd(workdir, loglevel='info')
    # no message archive: its storage writes would hide the stream's calls
    cfg = srv.config.read_text().replace('  register: { open: false }\nhosts:',
                                         '  register: { open: false }\n  mam: false\nhosts:')
    assert 'mam: false' in cfg
    srv.config.write_text(cfg)
    srv.start_with_users()
    try:
        alice = parleytest.RawClient(srv.port)
        alice.login('alice', srv.password('alice'), resource='a')
        bob = parleytest.RawClient(srv.port, rcvbuf=8192)
        bob_jid = bob.login('bob', srv.password('bob'), resource='b')
        time.sleep(0.2)
        msg = "<message to='%s' type='chat'><body>%s</body></message>" % (bob_jid, BODY)
        # Fill: bob reads nothing until parleyd's socket to him stops taking
        # more (its Send-Q stands still); from then on parleyd queues, and
        # alice keeps LEAD_EXTRA messages beyond that in its queue.
        bob_port = bob.sock.getsockname()[1]
        sent, last_q, still = 0, -1, 0
        while still < 3:
            alice.send(msg * BURST)
            sent += BURST
            time.sleep(0.05)
            q = send_q(srv.port, bob_port)
            still = still + 1 if q == last_q else 0
            last_q = q
            if sent > 20000:
                raise RuntimeError('parleyd\'s socket to bob never filled')
        lead = sent + LEAD_EXTRA
        perf_out = os.path.join(workdir, 'perf.txt')
        perf = perf_start(srv.proc.pid, perf_out)
        time.sleep(0.3)  # perf attached
        total = sent + messages
        got = [0]
        stop = threading.Event()

        def send():
            nonlocal sent
            while sent < total and not stop.is_set():
                while sent - got[0] >= lead and not stop.is_set():
                    time.sleep(0.0005)
                n = min(BURST, total - sent)
                alice.send(msg * n)
                sent += n

        t = threading.Thread(target=send)
        t0 = time.monotonic()
        t.start()
        tail = b''
        bob.sock.settimeout(10)
        while got[0] < total:
            data = bob.sock.recv(4096)
            if not data:
                raise RuntimeError('bob closed after %d messages' % got[0])
            buf = tail + data
            got[0] += buf.count(b'</message>')
            end = buf.rfind(b'</message>')
            tail = (buf[end + 10:] if end >= 0 else buf)[-9:]
            time.sleep(0.0005)
        secs = time.monotonic() - t0
        stop.set()
        t.join()
        perf.send_signal(signal.SIGINT)
        perf.wait(120)  # detaching from every tracepoint takes a while on a busy machine
        return perf_counts(perf_out), total, secs
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--messages', type=int, default=5000)
    ap.add_argument('builds', nargs='+')
    a = ap.parse_args()
    res = {b: [] for b in a.builds}
    for r in range(a.rounds):
        for b in a.builds:
            with tempfile.TemporaryDirectory(prefix='bp-') as d:
                counts, got, secs = one_run(Path(b).resolve(), a.messages, d)
            res[b].append((counts, got))
            print('%s round %d: %d messages in %.2f s, load %s, %d syscalls' % (
                b, r + 1, got, secs, open('/proc/loadavg').read().split()[:3],
                sum(v for k, v in counts.items() if not k.startswith('('))), flush=True)
    keys = set()
    for runs in res.values():
        for c, _ in runs:
            keys |= {k for k, v in c.items() if v > 0}

    def per(b, k):
        return statistics.median(c.get(k, 0) / got for c, got in res[b])
    print('\n| per delivered message (median of %d) | %s |' % (a.rounds, ' | '.join(a.builds)))
    print('|---|' + '---|' * len(a.builds))
    for k in sorted(keys, key=lambda k: -per(a.builds[0], k)):
        if k == '(task-clock)':
            continue
        print('| %s | %s |' % (k, ' | '.join('%.3f' % per(b, k) for b in a.builds)))
    print('| **all syscalls** | %s |' % ' | '.join(
        '**%.3f**' % statistics.median(sum(v for k, v in c.items() if not k.startswith('(')) / got
                                       for c, got in res[b]) for b in a.builds))
    print('| parleyd CPU µs (task-clock) | %s |' % ' | '.join(
        '%.1f' % (per(b, '(task-clock)') * 1000) for b in a.builds))


if __name__ == '__main__':
    main()
