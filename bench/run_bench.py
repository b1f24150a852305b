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

# workload -> (description, [(figure key, unit, higher is better)...]): every
# figure is compared; the first is the headline.
WORKLOADS = {
    "lock": ("lock acquire+release, uncontended, one session",
             [("cycles_per_s", "cycles/s", True), ("p50_ms", "ms", False), ("p99_ms", "ms", False)]),
    "lock8": ("lock, 8 sessions contending", [("cycles_per_s", "cycles/s", True)]),
    "failover": ("leader failover after the leader closes its session, 5 candidates, 20 times",
                 [("p50_ms", "ms", False), ("max_ms", "ms", False)]),
    "queue": ("FIFO queue, 5,000 100-byte items: put all, take all, both at once",
              [("put_per_s", "items/s", True), ("take_per_s", "items/s", True), ("e2e_per_s", "items/s", True)]),
    "config": ("config change seen by all of 16 subscriber sessions, 200 changes",
               [("p50_ms", "ms", False), ("p99_ms", "ms", False)]),
    "barrier": ("double barrier, 8 members, 100 rounds", [("rounds_per_s", "rounds/s", True)]),
    "registry": ("registration seen by all of 8 discovery caches, 50 registrations",
                 [("p50_ms", "ms", False), ("p99_ms", "ms", False)]),
    "memory": ("resident size: one session and one of each recipe (c: the C client alone)",
               [("rss_kib", "KiB", False)]),
}
LIBRARIES = ["zkrecipes", "c", "curator", "kazoo"]


def command(lib, workload, connect, root, build):
    if lib in ("zkrecipes", "c"):
        return [os.path.join(build, "bench", "zk_bench"), workload, lib, connect, root]
    if lib == "curator":
        # The jars the class was compiled against (bench/meson.build writes them).
        with open(os.path.join(build, "bench", "curator_classpath")) as f:
            cp = os.path.join(build, "bench") + ":" + f.read().strip()
        return ["java", "-cp", cp, "CuratorBench", workload, connect, root]
    return [sys.executable, os.path.join(HERE, "peers", "kazoo_bench.py"), workload, connect, root]


def median(values):
    if not values:
        return None
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def run_one(lib, workload, connect, build, n):
    root = "/zkrecipes-bench-%s-%s-%s" % (n, workload, lib)
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
        for key, m in r["metrics"].items():
            labels.append(w + "\n" + key.replace("_per_s", "").replace("_ms", "").replace("_kib", ""))
            for peer in LIBRARIES[1:]:
                series[peer].append(m["ratios"].get(peer) or 0)
    fig, ax = plt.subplots(figsize=(max(8, len(labels) * 0.9), 4.5))
    width = 0.8 / len(series)
    for i, (peer, vals) in enumerate(series.items()):
        ax.bar([x + i * width for x in range(len(labels))], vals, width, label="zkrecipes vs " + peer)
    ax.set_yscale("log")  # memory against a JVM is tens of times; the others are near 1
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([x + width for x in range(len(labels))])
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("ratio, log scale (above 1: zkrecipes better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--only", nargs="*", help="workloads to run (default: all)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each workload and library; the median is reported")
    args = ap.parse_args()
    connect = os.environ.get("ZK_CONNECT")
    if not connect:
        print("run_bench.py: ZK_CONNECT is not set (run it under zk-sandbox)", file=sys.stderr)
        return 2
    n = os.getpid()
    chosen = [w for w in WORKLOADS if not args.only or w in args.only]
    unknown = [w for w in (args.only or []) if w not in WORKLOADS]
    if unknown:
        print("run_bench.py: unknown workload %s (one of: %s)" % (", ".join(unknown), ", ".join(WORKLOADS)),
              file=sys.stderr)
        return 2
    # A fresh server runs interpreted at first: whatever went first would pay
    # for its warm-up. The raw client's lock and queue warm it, unmeasured.
    print("warming the server up (not measured)", file=sys.stderr, flush=True)
    for w in ("lock", "queue"):
        r = run_one("c", w, connect, args.build, "warm-%d" % n)
        if "error" in r:
            print("warm-up failed: " + r["error"], file=sys.stderr)
            return 1
    results = {}
    for w in chosen:
        desc, metrics = WORKLOADS[w]
        runs = {lib: [] for lib in LIBRARIES}
        for k in range(args.runs):
            # Rotated, so that no library always runs first (or right after another's load).
            order = LIBRARIES[k % len(LIBRARIES):] + LIBRARIES[:k % len(LIBRARIES)]
            for lib in order:
                r = run_one(lib, w, connect, args.build, "%d-%d" % (n, k))
                runs[lib].append(r)
                print("%-8s %-10s run %d: %s" % (w, lib, k + 1, r.get(metrics[0][0], r.get("error"))),
                      file=sys.stderr, flush=True)
        out = {"description": desc, "headline": metrics[0][0], "metrics": {}, "runs": runs}
        for key, unit, higher in metrics:
            figs = {lib: median([r[key] for r in runs[lib] if key in r]) for lib in LIBRARIES}
            ours, ratios = figs["zkrecipes"], {}
            for peer in LIBRARIES[1:]:
                theirs = figs[peer]
                ratios[peer] = round(ours / theirs if higher else theirs / ours, 3) if ours and theirs else None
            out["metrics"][key] = {"unit": unit, "higher_is_better": higher, "figures": figs, "ratios": ratios}
        results[w] = out

    # The table: medians over the runs; ratio above 1 = zkrecipes better.
    print()
    print("%-21s %-9s %10s %10s %10s %10s   %s" % ("workload", "unit", *LIBRARIES, "zkrecipes vs c, curator, kazoo"))
    for w, r in results.items():
        for key, m in r["metrics"].items():
            vals = []
            for lib in LIBRARIES:
                v, failed = m["figures"][lib], sum(1 for x in r["runs"][lib] if "error" in x)
                vals.append(("%.1f" % v if v is not None else "failed") + ("*" * failed))
            ratios = "  ".join("%5s" % ("%.2f" % x if x else "-") for x in m["ratios"].values())
            name = w + " " + key.replace("_per_s", "").replace("_ms", "").replace("_kib", "")
            print("%-21s %-9s %10s %10s %10s %10s   %s" % (name, m["unit"], *vals, ratios))

    if any("error" in x for r in results.values() for rs in r["runs"].values() for x in rs):
        print("* one run failed (each star); the figure is the median of the others")
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
    errors = [(w, lib, x["error"]) for w, r in results.items() for lib, rs in r["runs"].items() for x in rs
              if "error" in x]
    for w, lib, e in errors:
        print("%s: %s with %s: %s" % ("error" if lib in ("zkrecipes", "c") else "peer failed", w, lib, e),
              file=sys.stderr)
    # A peer's failure is a finding about the peer (Curator 5.4's double
    # barrier can hang: apache/curator issue 1290); ours fail the run.
    return 1 if any(lib in ("zkrecipes", "c") for _, lib, _ in errors) else 0


if __name__ == "__main__":
    sys.exit(main())
