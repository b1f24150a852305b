#!/usr/bin/env python3
"""The kazoo 2.8 side of `./run bench` (bench/run_bench.py).

    kazoo_bench.py <lock|lock8|queue|failover|config|barrier|registry|memory> <connect> <root>

Prints one JSON object on one stdout line, like bench/zk_bench.cpp; failures
raise (non-zero exit, message on stderr). Every wait is bounded (30 s).

    lock      uncontended Lock acquire/release, 3000 cycles
    lock8     8 sessions contending for one Lock, 250 cycles each
    queue     Queue put, take and put+take concurrently, 5000 items
    failover  5 candidates in one Election (client.Election(path, id).run(func),
              func stamps the time and blocks); the leader's client is stopped and
              closed, the sample is the time until the next leader's func runs;
              20 repetitions, the closed candidate rejoins with a new client
    config    1 publisher (set), 16 subscriber sessions each with a DataWatch;
              200 changes, time until all 16 saw each
    barrier   8 sessions, DoubleBarrier(path, 8) enter + leave, 100 fresh barriers
    registry  kazoo has no service registry: an ephemeral node with a JSON payload
              per instance under <root>/services/bench, and per discovery session a
              ChildrenWatch that gets each new child's data; 8 caches, 50 instances
    memory    one session holding Lock, ReadLock, Semaphore lease, Election
              leadership, Queue item, DoubleBarrier object, DataWatch, registration
              + ChildrenWatch discovery, TreeCache; then VmRSS of the interpreter
"""
import json
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.recipe.cache import TreeCache, TreeEvent

UNCONTENDED_CYCLES = 3000
SESSIONS = 8
CYCLES_EACH = 250
WAIT_BOUND = 30.0  # seconds, every wait
FAILOVER_CANDIDATES, FAILOVER_REPETITIONS = 5, 20
CONFIG_SUBSCRIBERS, CONFIG_CHANGES = 16, 200
BARRIER_MEMBERS, BARRIER_ROUNDS = 8, 100
REGISTRY_CACHES, REGISTRY_REGISTRATIONS = 8, 50

now = time.perf_counter  # monotonic


def percentile(v, p):
    """Sorted, index round(p*(n-1)) rounding halves up, like bench_common.hpp."""
    if not v:
        return 0.0
    s = sorted(v)
    return s[min(int(p * (len(s) - 1) + 0.5), len(s) - 1)]


def connect(hosts):
    c = KazooClient(hosts=hosts, timeout=10.0)
    c.start(timeout=15)
    return c


def emit(obj):
    print(json.dumps(obj), flush=True)


def report(workload, cycles, seconds, lat):
    emit({"workload": workload, "library": "kazoo", "cycles": cycles,
          "cycles_per_s": round(cycles / seconds, 1),
          "p50_ms": round(percentile(lat, 0.5), 3), "p99_ms": round(percentile(lat, 0.99), 3)})


def wait_until(cond, pred, what):
    """With cond held: wait (bounded) until pred() is true."""
    if not cond.wait_for(pred, timeout=WAIT_BOUND):
        raise RuntimeError(what + ": not within %.0f s" % WAIT_BOUND)


class Arrivals:
    """stamp(step, observer) inside callbacks; wait_all gives the latest stamp - t0."""

    def __init__(self, steps, observers):
        self.cond = threading.Condition()
        self.seen = [[None] * observers for _ in range(steps)]
        self.count = [0] * steps

    def stamp(self, step, observer):
        t = now()
        with self.cond:
            if not 0 <= step < len(self.seen) or self.seen[step][observer] is not None:
                return
            self.seen[step][observer] = t
            self.count[step] += 1
            self.cond.notify_all()

    def wait_all(self, step, observers, t0, what):
        with self.cond:
            wait_until(self.cond, lambda: self.count[step] >= observers, "%s: step %d seen by all" % (what, step))
            return (max(self.seen[step]) - t0) * 1000


# ---- lock, lock8, queue -------------------------------------------------------

def bench_lock(hosts, root):
    c = connect(hosts)
    lock = c.Lock(root + "/lock")
    lat = []
    t0 = now()
    for _ in range(UNCONTENDED_CYCLES):
        t = now()
        if not lock.acquire(timeout=10):
            raise RuntimeError("lock timeout")
        lat.append((now() - t) * 1000)
        lock.release()
    report("lock", UNCONTENDED_CYCLES, now() - t0, lat)
    c.stop()


def bench_lock8(hosts, root):
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
                t = now()
                if not lock.acquire(timeout=60):
                    raise RuntimeError("lock timeout")
                mine.append((now() - t) * 1000)
                lock.release()
            with lat_lock:
                lat.extend(mine)
        except Exception as e:  # reported below; the run fails
            errors.append(e)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    t0 = now()
    go.set()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    report("lock8", SESSIONS * CYCLES_EACH, now() - t0, lat)
    for c in clients:
        c.stop()


def bench_queue(hosts, root):
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

    t0 = now()
    put_all()
    put = items / (now() - t0)
    t0 = now()
    take_all()
    take = items / (now() - t0)
    t0 = now()
    th = threading.Thread(target=put_all)
    th.start()
    take_all()
    th.join()
    e2e = items / (now() - t0)
    emit({"workload": "queue", "library": "kazoo", "items": items, "put_per_s": round(put, 1),
          "take_per_s": round(take, 1), "e2e_per_s": round(e2e, 1)})
    p.stop()
    c.stop()


# ---- failover -----------------------------------------------------------------

class Candidate:
    """One client, one Election; run() in a thread, the leader function stamps and blocks."""

    def __init__(self, hosts, path, name, on_lead):
        self.name = name
        self.on_lead = on_lead
        self.client = connect(hosts)
        self.election = self.client.Election(path, name)
        self.release = threading.Event()
        self.closed = False
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.election.run(self._lead)
            if not self.closed:
                self.error = RuntimeError(self.name + ": election.run returned")
        except Exception as e:  # after stop_session() the lock release fails: expected
            if not self.closed:
                self.error = e

    def _lead(self):
        self.on_lead(self)
        self.release.wait()  # until told to return (after its client was stopped)

    def stop_session(self):
        """client.stop(); client.close(): the session goes, the server deletes its node."""
        self.closed = True
        self.client.stop()
        self.client.close()

    def finish(self):
        """Lets the leader function return (its release then fails: the client is closed)."""
        self.release.set()
        self.thread.join(WAIT_BOUND)


def bench_failover(hosts, root):
    path = root + "/election"
    cond = threading.Condition()
    state = {"leader": None, "when": None}

    def on_lead(cand):
        t = now()
        with cond:
            state["leader"], state["when"] = cand, t
            cond.notify_all()

    admin = connect(hosts)  # only looks at the election's children between repetitions
    admin.ensure_path(path)

    def wait_joined():
        deadline = now() + WAIT_BOUND
        while len(admin.get_children(path)) < FAILOVER_CANDIDATES:
            if now() > deadline:
                raise RuntimeError("failover: %d candidates not joined" % FAILOVER_CANDIDATES)
            time.sleep(0.002)

    def check(cands):
        for c in cands:
            if c.error is not None:
                raise RuntimeError("failover: candidate %s: %r" % (c.name, c.error))

    cands = [Candidate(hosts, path, "c%d" % i, on_lead) for i in range(FAILOVER_CANDIDATES)]
    with cond:
        wait_until(cond, lambda: state["leader"] is not None, "failover: first leader")
    wait_joined()
    samples = []
    for _ in range(FAILOVER_REPETITIONS):
        check(cands)
        with cond:
            old = state["leader"]
        t0 = now()
        old.stop_session()
        with cond:
            wait_until(cond, lambda: state["leader"] is not old, "failover: new leader")
            samples.append((state["when"] - t0) * 1000)
        old.finish()
        i = cands.index(old)
        cands[i] = Candidate(hosts, path, old.name, on_lead)  # rejoins at the back
        wait_joined()
    check(cands)
    for c in cands:
        c.stop_session()
        c.finish()
    admin.stop()
    admin.close()
    emit({"workload": "failover", "library": "kazoo", "candidates": FAILOVER_CANDIDATES,
          "repetitions": FAILOVER_REPETITIONS, "p50_ms": round(percentile(samples, 0.5), 3),
          "max_ms": round(percentile(samples, 1.0), 3), "samples_ms": [round(s, 3) for s in samples]})


# ---- config -------------------------------------------------------------------

def bench_config(hosts, root):
    path = root + "/config"
    pub = connect(hosts)
    pub.create(path, b"v0", makepath=True)
    seen = Arrivals(CONFIG_CHANGES + 1, CONFIG_SUBSCRIBERS)
    subs = []
    for i in range(CONFIG_SUBSCRIBERS):
        c = connect(hosts)

        def on_change(data, stat, i=i):
            if data is not None:
                seen.stamp(int(data[1:]), i)

        c.DataWatch(path, on_change)
        subs.append(c)
    seen.wait_all(0, CONFIG_SUBSCRIBERS, now(), "config v0")
    samples = []
    for i in range(1, CONFIG_CHANGES + 1):
        t0 = now()
        pub.set(path, b"v%d" % i)
        samples.append(seen.wait_all(i, CONFIG_SUBSCRIBERS, t0, "config"))
    for c in subs + [pub]:
        c.stop()
        c.close()
    emit({"workload": "config", "library": "kazoo", "subscribers": CONFIG_SUBSCRIBERS,
          "changes": CONFIG_CHANGES, "p50_ms": round(percentile(samples, 0.5), 3),
          "p99_ms": round(percentile(samples, 0.99), 3)})


# ---- barrier ------------------------------------------------------------------

def bench_barrier(hosts, root):
    clients = [connect(hosts) for _ in range(BARRIER_MEMBERS)]
    cond = threading.Condition()
    progress = {"steps": 0, "done": 0}
    errors = []
    go = threading.Event()

    def step(finished=False):
        with cond:
            progress["steps"] += 1
            progress["done"] += finished
            cond.notify_all()

    def member(i, c):
        try:
            go.wait()
            for r in range(BARRIER_ROUNDS):
                b = c.DoubleBarrier("%s/barrier/r%d" % (root, r), BARRIER_MEMBERS, identifier="m%d" % i)
                b.enter()
                if not b.participating:  # enter() swallows errors, leaving this False
                    raise RuntimeError("barrier enter failed in round %d" % r)
                step()
                b.leave()
                step(r == BARRIER_ROUNDS - 1)
        except Exception as e:
            errors.append(e)
            step()

    threads = [threading.Thread(target=member, args=(i, c), daemon=True) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    t0 = now()
    go.set()
    # enter()/leave() take no timeout: the bound is on progress, no step for 30 s fails
    with cond:
        while progress["done"] < BARRIER_MEMBERS and not errors:
            before = progress["steps"]
            wait_until(cond, lambda: progress["steps"] != before, "barrier: no member progressed")
    if errors:
        raise errors[0]
    seconds = now() - t0
    for t in threads:
        t.join(WAIT_BOUND)
    for c in clients:
        c.stop()
        c.close()
    emit({"workload": "barrier", "library": "kazoo", "members": BARRIER_MEMBERS, "rounds": BARRIER_ROUNDS,
          "rounds_per_s": round(BARRIER_ROUNDS / seconds, 1)})


# ---- registry -----------------------------------------------------------------

def instance_payload(i):
    return json.dumps({"name": "bench", "id": "i%d" % i, "address": "127.0.0.1",
                       "port": 10000 + i}).encode()


class DiscoveryCache:
    """A kazoo user's service cache: ChildrenWatch, get of each new child's data."""

    def __init__(self, client, base, on_up=None):
        self.client = client
        self.base = base
        self.on_up = on_up
        self.instances = {}  # node name -> payload; touched only in the watch callback
        client.ensure_path(base)
        client.ChildrenWatch(base, self._children)

    def _children(self, children):
        for name in children:
            if name in self.instances:
                continue
            try:
                data, _ = self.client.get(self.base + "/" + name)
            except NoNodeError:
                continue
            inst = json.loads(data)
            self.instances[name] = inst
            if self.on_up:
                self.on_up(inst)
        for name in set(self.instances) - set(children):
            del self.instances[name]


def bench_registry(hosts, root):
    base = root + "/services/bench"
    seen = Arrivals(REGISTRY_REGISTRATIONS, REGISTRY_CACHES)
    caches = []
    for k in range(REGISTRY_CACHES):
        c = connect(hosts)
        caches.append(DiscoveryCache(c, base, lambda inst, k=k: seen.stamp(int(inst["id"][1:]), k)))
    reg = connect(hosts)
    samples = []
    for i in range(REGISTRY_REGISTRATIONS):
        t0 = now()
        reg.create("%s/i%d" % (base, i), instance_payload(i), ephemeral=True)
        samples.append(seen.wait_all(i, REGISTRY_CACHES, t0, "registry"))
    for c in [d.client for d in caches] + [reg]:
        c.stop()
        c.close()
    emit({"workload": "registry", "library": "kazoo", "caches": REGISTRY_CACHES,
          "registrations": REGISTRY_REGISTRATIONS, "p50_ms": round(percentile(samples, 0.5), 3),
          "p99_ms": round(percentile(samples, 0.99), 3)})


# ---- memory -------------------------------------------------------------------

def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def bench_memory(hosts, root):
    c = connect(hosts)
    c.ensure_path(root)
    lock = c.Lock(root + "/lock")
    if not lock.acquire(timeout=WAIT_BOUND):
        raise RuntimeError("memory: lock")
    rlock = c.ReadLock(root + "/rwlock")
    if not rlock.acquire(timeout=WAIT_BOUND):
        raise RuntimeError("memory: read lock")
    sem = c.Semaphore(root + "/semaphore", max_leases=3)
    if not sem.acquire(timeout=WAIT_BOUND):
        raise RuntimeError("memory: semaphore")
    leading, resign = threading.Event(), threading.Event()
    election = c.Election(root + "/latch", "m")

    def lead():
        leading.set()
        resign.wait()

    threading.Thread(target=election.run, args=(lead,), daemon=True).start()
    if not leading.wait(WAIT_BOUND):
        raise RuntimeError("memory: leadership")
    queue = c.Queue(root + "/queue")
    queue.put(b"x" * 100)
    barrier = c.DoubleBarrier(root + "/barrier", 2)
    config_seen = threading.Event()
    c.create(root + "/config", b"v0")
    c.DataWatch(root + "/config", lambda data, stat: config_seen.set())
    if not config_seen.wait(WAIT_BOUND):
        raise RuntimeError("memory: config watch")
    base = root + "/services/bench"
    c.create(base + "/i0", instance_payload(0), ephemeral=True, makepath=True)
    discovered = threading.Event()
    discovery = DiscoveryCache(c, base, lambda inst: discovered.set())
    if not discovered.wait(WAIT_BOUND):
        raise RuntimeError("memory: discovery")
    tree_ready = threading.Event()
    tree = TreeCache(c, root)
    tree.listen(lambda e: e.event_type == TreeEvent.INITIALIZED and tree_ready.set())
    tree.start()
    if not tree_ready.wait(WAIT_BOUND):
        raise RuntimeError("memory: tree cache")
    kib = rss_kib()
    emit({"workload": "memory", "library": "kazoo", "rss_kib": kib,
          "holds": ["lock", "rwlock", "semaphore", "latch", "queue", "barrier", "config", "registration",
                    "discovery", "tree_cache"]})
    del barrier, discovery
    tree.close()
    resign.set()
    sem.release()
    rlock.release()
    lock.release()
    c.stop()
    c.close()


WORKLOADS = {"lock": bench_lock, "lock8": bench_lock8, "queue": bench_queue, "failover": bench_failover,
             "config": bench_config, "barrier": bench_barrier, "registry": bench_registry,
             "memory": bench_memory}


def main():
    if len(sys.argv) != 4:
        print("usage: kazoo_bench.py <%s> <connect> <root>" % "|".join(WORKLOADS), file=sys.stderr)
        return 2
    workload, hosts, root = sys.argv[1:]
    if workload not in WORKLOADS:
        print("unknown workload " + workload, file=sys.stderr)
        return 2
    WORKLOADS[workload](hosts, root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
