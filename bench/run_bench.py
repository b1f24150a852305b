#!/usr/bin/env python3
"""Runs every benchmark workload with zkrecipes, the raw C client, Apache
Curator and kazoo, back to back against one server (ZK_CONNECT, set by
zk-sandbox), prints a table, writes bench/results/latest.json and a PNG chart
of the ratios zkrecipes/peer.

    run_bench.py --build DIR [--only WORKLOAD ...]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# workload -> (description, figure key, unit, higher is better)
WORKLOADS = {
    "lock": ("lock acquire+release, uncontended, one session", "cycles_per_s", "cycles/s", True),
    "lock8": ("lock, 8 sessions contending", "cycles_per_s", "cycles/s", True),
    "queue": ("FIFO queue, 5,000 100-byte items: put all, take all, both at once", "put_per_s", "items/s", True),
}
# Workloads with more than one figure: each is compared (the first is the headline).
EXTRA_FIGURES = {"queue": ["take_per_s", "e2e_per_s"]}
LIBRARIES = ["zkrecipes", "c", "curator", "kazoo"]
CURATOR_JARS = ["curator-recipes", "curator-framework", "curator-client", "zookeeper", "zookeeper-jute",
                "guava", "slf4j-api", "slf4j-nop"]


def command(lib, workload, connect, root, build):
    if lib in ("zkrecipes", "c"):
        return [os.path.join(build, "bench", "zk_bench"), workload, lib, connect, root]
    if lib == "curator":
        cp = ":".join([os.path.join(build, "bench")] + ["/usr/share/java/%s.jar" % j for j in CURATOR_JARS])
        return ["java", "-cp", cp, "CuratorBench", workload, connect, root]
    return [sys.executable, os.path.join(HERE, "peers", "kazoo_bench.py"), workload, connect, root]


def run_one(lib, workload, connect, build, n):
    root = "/zkrecipes-bench-%d-%s-%s" % (n, workload, lib)
    cmd = command(lib, workload, connect, root, build)
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        return {"error": "exit %d: %s" % (p.returncode, (p.stderr or p.stdout).strip()[-500:])}
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if not lines:
        return {"error": "no result line in: " + p.stdout[-300:]}
    out = json.loads(lines[-1])
    out["wall_s"] = round(time.monotonic() - t0, 2)
    return out


def chart(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no chart: python3-matplotlib is not installed", file=sys.stderr)
        return False
    labels, series = [], {peer: [] for peer in LIBRARIES[1:]}
    for w, r in results.items():
        labels.append(w)
        for peer in LIBRARIES[1:]:
            series[peer].append(r["ratios"].get(peer) or 0)
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(series)
    for i, (peer, vals) in enumerate(series.items()):
        ax.bar([x + i * width for x in range(len(labels))], vals, width, label="zkrecipes / " + peer)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([x + width for x in range(len(labels))])
    ax.set_xticklabels(labels)
    ax.set_ylabel("ratio (above 1: zkrecipes better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    connect = os.environ.get("ZK_CONNECT")
    if not connect:
        print("run_bench.py: ZK_CONNECT is not set (run it under zk-sandbox)", file=sys.stderr)
        return 2
    results = {}
    n = os.getpid()
    for w, (desc, key, unit, higher) in WORKLOADS.items():
        if args.only and w not in args.only:
            continue
        figs = {}
        for lib in LIBRARIES:
            r = run_one(lib, w, connect, args.build, n)
            figs[lib] = r
            shown = r.get(key, r.get("error"))
            print("%-8s %-10s %s" % (w, lib, shown), file=sys.stderr, flush=True)
        def ratios_of(k):
            ours, out = figs["zkrecipes"].get(k), {}
            for peer in LIBRARIES[1:]:
                theirs = figs[peer].get(k)
                out[peer] = round(ours / theirs if higher else theirs / ours, 3) if ours and theirs else None
            return out
        results[w] = {"description": desc, "figure": key, "unit": unit, "higher_is_better": higher,
                      "figures": figs, "ratios": ratios_of(key)}
        for k in EXTRA_FIGURES.get(w, []):
            results[w + ":" + k.replace("_per_s", "")] = {
                "description": desc, "figure": k, "unit": unit, "higher_is_better": higher,
                "figures": figs, "ratios": ratios_of(k)}

    # The table.
    print()
    print("%-12s %-10s %12s %12s %12s %12s   %s" % ("workload", "unit", *LIBRARIES, "zkrecipes/peer"))
    for w, r in results.items():
        vals = []
        for lib in LIBRARIES:
            v = r["figures"][lib].get(r["figure"])
            vals.append("%.1f" % v if v is not None else "error")
        ratios = "  ".join("%s %s" % (p, "%.2f" % x if x else "-") for p, x in r["ratios"].items())
        print("%-12s %-10s %12s %12s %12s %12s   %s" % (w, r["unit"], *vals, ratios))

    out_dir = os.path.join(HERE, "results")
    os.makedirs(out_dir, exist_ok=True)
    doc = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "workloads": results}
    with open(os.path.join(out_dir, "latest.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    png = os.path.join(out_dir, "latest.png")
    made = chart(results, png)
    print("\nwrote %s%s" % (os.path.join(out_dir, "latest.json"), " and " + png if made else ""))
    errors = [(w, lib) for w, r in results.items() for lib, f in r["figures"].items() if "error" in f]
    for w, lib in errors:
        print("error: %s with %s: %s" % (w, lib, results[w]["figures"][lib]["error"]), file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
