#!/usr/bin/env python3
"""MUC runs (JSON lines of the load generator's muc scenario, as bench/muc.sh
writes them) -> markdown tables: the median [min-max] of each server over
its repetitions, and the ratio of the medians Parley/ejabberd.

usage: muc-summary.py RAW.jsonl [RAW.jsonl ...]
"""
import json
import statistics
import sys

# (case suffix, JSON key, what it is, format)
METRICS = [
    ("full", "msgs_per_s", "delivered groupchat msgs/s, full speed", "%.0f"),
    ("full", "cpu_us_per_delivery", "server CPU us per delivered msg, full speed", "%.1f"),
    ("full", "lat_p50_ms", "latency p50 ms, full speed (queueing)", "%.1f"),
    ("full", "kib_per_occupant", "server RSS KiB per occupant", "%.1f"),
    ("full", "server_cpu_pct", "server CPU %, full speed", "%.0f"),
    ("full", "loadgen_cpu_pct", "load generator CPU %, full speed", "%.0f"),
    ("full", "cpu0_irq_pct", "interrupts on the server's CPU % (loopback delivery), full speed", "%.0f"),
    ("full", "others_cpu0_pct", "other processes on the server's CPU %, full speed", "%.0f"),
    ("rate", "lat_p50_ms", "latency p50 ms, fixed rate", "%.2f"),
    ("rate", "lat_p99_ms", "latency p99 ms, fixed rate", "%.2f"),
    ("rate", "cpu_us_per_delivery", "server CPU us per delivered msg, fixed rate", "%.1f"),
]
PROBLEMS = ["join_errors", "lost", "msg_errors", "disconnects", "kicked", "login_errors"]
HOLD = [
    ("joined", "%d"), ("join_phase_s", "%.1f"), ("posted_per_s", "%.1f"), ("msgs_per_s", "%.0f"),
    ("lat_p50_ms", "%.2f"), ("lat_p99_ms", "%.2f"), ("lat_max_ms", "%.1f"),
    ("server_cpu_pct", "%.0f"), ("cpu0_irq_pct", "%.0f"), ("others_cpu0_pct", "%.0f"), ("cpu_us_per_delivery", "%.1f"), ("kib_per_occupant", "%.1f"),
    ("disconnects", "%d"), ("lost", "%d"), ("msg_errors", "%d"), ("kicked", "%d"), ("join_errors", "%d"),
]


def label(j):
    return dict(kv.split("=", 1) for kv in j.get("label", "").split() if "=" in kv)


def cell(vals, fmt):
    if not vals:
        return "-"
    m = statistics.median(vals)
    if len(vals) == 1:
        return fmt % m
    return "%s [%s–%s]" % (fmt % m, fmt % min(vals), fmt % max(vals))


def main(paths):
    runs = []
    for p in paths:
        for line in open(p):
            if line.startswith("{"):
                j = json.loads(line)
                if j.get("scenario") == "muc":
                    if "cpu0_busy_pct" in j:   # the core's busy time neither the server's nor interrupts'
                        j["others_cpu0_pct"] = max(0.0, j["cpu0_busy_pct"] - j.get("cpu0_irq_pct", 0)
                                                   - j["server_cpu_pct"])
                    runs.append((label(j), j))
    servers = []
    for lab, _ in runs:
        if lab.get("server") and lab["server"] not in servers:
            servers.append(lab["server"])
    cases = []
    for lab, _ in runs:
        c = lab.get("case", "")
        base = c.rsplit("-", 1)[0]
        if not c.startswith("hold") and base not in cases:
            cases.append(base)

    def values(server, case, key):
        return [j[key] for lab, j in runs
                if lab.get("server") == server and lab.get("case") == case and key in j and j[key] >= 0]

    ratio = "parley" in servers and "ejabberd" in servers
    for case in cases:
        reps = max(len(values(s, case + "-full", "msgs_per_s")) for s in servers)
        r, m = case.split("x")
        print("\n### %s room(s) x %s occupants (%d rep%s)\n" % (r, m, reps, "" if reps == 1 else "s"))
        print("| metric | " + " | ".join(servers) + (" | Parley/ejabberd |" if ratio else " |"))
        print("|---|" + "---|" * len(servers) + ("---|" if ratio else ""))
        for suffix, key, what, fmt in METRICS:
            cells = [cell(values(s, case + "-" + suffix, key), fmt) for s in servers]
            if all(c == "-" for c in cells):   # not measured by this load generator
                continue
            row = "| %s | %s |" % (what, " | ".join(cells))
            if ratio:
                a, b = values("parley", case + "-" + suffix, key), values("ejabberd", case + "-" + suffix, key)
                if a and b and statistics.median(b) > 0:
                    row += " %.2f |" % (statistics.median(a) / statistics.median(b))
                else:
                    row += " - |"
            print(row)
        for key in PROBLEMS:
            cells = []
            for s in servers:
                tot = sum(values(s, case + "-full", key)) + sum(values(s, case + "-rate", key))
                cells.append("%d" % tot)
            print("| %s (sum of all runs) | %s |%s" % (key, " | ".join(cells), " |" if ratio else ""))
    holds = [(lab, j) for lab, j in runs if lab.get("case", "").startswith("hold")]
    if holds:
        hs = [lab.get("server", "?") for lab, _ in holds]
        j0 = holds[0][1]
        print("\n### hold: %d room x %d occupants, %.0f msgs/s offered for %.0f s\n"
              % (j0["rooms"], j0["occupants_per_room"], j0["offered_rate"], j0["window_s"]))
        print("| | " + " | ".join(hs) + " |")
        print("|---|" + "---|" * len(hs))
        for key, fmt in HOLD:
            if all(key not in j for _, j in holds):
                continue
            print("| %s | %s |" % (key, " | ".join(fmt % j.get(key, -1) for _, j in holds)))
        print("| last_error | %s |" % " | ".join(j.get("last_error", "") or "-" for _, j in holds))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
