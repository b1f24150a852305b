#!/usr/bin/env python3
"""The kazoo 2.8 side of `./run bench` (bench/run_bench.py).

    kazoo_bench.py <lock|lock8|queue> <connect> <root>
Prints one JSON object, like bench/zk_bench.cpp.
"""
import json
import sys
import threading
import time

from kazoo.client import KazooClient

UNCONTENDED_CYCLES = 3000
SESSIONS = 8
CYCLES_EACH = 250


def percentile(v, p):
    if not v:
        return 0.0
    s = sorted(v)
    return s[min(int(round(p * (len(s) - 1))), len(s) - 1)]


def connect(hosts):
    c = KazooClient(hosts=hosts, timeout=10.0)
    c.start(timeout=15)
    return c


def report(workload, cycles, seconds, lat):
    print(json.dumps({"workload": workload, "library": "kazoo", "cycles": cycles,
                      "cycles_per_s": round(cycles / seconds, 1),
                      "p50_ms": round(percentile(lat, 0.5), 3), "p99_ms": round(percentile(lat, 0.99), 3)}))


def main():
    if len(sys.argv) != 4:
        print("usage: kazoo_bench.py <lock|lock8> <connect> <root>", file=sys.stderr)
        return 2
    workload, hosts, root = sys.argv[1:]
    if workload == "lock":
        c = connect(hosts)
        lock = c.Lock(root + "/lock")
        lat = []
        t0 = time.perf_counter()
        for _ in range(UNCONTENDED_CYCLES):
            t = time.perf_counter()
            if not lock.acquire(timeout=10):
                raise RuntimeError("lock timeout")
            lat.append((time.perf_counter() - t) * 1000)
            lock.release()
        report(workload, UNCONTENDED_CYCLES, time.perf_counter() - t0, lat)
        c.stop()
    elif workload == "lock8":
        clients = [connect(hosts) for _ in range(SESSIONS)]
        lat = []
        lat_lock = threading.Lock()
        go = threading.Event()
        errors = []

        def run(c):
            try:
                lock = c.Lock(root + "/lock8")
                go.wait()
                mine = []
                for _ in range(CYCLES_EACH):
                    t = time.perf_counter()
                    if not lock.acquire(timeout=60):
                        raise RuntimeError("lock timeout")
                    mine.append((time.perf_counter() - t) * 1000)
                    lock.release()
                with lat_lock:
                    lat.extend(mine)
            except Exception as e:  # reported below; the run fails
                errors.append(e)

        threads = [threading.Thread(target=run, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        t0 = time.perf_counter()
        go.set()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        report(workload, SESSIONS * CYCLES_EACH, time.perf_counter() - t0, lat)
        for c in clients:
            c.stop()
    elif workload == "queue":
        items, payload = 5000, b"x" * 100
        p, c = connect(hosts), connect(hosts)
        producer, consumer = p.Queue(root + "/q"), c.Queue(root + "/q")

        def put_all():
            for _ in range(items):
                producer.put(payload)

        def take_all():
            got = 0
            while got < items:
                if consumer.get() is not None:  # kazoo's Queue.get does not block
                    got += 1
                else:
                    time.sleep(0.001)

        t0 = time.perf_counter()
        put_all()
        put = items / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        take_all()
        take = items / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        th = threading.Thread(target=put_all)
        th.start()
        take_all()
        th.join()
        e2e = items / (time.perf_counter() - t0)
        print(json.dumps({"workload": "queue", "library": "kazoo", "items": items, "put_per_s": round(put, 1),
                          "take_per_s": round(take, 1), "e2e_per_s": round(e2e, 1)}))
        p.stop()
        c.stop()
    else:
        print("unknown workload " + workload, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
