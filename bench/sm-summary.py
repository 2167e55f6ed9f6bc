#!/usr/bin/env python3
"""The tables of bench/sm-resume.sh from its JSON lines (one or more files):
every run, then per server and variant the median [min-max] of the server
CPU per full login and per resume, and the ratio resume / login of the
medians, and the ratio of each variant's resume to the full login (the
"full" variant's login of the same server: the target, at most 0.25).
usage: sm-summary.py RAW.jsonl ...
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchstats import med, read_runs  # noqa: E402

TARGET = 0.25


def main():
    runs = read_runs(sys.argv[1:], "sm-resume")
    keys = []
    for r in runs:
        k = (r.get("server", "?"), r.get("variant", "?"))
        if k not in keys:
            keys.append(k)
    print("### Every run\n")
    print("| rep | server | variant | logins | login ms CPU | logins/s | resumes | resume ms CPU | resumes/s "
          "| resume / login | auth only ms CPU | resume minus auth ms | TLS resumed (login, resume, auth) | stanzas resent "
          "| failures (login, resume, auth) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(runs, key=lambda r: (int(r.get("rep", 0)), keys.index((r.get("server", "?"), r.get("variant", "?"))))):
        print(f"| {r.get('rep')} | {r.get('server')} | {r.get('variant')} | {r['logins']} | {r['login_ms']:.2f} "
              f"| {r['logins_per_s']:.0f} | {r['resumes']} | {r['resume_ms']:.2f} | {r['resumes_per_s']:.0f} "
              f"| {r['resume_over_login']:.2f} | {r.get('auth_ms', -1):.2f} | {r.get('resume_own_ms', -1):.2f} "
              f"| {r['tls_reused_login']}, {r['tls_reused_resume']}, {r.get('tls_reused_auth', '–')} "
              f"| {r['resent_stanzas']} | {r['login_failures']}, {r['resume_failures']}, {r.get('auth_failures', '–')} |")
    print("\n### Medians [min–max]\n")
    print("| server | variant | runs | login ms CPU | resume ms CPU | auth only ms CPU | resume / login (of the medians) "
          "| resume / full login | target ≤ 0.25 |")
    print("|---|---|---|---|---|---|---|---|---|")
    meds = {}
    for k in keys:
        rs = [r for r in runs if (r.get("server", "?"), r.get("variant", "?")) == k]
        meds[k] = (med([r["login_ms"] for r in rs], 2)[1], med([r["resume_ms"] for r in rs], 2)[1])
    for k in keys:
        rs = [r for r in runs if (r.get("server", "?"), r.get("variant", "?")) == k]
        ls, lm = med([r["login_ms"] for r in rs], 2)
        rsum, rm = med([r["resume_ms"] for r in rs], 2)
        asum, _ = med([r.get("auth_ms") for r in rs], 2)
        ratio = rm / lm if lm and rm is not None else None
        full = meds.get((k[0], "full"), (None, None))[0]
        fratio = rm / full if full and rm is not None else None
        verdict = "" if fratio is None else ("met" if fratio <= TARGET else "missed")
        print(f"| {k[0]} | {k[1]} | {len(rs)} | {ls} | {rsum} | {asum} | {'–' if ratio is None else f'{ratio:.2f}'} "
              f"| {'–' if fratio is None else f'{fratio:.2f}'} | {verdict if k[0].startswith('parley') else ''} |")
    variants = sorted({k[1] for k in keys})
    if any(("parley", v) in meds and ("ejabberd", v) in meds for v in variants):
        print("\n### Parley / ejabberd (ratios of the medians)\n")
        print("| variant | login CPU | resume CPU |")
        print("|---|---|---|")
        for v in variants:
            if ("parley", v) in meds and ("ejabberd", v) in meds:
                (pl, pr), (el, er) = meds[("parley", v)], meds[("ejabberd", v)]
                f = (lambda a, b: f"{a / b:.2f}" if a is not None and b else "–")
                print(f"| {v} | {f(pl, el)} | {f(pr, er)} |")


if __name__ == "__main__":
    main()
