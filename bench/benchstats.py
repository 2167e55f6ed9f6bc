"""What the summaries of bench/mam.sh, bench/mam-xmpp-query.sh and
bench/sm-resume.sh share: the run labels and the median [min-max] cells."""
import json
import statistics


def label(s):
    """'key=value key=value' (the load generator's -L) as a dict"""
    return dict(kv.split("=", 1) for kv in s.split() if "=" in kv)


def med(vals, nd=1):
    """'median [min–max]' of vals with nd decimals, and the median; None and
    negative values (not measured) are left out"""
    vals = [v for v in vals if v is not None and v >= 0]
    if not vals:
        return "–", None
    m = statistics.median(vals)
    return f"{m:.{nd}f} [{min(vals):.{nd}f}–{max(vals):.{nd}f}]", m


def read_runs(paths, scenario):
    """The JSON lines of the given scenario in the files, each with its
    label's keys added"""
    runs = []
    for p in paths:
        with open(p) as f:
            for line in f:
                if line.startswith("{"):
                    d = json.loads(line)
                    if d.get("scenario") == scenario:
                        d.update(label(d.get("label", "")))
                        runs.append(d)
    return runs
