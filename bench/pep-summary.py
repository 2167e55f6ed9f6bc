#!/usr/bin/env python3
"""PEP runs (JSON lines of the load generator's pep scenario, as bench/pep.sh
writes them) -> markdown tables: the median [min-max] of each server over
its repetitions, and the ratio of the medians Parley/ejabberd.

usage: pep-summary.py RAW.jsonl [RAW.jsonl ...]
"""
import importlib.util
import json
import os
import statistics
import sys

# label parsing and the median [min-max] cell, as for the MUC tables
_spec = importlib.util.spec_from_file_location(
    "muc_summary", os.path.join(os.path.dirname(os.path.abspath(__file__)), "muc-summary.py"))
_muc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_muc)
label, cell = _muc.label, _muc.cell

# (run, JSON key, what it is, format); run None: every run
METRICS = [
    ("rate", "cpu_us_per_delivery", "server CPU us per delivered notification, fixed rate", "%.1f"),
    ("rate", "notifs_per_s", "notifications delivered/s, fixed rate", "%.0f"),
    ("rate", "lat_p50_ms", "latency p50 ms, fixed rate", "%.2f"),
    ("rate", "lat_p99_ms", "latency p99 ms, fixed rate", "%.2f"),
    ("rate", "server_cpu_pct", "server CPU %, fixed rate", "%.0f"),
    ("rate", "server_sys_share_pct", "share of the server's CPU in the kernel %, fixed rate", "%.0f"),
    ("full", "cpu_us_per_delivery", "server CPU us per delivered notification, full speed", "%.1f"),
    ("full", "notifs_per_s", "notifications delivered/s, full speed", "%.0f"),
    ("full", "lat_p50_ms", "latency p50 ms, full speed (queueing)", "%.1f"),
    ("full", "server_cpu_pct", "server CPU %, full speed", "%.0f"),
    ("full", "server_sys_share_pct", "share of the server's CPU in the kernel %, full speed", "%.0f"),
    ("full", "loadgen_cpu_pct", "load generator CPU %, full speed", "%.0f"),
    ("full", "cpu0_irq_pct", "interrupts on the server's CPU % (loopback delivery), full speed", "%.0f"),
    ("full", "others_cpu0_pct", "other processes on the server's CPU %, full speed", "%.0f"),
    ("rate", "others_cpu0_pct", "other processes on the server's CPU %, fixed rate", "%.0f"),
    (None, "caps_hit_pct", "caps cache hit rate % (1 - disco#info queries / caps presences)", "%.2f"),
    (None, "own_copies_per_publish", "copies of its own item the publisher got, per publish", "%.2f"),
    (None, "login_phase_s", "login phase s (all users)", "%.1f"),
    (None, "presence_phase_s", "until every user had its contacts' presence, s", "%.1f"),
]
SUMS = ["caps_presences", "caps_queries", "lost", "publish_errors", "msg_errors", "disconnects",
        "login_errors"]


def main(paths):
    runs, caps = [], []
    for p in paths:
        for line in open(p):
            if line.startswith("{"):
                j = json.loads(line)
                if j.get("scenario") == "pep-caps" and j.get("lookups"):   # the server's own counters
                    j["server_hit_pct"] = 100.0 * j.get("hits", 0) / j["lookups"]
                    caps.append((label(j), j))
                if j.get("scenario") != "pep":
                    continue
                if "cpu0_busy_pct" in j:   # the core's busy time neither the server's nor interrupts'
                    j["others_cpu0_pct"] = max(0.0, j["cpu0_busy_pct"] - j.get("cpu0_irq_pct", 0)
                                               - j["server_cpu_pct"])
                if j.get("publish_acked"):
                    j["own_copies_per_publish"] = j.get("own_copies", 0) / j["publish_acked"]
                runs.append((label(j), j))
    servers = []
    for lab, _ in runs:
        if lab.get("server") and lab["server"] not in servers:
            servers.append(lab["server"])
    if not runs:
        sys.exit("pep-summary.py: no pep runs")

    def values(server, case, key):
        return [j[key] for lab, j in runs
                if lab.get("server") == server and (case is None or lab.get("case") == case)
                and key in j and j[key] >= 0]

    j0 = runs[0][1]
    cases = sorted({lab.get("case", "") for lab, _ in runs})
    reps = max(len(values(s, c, "users")) for s in servers for c in cases)
    ratio = "parley" in servers and "ejabberd" in servers
    print("\n### %d users x %.0f contacts (%d rep%s)\n" % (j0["users"], j0["contacts_avg"], reps, "" if reps == 1 else "s"))
    print("| metric | " + " | ".join(servers) + (" | Parley/ejabberd |" if ratio else " |"))
    print("|---|" + "---|" * len(servers) + ("---|" if ratio else ""))
    for case, key, what, fmt in METRICS:
        cells = [cell(values(s, case, key), fmt) for s in servers]
        if all(c == "-" for c in cells):   # not measured in these runs
            continue
        row = "| %s | %s |" % (what, " | ".join(cells))
        if ratio:
            a, b = values("parley", case, key), values("ejabberd", case, key)
            if a and b and statistics.median(b) > 0:
                row += " %.2f |" % (statistics.median(a) / statistics.median(b))
            else:
                row += " - |"
        print(row)
    for key, fmt in (("server_hit_pct", "%.2f"), ("lookups", "%d"), ("hits", "%d"), ("queries", "%d"),
                     ("mismatches", "%d"), ("failures", "%d")):   # from parleyctl status, per run
        vals = {s: [j[key] for lab, j in caps if lab.get("server") == s and key in j] for s in servers}
        if any(vals.values()):
            print("| server's caps counters: %s | %s |%s" % (
                "hit rate % (hits / lookups)" if key == "server_hit_pct" else key + " (median of runs)",
                " | ".join(cell(vals[s], fmt) for s in servers), " - |" if ratio else ""))
    for key in SUMS:
        cells = ["%d" % sum(values(s, None, key)) for s in servers]
        print("| %s (sum of all runs) | %s |%s" % (key, " | ".join(cells), " |" if ratio else ""))
    rate = [j for _, j in runs if j.get("offered_rate", 0) > 0]
    full = [j for _, j in runs if j.get("offered_rate", 0) == 0]
    if rate:
        print("\nfixed rate: %.0f publishes/s offered in all; " % rate[0]["offered_rate"], end="")
    if full:
        print("full speed: closed loop, %d notifications in flight; " % full[0]["window"], end="")
    print("%.0f s measured after %s of warm-up; %d-byte payloads."
          % (j0["window_s"], "2 s", j0["payload_bytes"]))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
