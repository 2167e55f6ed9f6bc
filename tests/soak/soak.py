#!/usr/bin/python3
"""Soak driver for parleyd (see tests/soak/README.md; run through soak.sh).

Starts a parleyd of its own (tests/integration/parleytest.py's Parleyd, on
loopback, internal store), then for --duration seconds:

- steady clients (slixmpp) stay online in one MUC room and, in a loop,
  send chat messages to each other, chat messages to offline accounts (so
  the offline store fills), group chat messages, and presence changes;
- churn clients log in as one of the offline accounts, take what was
  stored for it, and log out again, over and over.

Every --interval seconds it writes one CSV row: parleyd's RSS and heap (from
`parleyctl --json stats`), its open file descriptors (/proc/PID/fd), its
connections and sessions, the offline queue (rows of offline_messages) and
the counts of traffic and errors so far.  At the end it fits a
least-squares line to each resource column over the second half of the run
and fails (exit 1) when one grows faster than its threshold, when an error
was counted, or when parleyd died."""
import argparse
import asyncio
import csv
import json
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / 'integration'))

import parleytest  # noqa: E402
from parleytest import HOST, login, logout  # noqa: E402

ROOM = 'soak@conference.' + HOST

# column -> (growth allowed over the second half, as an absolute figure,
#            and as a fraction of the column's mean there); the larger wins
LIMITS = {
    'rss_kib': (4096, 0.10),
    'heap_kib': (2048, 0.10),
    'fds': (8, 0.0),
    'offline_rows': (200, 0.25),
}


class Counts:
    def __init__(self):
        self.sent = 0
        self.received = 0
        self.logins = 0
        self.errors = 0
        self.error_samples = []

    def error(self, what):
        self.errors += 1
        if len(self.error_samples) < 20:
            self.error_samples.append(what)


def slope(xs, ys):
    """Least-squares slope of ys over xs (per unit of x)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


async def steady(srv, user, peers, offline, counts, stop):
    try:
        c = await login(srv, user, resource='soak')
    except Exception as e:
        counts.error('steady login %s: %s' % (user, e))
        return

    def on_message(m):
        counts.received += 1
        if m['type'] == 'error':
            counts.error('error message to %s: %s' % (user, m['error']['condition']))
    c.add_event_handler('message', on_message)
    c.add_event_handler('groupchat_message', lambda m: None)
    c.send_presence(pto='%s/%s' % (ROOM, user))
    n = 0
    try:
        while not stop.is_set():
            n += 1
            c.send_message(mto='%s@%s/soak' % (random.choice(peers), HOST),
                           mbody='chat %s %d' % (user, n), mtype='chat')
            c.send_message(mto='%s@%s' % (random.choice(offline), HOST),
                           mbody='offline %s %d' % (user, n), mtype='chat')
            counts.sent += 2
            if n % 3 == 0:
                c.send_message(mto=ROOM, mbody='room %s %d' % (user, n), mtype='groupchat')
                counts.sent += 1
            if n % 5 == 0:
                c.send_presence(pstatus='status %d' % n, pshow=random.choice(['away', 'chat', '']))
            try:
                await asyncio.wait_for(stop.wait(), random.uniform(0.1, 0.4))
            except asyncio.TimeoutError:
                pass
            if not c.is_connected():
                counts.error('steady client %s disconnected' % user)
                return
    finally:
        await logout(c)


async def churn(srv, offline, counts, stop):
    while not stop.is_set():
        user = random.choice(offline)
        try:
            c = await login(srv, user, resource='churn%d' % random.randrange(1000))
        except Exception as e:
            # two churners may pick the same account: a conflict is not an error
            counts.error('churn login %s: %s' % (user, e))
            await asyncio.sleep(0.5)
            continue
        counts.logins += 1
        await asyncio.sleep(random.uniform(0.2, 1.0))
        await logout(c)


def sample(srv, counts, t0):
    pid = srv.proc.pid
    st = json.loads(srv.ctl('--json', 'stats').stdout)
    fds = len(os.listdir('/proc/%d/fd' % pid))
    rows = srv.db_query('SELECT COUNT(*) FROM offline_messages')[0][0]
    return {
        't': round(time.monotonic() - t0, 1),
        'rss_kib': st['memory']['rss_kib'],
        'heap_kib': st['memory']['heap_used_kib'],
        'fds': fds,
        'connections': st['connections'],
        'sessions': st['sessions'],
        'offline_rows': rows,
        'sent': counts.sent,
        'received': counts.received,
        'logins': counts.logins,
        'errors': counts.errors,
    }


async def main_async(args, srv, writer):
    stop = asyncio.Event()
    counts = Counts()
    steady_users = ['s%02d' % i for i in range(args.steady)]
    offline = ['o%02d' % i for i in range(args.offline)]
    tasks = [asyncio.ensure_future(steady(srv, u, [p for p in steady_users if p != u] or [u],
                                          offline, counts, stop)) for u in steady_users]
    # the churners share the offline accounts: give each its own slice so a
    # login never replaces another churner's session
    per = max(1, len(offline) // max(1, args.churn))
    for i in range(args.churn):
        mine = offline[i * per:(i + 1) * per] or offline
        tasks.append(asyncio.ensure_future(churn(srv, mine, counts, stop)))
    t0 = time.monotonic()
    rows = []
    loop = asyncio.get_running_loop()
    while time.monotonic() - t0 < args.duration:
        await asyncio.sleep(min(args.interval, args.duration - (time.monotonic() - t0)))
        if not srv.running():
            counts.error('parleyd exited with %s' % srv.proc.returncode)
            break
        row = await loop.run_in_executor(None, sample, srv, counts, t0)
        rows.append(row)
        writer.writerow(row)
        args.csvfile.flush()
        print('soak: %(t)7.1f s rss %(rss_kib)6d KiB heap %(heap_kib)6d KiB fds %(fds)4d '
              'sessions %(sessions)3d offline %(offline_rows)5d sent %(sent)7d logins %(logins)5d '
              'errors %(errors)d' % row, flush=True)
    stop.set()
    await asyncio.wait(tasks, timeout=30)
    return rows, counts


def verdict(rows, counts, duration):
    problems = []
    half = [r for r in rows if r['t'] >= duration / 2]
    if len(half) < 3:
        problems.append('too few samples in the second half (%d): run longer' % len(half))
    else:
        xs = [r['t'] for r in half]
        span = xs[-1] - xs[0]
        for col, (absolute, fraction) in LIMITS.items():
            ys = [r[col] for r in half]
            growth = slope(xs, ys) * span
            allowed = max(absolute, fraction * (sum(ys) / len(ys)))
            print('soak: %-12s second half %8.1f .. %8.1f, fitted growth %+9.1f (allowed %.0f)'
                  % (col, min(ys), max(ys), growth, allowed))
            if growth > allowed:
                problems.append('%s grows: %+.1f over the second half (allowed %.0f)'
                                % (col, growth, allowed))
    if counts.errors:
        problems.append('%d errors, e.g. %s' % (counts.errors, '; '.join(counts.error_samples[:5])))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--duration', type=float, default=900, help='seconds (default 900)')
    ap.add_argument('--interval', type=float, default=10, help='seconds between samples')
    ap.add_argument('--csv', default='soak.csv', help='where the samples go')
    ap.add_argument('--steady', type=int, default=8, help='clients that stay online')
    ap.add_argument('--churn', type=int, default=4, help='clients that log in and out')
    ap.add_argument('--offline', type=int, default=12, help='accounts that are mostly offline')
    ap.add_argument('--workdir', help='parleyd directory (default: a new temporary one)')
    args = ap.parse_args()
    # slixmpp leaves tasks behind at each logout of the churn clients; the
    # loop's complaints about them say nothing about the server
    logging.getLogger('asyncio').setLevel(logging.CRITICAL)
    workdir = args.workdir or tempfile.mkdtemp(prefix='parley-soak-')
    users = {}
    for i in range(args.steady):
        users[('s%02d' % i, HOST)] = 'soak-s%02d' % i
    for i in range(args.offline):
        users[('o%02d' % i, HOST)] = 'soak-o%02d' % i
    srv = parleytest.Parleyd(workdir, loglevel='info', users=users,
                             muc='{}')
    srv.start_with_users()
    print('soak: parleyd pid %d in %s for %d s' % (srv.proc.pid, workdir, args.duration), flush=True)
    rc = 1
    try:
        with open(args.csv, 'w', newline='') as f:
            args.csvfile = f
            writer = csv.DictWriter(f, fieldnames=['t', 'rss_kib', 'heap_kib', 'fds', 'connections',
                                                   'sessions', 'offline_rows', 'sent', 'received',
                                                   'logins', 'errors'])
            writer.writeheader()
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            rows, counts = loop.run_until_complete(main_async(args, srv, writer))
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=5))
            loop.close()
        problems = verdict(rows, counts, args.duration)
    finally:
        stop_rc = srv.stop()
    problems += srv.problems(stop_rc)
    if problems:
        print('soak: FAIL\n  ' + '\n  '.join(problems))
    else:
        print('soak: PASS (%d samples in %s)' % (len(rows), args.csv))
        rc = 0
    return rc


if __name__ == '__main__':
    sys.exit(main())
