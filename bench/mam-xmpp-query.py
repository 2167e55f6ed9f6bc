#!/usr/bin/env python3
"""Archive query time through the server (XEP-0313 urn:xmpp:mam:2).

  mam-xmpp-query.py -p PORT -P "PIDS" -o OWNER_USER -w PEERS -q QUERIES [-L LABEL]

OWNER_USER (u1) logs in (STARTTLS, SCRAM-SHA-1, bind; no presence) and asks
for QUERIES pages of 50 messages (RSM <max>50</max>), one at a time, each
filtered by with = a peer drawn at random among PEERS (a comma-separated
list of bare JIDs), taking turns between two kinds of page:
  last   the newest page (<before/>), what a client asks for first;
  start  the first page after a moment drawn at random within the archive's
         span (-s START_US and -e END_US, microseconds since the epoch), the
         next page a client paging forwards would ask for.
The time of a query is from sending the <iq/> to its result (after the
<message/>s that carry the page): a client's wait, including TLS, XML and
the database.  The first WARM (20) queries are not counted.  It prints a
JSON line (scenario "mam-query"): p50/p90/p99/max in ms, per kind and in all,
the server's CPU per query (utime+stime of PIDS over the counted queries),
the messages per page (short pages counted: a page of fewer than 50 where
the archive should have had 50), errors.
"""
import argparse
import datetime
import json
import os
import random
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppclient import NS_BIND, NS_CLIENT, Stream, add_server_args, cpu_of, pid_list  # noqa: E402

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"


def pct(v, p):
    if not v:
        return -1
    v = sorted(v)
    return round(v[min(len(v) - 1, int(p * (len(v) - 1) + 0.5))], 3)


def stamp(us):
    return datetime.datetime.fromtimestamp(us / 1e6, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def query(st, qid, peer, kind, start_us):
    fields = (f"<field var='FORM_TYPE' type='hidden'><value>{NS_MAM}</value></field>"
              f"<field var='with'><value>{peer}</value></field>")
    rsm = "<max>50</max>"
    if kind == "last":
        rsm += "<before/>"
    else:
        fields += f"<field var='start'><value>{stamp(start_us)}</value></field>"
    t0 = time.perf_counter()
    st.send(f"<iq type='set' id='{qid}'><query xmlns='{NS_MAM}' queryid='{qid}'>"
            f"<x xmlns='jabber:x:data' type='submit'>{fields}</x><set xmlns='{NS_RSM}'>{rsm}</set></query></iq>")
    n = 0
    while True:
        el = st.next((f"{{{NS_CLIENT}}}message", f"{{{NS_CLIENT}}}iq"))
        if el.tag.endswith("message"):
            r = el.find(f"{{{NS_MAM}}}result")
            if r is not None and r.get("queryid") == qid:
                n += 1
            continue
        if el.get("id") != qid:
            continue
        dt = (time.perf_counter() - t0) * 1e3
        if el.get("type") != "result":
            return dt, n, "error"
        return dt, n, None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_server_args(ap, 60.0)
    ap.add_argument("-o", "--owner", type=int, default=1, help="the owner's user number")
    ap.add_argument("-w", "--peers", required=True)
    ap.add_argument("-s", "--start-us", type=int, required=True)
    ap.add_argument("-e", "--end-us", type=int, required=True)
    ap.add_argument("-q", "--queries", type=int, default=1000)
    ap.add_argument("--warm", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    pids = pid_list(args.pids)
    peers = args.peers.split(",")
    rnd = random.Random(args.seed)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    st = Stream(args, None)
    st.user = args.owner
    st.scram(st.starttls(ctx))
    st.iq(("set", f"<bind xmlns='{NS_BIND}'><resource>mamq</resource></bind>"), "b")
    times = {"last": [], "start": []}
    sizes = []
    errors = short = 0
    # a start moment leaves at least a page after it in most peers' share
    span = args.end_us - args.start_us
    c0 = None
    for i in range(args.warm + args.queries):
        if i == args.warm:
            c0, t0 = cpu_of(pids), time.monotonic()
        kind = "last" if i % 2 == 0 else "start"
        start_us = args.start_us + int(rnd.random() * span * 0.9)
        dt, n, err = query(st, f"q{i}", rnd.choice(peers), kind, start_us)
        if i < args.warm:
            continue
        times[kind].append(dt)
        sizes.append(n)
        errors += err is not None
        short += n < 50
    c1, t1 = cpu_of(pids), time.monotonic()
    st.send("</stream:stream>")
    st.drop()
    allt = times["last"] + times["start"]
    out = {"scenario": "mam-query", "label": args.label, "queries": len(allt), "peers": len(peers),
           "p50_ms": pct(allt, .5), "p90_ms": pct(allt, .9), "p99_ms": pct(allt, .99), "max_ms": pct(allt, 1),
           "last_p50_ms": pct(times["last"], .5), "last_p99_ms": pct(times["last"], .99),
           "start_p50_ms": pct(times["start"], .5), "start_p99_ms": pct(times["start"], .99),
           "server_cpu_ms_per_query": round((c1 - c0) / len(allt) * 1e3, 3) if allt else -1,
           "queries_per_s": round(len(allt) / (t1 - t0), 1), "mean_page": round(sum(sizes) / len(sizes), 1) if sizes else -1,
           "short_pages": short, "errors": errors}
    print(json.dumps(out), flush=True)
    print(f"[mamq] {args.label}: p50 {out['p50_ms']} ms p99 {out['p99_ms']} ms (last {out['last_p99_ms']}, start "
          f"{out['start_p99_ms']}), {out['server_cpu_ms_per_query']} ms server CPU/query, mean page {out['mean_page']}, "
          f"short {short}, errors {errors}", file=sys.stderr)


if __name__ == "__main__":
    main()
