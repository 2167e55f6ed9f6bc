#!/usr/bin/env python3
"""The tables of bench/mam.sh from its JSON lines (one or more files).

Every run: messages/s, the XMPP server's CPU per delivered message, the
PostgreSQL server's (db) and their sum, latency, the load generator's CPU
and the archive rows per message sent.  Then per case the median [min-max]
over the repetitions, and per server and store the ratios archive on / off
of the medians (the target: Parley's CPU per message with the archive at
most 1.30 times that without), and Parley / ejabberd.
With --query, the tables of bench/mam-xmpp-query.sh instead: every run's
query times (a page of 50 filtered by with), the medians [min-max] per
store, and the target (p99 at most 20 ms).
usage: mam-summary.py RAW.jsonl ...
       mam-summary.py --query RAW.jsonl ...
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchstats import label, med, read_runs  # noqa: E402

ORDER = ["parley-pg-off", "parley-pg-on", "ejabberd-pg-off", "ejabberd-pg-on",
         "parley-sqlite-off", "parley-sqlite-on"]
TARGET = 1.30


def load(paths):
    runs, rows = [], {}
    for p in paths:
        with open(p) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                d = json.loads(line)
                if d.get("scenario") == "mam-rows":
                    rows[d["label"]] = d["archive_rows"]
                elif d.get("scenario") == "msg":
                    runs.append(d)
    for d in runs:
        lb = label(d.get("label", ""))
        d["case"] = lb.get("case", "?")
        d["rep"] = int(lb.get("rep", 0))
        d["srv_us"] = d["cpu_s_per_100k"] * 10 if d["cpu_s_per_100k"] >= 0 else None
        db = d.get("db_cpu_s_per_100k", -1)
        d["db_us"] = db * 10 if d["case"].split("-")[1] == "pg" and db >= 0 else None
        d["total_us"] = d["srv_us"] + (d["db_us"] or 0) if d["srv_us"] is not None else None
        r = rows.get(d.get("label"))
        d["rows"] = r
        d["rows_per_msg"] = r / d["sent"] if r is not None and r >= 0 and d["sent"] else None
    return runs


def fmt(v, nd=1):
    if v is None:
        return "–"
    return f"{v:.{nd}f}"


def query_tables(paths):
    runs, fills = read_runs(paths, "mam-query"), read_runs(paths, "mamq-fill")
    if fills:
        print("### Fill\n")
        print("| store | rows | seconds |")
        print("|---|---|---|")
        for d in fills:
            print(f"| {d['store']} | {d['rows']} | {d['seconds']:.0f} |")
        print()
    stores = []
    for r in runs:
        if r.get("store") not in stores:
            stores.append(r.get("store"))
    print("### Every run\n")
    print("| rep | store | queries | p50 ms | p90 ms | p99 ms | max ms | newest page p50 / p99 | from a start p50 / p99 "
          "| server CPU ms/query | queries/s | mean page | short pages | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(runs, key=lambda r: (int(r.get("rep", 0)), stores.index(r.get("store")))):
        print(f"| {r.get('rep')} | {r.get('store')} | {r['queries']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} "
              f"| {r['p99_ms']:.2f} | {r['max_ms']:.2f} | {r['last_p50_ms']:.2f} / {r['last_p99_ms']:.2f} "
              f"| {r['start_p50_ms']:.2f} / {r['start_p99_ms']:.2f} | {r['server_cpu_ms_per_query']:.2f} "
              f"| {r['queries_per_s']:.0f} | {r['mean_page']} | {r['short_pages']} | {r['errors']} |")
    print("\n### Medians [min–max] per store\n")
    print("| store | runs | p50 ms | p99 ms | server CPU ms/query | target p99 ≤ 20 ms |")
    print("|---|---|---|---|---|---|")
    for st in stores:
        rs = [r for r in runs if r.get("store") == st]
        p50, _ = med([r["p50_ms"] for r in rs], 2)
        p99, m99 = med([r["p99_ms"] for r in rs], 2)
        cpu, _ = med([r["server_cpu_ms_per_query"] for r in rs], 2)
        ok = any(r["errors"] or r["short_pages"] for r in rs)
        verdict = "–" if m99 is None else ("met" if m99 <= 20 else "missed")
        if ok:
            verdict += " (errors or short pages: see above)"
        print(f"| {st} | {len(rs)} | {p50} | {p99} | {cpu} | {verdict} |")


def main():
    if sys.argv[1:2] == ["--query"]:
        query_tables(sys.argv[2:])
        return
    runs = load(sys.argv[1:])
    cases = [c for c in ORDER if any(r["case"] == c for r in runs)]
    cases += sorted({r["case"] for r in runs} - set(cases))
    print("### Every run\n")
    print("| rep | case | msgs/s | server µs/msg | db µs/msg | total µs/msg | p50 ms | p99 ms "
          "| server sys % | loadgen CPU % | CPU0 busy % | archive rows / sent | online |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(runs, key=lambda r: (r["rep"], cases.index(r["case"]))):
        print(f"| {r['rep']} | {r['case']} | {r['msgs_per_s']:.0f} | {fmt(r['srv_us'], 2)} | {fmt(r['db_us'], 2)} "
              f"| {fmt(r['total_us'], 2)} | {r['lat_p50_ms']:.2f} | {r['lat_p99_ms']:.2f} "
              f"| {fmt(r.get('server_sys_share_pct'), 0)} | {r['loadgen_cpu_pct']:.0f} | {fmt(r.get('cpu0_busy_pct'), 0)} "
              f"| {fmt(r['rows_per_msg'], 2)} | {r['online']}/{r['users']} |")
    print("\n### Medians [min–max] per case\n")
    print("| case | runs | msgs/s | server µs/msg | db µs/msg | total µs/msg | p99 ms | archive rows / sent |")
    print("|---|---|---|---|---|---|---|---|")
    m = {}
    for c in cases:
        rs = [r for r in runs if r["case"] == c]
        cells, mm = [], {}
        for key, nd in (("msgs_per_s", 0), ("srv_us", 2), ("db_us", 2), ("total_us", 2),
                        ("lat_p99_ms", 2), ("rows_per_msg", 2)):
            s, v = med([r[key] for r in rs], nd)
            cells.append(s)
            mm[key] = v
        m[c] = mm
        print(f"| {c} | {len(rs)} | " + " | ".join(cells) + " |")
    print("\n### Archive on / off (ratios of the medians)\n")
    print("| server, store | msgs/s | server CPU per msg | total CPU per msg (server + db) | target ≤ 1.30 (server / total) |")
    print("|---|---|---|---|---|")
    for base in ("parley-pg", "ejabberd-pg", "parley-sqlite"):
        on, off = m.get(base + "-on"), m.get(base + "-off")
        if not on or not off:
            continue

        def ratio(k):
            x, y = on.get(k), off.get(k)
            return x / y if x is not None and y else None
        rs, rt = ratio("srv_us"), ratio("total_us")
        verdict = ""
        if base.startswith("parley"):
            verdict = " / ".join("–" if x is None else ("met" if x <= TARGET else "missed") for x in (rs, rt))
        print(f"| {base} | {fmt(ratio('msgs_per_s'), 2)} | {fmt(rs, 2)} | {fmt(rt, 2)} | {verdict} |")
    pairs = [("pg-off", "parley-pg-off", "ejabberd-pg-off"), ("pg-on", "parley-pg-on", "ejabberd-pg-on")]
    if any(a in m and b in m for _, a, b in pairs):
        print("\n### Parley / ejabberd (ratios of the medians)\n")
        print("| archive | msgs/s | server CPU per msg | db CPU per msg | total CPU per msg |")
        print("|---|---|---|---|---|")
        for name, a, b in pairs:
            if a in m and b in m:
                def r2(k):
                    x, y = m[a].get(k), m[b].get(k)
                    return x / y if x is not None and y else None
                print(f"| {name} | {fmt(r2('msgs_per_s'), 2)} | {fmt(r2('srv_us'), 2)} | {fmt(r2('db_us'), 2)} "
                      f"| {fmt(r2('total_us'), 2)} |")


if __name__ == "__main__":
    main()
