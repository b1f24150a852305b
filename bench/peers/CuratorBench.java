// The Apache Curator 5.4 side of `./run bench` (bench/run_bench.py).
//
//   java CuratorBench <workload> <connect> <root>
//   workload: lock | lock8 | queue | failover | config | barrier | registry | memory
// The queue workload runs SimpleDistributedQueue and DistributedQueue and
// reports each figure from the better of the two (the JSON keeps both).
// failover, config, barrier, registry and memory follow the workload
// definition shared by every library, each member/candidate/subscriber/cache
// on its own session: LeaderLatch (the leader's CuratorFramework is closed);
// CuratorCache and NodeCache (config reports the better p50, the JSON keeps
// both); DistributedDoubleBarrier; curator-x-discovery (ServiceDiscovery +
// ServiceCache, base path <root>/services); VmRSS of the JVM while one
// session holds one of each recipe and a CuratorCache of the whole tree.
// Prints one JSON object, like bench/zk_bench.cpp.
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.cache.CuratorCacheListenerBuilder;
import org.apache.curator.framework.recipes.cache.NodeCache;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueConsumer;
import org.apache.curator.framework.recipes.queue.QueueSerializer;
import org.apache.curator.framework.recipes.queue.SimpleDistributedQueue;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.x.discovery.ServiceCache;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.details.ServiceCacheListener;

public final class CuratorBench {
  static final int UNCONTENDED_CYCLES = 3000;
  static final int SESSIONS = 8;
  static final int CYCLES_EACH = 250;
  static final int CANDIDATES = 5;
  static final int FAILOVERS = 20;
  static final int SUBSCRIBERS = 16;
  static final int CHANGES = 200;
  static final int MEMBERS = 8;
  static final int ROUNDS = 100;
  static final int CACHES = 8;
  static final int REGISTRATIONS = 50;
  static final long WAIT_S = 30;  // bound of every wait

  static CuratorFramework connect(String connect) throws InterruptedException {
    CuratorFramework c = CuratorFrameworkFactory.builder().connectString(connect).sessionTimeoutMs(10_000)
        .retryPolicy(new ExponentialBackoffRetry(50, 6)).build();
    c.start();
    if (!c.blockUntilConnected(15, TimeUnit.SECONDS)) throw new IllegalStateException("no connection");
    return c;
  }

  static double percentile(List<Double> v, double p) {
    if (v.isEmpty()) return 0;
    List<Double> s = new ArrayList<>(v);
    Collections.sort(s);
    int i = (int) Math.round(p * (s.size() - 1));
    return s.get(Math.min(i, s.size() - 1));
  }

  static void print(String workload, int cycles, double seconds, List<Double> lat) {
    System.out.printf("{\"workload\": \"%s\", \"library\": \"curator\", \"cycles\": %d, \"cycles_per_s\": %.1f, "
        + "\"p50_ms\": %.3f, \"p99_ms\": %.3f}%n", workload, cycles, cycles / seconds, percentile(lat, 0.5),
        percentile(lat, 0.99));
  }

  static final QueueSerializer<byte[]> BYTES = new QueueSerializer<byte[]>() {
    public byte[] serialize(byte[] item) { return item; }
    public byte[] deserialize(byte[] bytes) { return bytes; }
  };

  static DistributedQueue<byte[]> consumerQueue(CuratorFramework c, String path, CountDownLatch left) {
    QueueConsumer<byte[]> consumer = new QueueConsumer<byte[]>() {
      public void consumeMessage(byte[] message) { left.countDown(); }
      public void stateChanged(CuratorFramework client, ConnectionState state) {}
    };
    return QueueBuilder.builder(c, consumer, BYTES, path).buildQueue();
  }

  /** DistributedQueue: put (background creates, flushed), take, both at once; items/s each. */
  static double[] distributedQueue(CuratorFramework p, CuratorFramework c, String path, int items, byte[] payload)
      throws Exception {
    double[] out = new double[3];
    try (DistributedQueue<byte[]> producer = QueueBuilder.builder(p, null, BYTES, path).buildQueue()) {
      producer.start();
      long t0 = System.nanoTime();
      for (int i = 0; i < items; ++i) producer.put(payload);
      if (!producer.flushPuts(120, TimeUnit.SECONDS)) throw new IllegalStateException("puts not flushed");
      out[0] = items / ((System.nanoTime() - t0) / 1e9);
      CountDownLatch left = new CountDownLatch(items);
      try (DistributedQueue<byte[]> consumer = consumerQueue(c, path, left)) {
        t0 = System.nanoTime();
        consumer.start();
        if (!left.await(300, TimeUnit.SECONDS)) throw new IllegalStateException("items not taken");
        out[1] = items / ((System.nanoTime() - t0) / 1e9);
      }
      CountDownLatch left2 = new CountDownLatch(items);
      try (DistributedQueue<byte[]> consumer = consumerQueue(c, path, left2)) {
        consumer.start();
        t0 = System.nanoTime();
        for (int i = 0; i < items; ++i) producer.put(payload);
        if (!left2.await(300, TimeUnit.SECONDS)) throw new IllegalStateException("items not taken");
        out[2] = items / ((System.nanoTime() - t0) / 1e9);
      }
    }
    return out;
  }

  static double ms(long nanos) { return nanos / 1e6; }

  static byte[] bytes(String s) { return s.getBytes(StandardCharsets.UTF_8); }

  static String list(List<Double> v) {
    StringBuilder b = new StringBuilder("[");
    for (int i = 0; i < v.size(); ++i) {
      b.append(i == 0 ? "" : ", ").append(String.format(Locale.ROOT, "%.3f", v.get(i)));
    }
    return b.append(']').toString();
  }

  static void await(CountDownLatch l, String what) throws InterruptedException {
    if (!l.await(WAIT_S, TimeUnit.SECONDS)) throw new IllegalStateException(what + ": not done in " + WAIT_S + " s");
  }

  interface Check { boolean done() throws Exception; }

  /** Polls until check holds; only used outside the timed sections. */
  static void waitUntil(String what, Check check) throws Exception {
    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
    while (!check.done()) {
      if (System.nanoTime() > end) throw new IllegalStateException(what + ": not done in " + WAIT_S + " s");
      Thread.sleep(1);
    }
  }

  /** When each of n observers first saw one value; stamped inside their callbacks. */
  static final class Arrivals {
    final String value;
    final long[] at;
    final AtomicIntegerArray seen;
    final CountDownLatch all;

    Arrivals(String value, int n) {
      this.value = value;
      at = new long[n];
      seen = new AtomicIntegerArray(n);
      all = new CountDownLatch(n);
    }

    void stamp(int who, long now) {
      if (seen.compareAndSet(who, 0, 1)) {
        at[who] = now;
        all.countDown();
      }
    }

    /** Waits for all n observers; the latest arrival after t0, in ms. */
    double latest(long t0, String what) throws InterruptedException {
      await(all, what + " " + value);
      long last = t0;
      for (long t : at) last = Math.max(last, t);
      return ms(last - t0);
    }
  }

  /** One election candidate with its own session; isLeader stamps the current failover. */
  static final class Candidate {
    final CuratorFramework client;
    final LeaderLatch latch;

    Candidate(String connect, String path, int index, AtomicReference<Arrivals> failover) throws Exception {
      client = connect(connect);
      latch = new LeaderLatch(client, path, "c" + index);
      latch.addListener(new LeaderLatchListener() {
        public void isLeader() {
          long now = System.nanoTime();
          Arrivals r = failover.get();
          if (r != null && !r.value.equals(latch.getId())) r.stamp(0, now);
        }
        public void notLeader() {}
      });
      latch.start();
    }

    boolean joinedAll() throws Exception {
      return latch.getOurPath() != null && latch.getParticipants().size() == CANDIDATES;
    }
  }

  static int leader(Candidate[] cs) {
    int found = -1;
    for (int k = 0; k < cs.length; ++k) {
      if (!cs[k].latch.hasLeadership()) continue;
      if (found >= 0) throw new IllegalStateException("two leaders: c" + found + " and c" + k);
      found = k;
    }
    return found;
  }

  /**
   * LeaderLatch, 5 candidates: close the leader's CuratorFramework, time until another isLeader runs.
   * Some samples are ~100 ms longer because of the ZooKeeper 3.8.0 Java client: the closing client's
   * SendThread can hold the JVM-wide ZooKeeper.States.CONNECTED monitor through a 100 ms sleep in
   * ClientCnxnSocketNIO.cleanup(), and every other client's queuePacket locks that same object
   * (ZOOKEEPER-3652), so the next candidate cannot send its getChildren until then.
   */
  static String failover(String connect, String root) throws Exception {
    String path = root + "/election";
    AtomicReference<Arrivals> failover = new AtomicReference<>();
    Candidate[] cs = new Candidate[CANDIDATES];
    for (int k = 0; k < CANDIDATES; ++k) cs[k] = new Candidate(connect, path, k, failover);
    for (Candidate c : cs) waitUntil("election", () -> c.joinedAll() && leader(cs) >= 0);
    List<Double> samples = new ArrayList<>();
    for (int i = 0; i < FAILOVERS; ++i) {
      int k = leader(cs);
      Arrivals r = new Arrivals("c" + k, 1);
      failover.set(r);
      long t0 = System.nanoTime();
      cs[k].client.close();
      samples.add(r.latest(t0, "failover from"));
      Candidate back = cs[k] = new Candidate(connect, path, k, failover);
      waitUntil("rejoin", back::joinedAll);
    }
    for (Candidate c : cs) {
      c.latch.close();
      c.client.close();
    }
    return String.format(Locale.ROOT, "{\"workload\": \"failover\", \"library\": \"curator\", \"candidates\": %d, "
        + "\"repetitions\": %d, \"p50_ms\": %.3f, \"max_ms\": %.3f, \"samples_ms\": %s}", CANDIDATES, FAILOVERS,
        percentile(samples, 0.5), percentile(samples, 1.0), list(samples));
  }

  static void seen(AtomicReference<Arrivals> round, int who, byte[] data, long now) {
    Arrivals r = round.get();
    if (r != null && data != null && r.value.equals(new String(data, StandardCharsets.UTF_8))) r.stamp(who, now);
  }

  /** Adds the listeners, starts the cache and waits for its initial load. */
  static CuratorCache started(CuratorCache cache, CuratorCacheListenerBuilder listeners) throws InterruptedException {
    CountDownLatch ready = new CountDownLatch(1);
    cache.listenable().addListener(listeners.forInitialized(ready::countDown).build());
    cache.start();
    await(ready, "CuratorCache start");
    return cache;
  }

  static AutoCloseable curatorCache(CuratorFramework c, String path, int who, AtomicReference<Arrivals> round)
      throws InterruptedException {
    return started(CuratorCache.build(c, path, CuratorCache.Options.SINGLE_NODE_CACHE),
        CuratorCacheListener.builder().forChanges((before, after) -> {
          long now = System.nanoTime();
          seen(round, who, after.getData(), now);
        }));
  }

  @SuppressWarnings("deprecation")  // NodeCache: deprecated in Curator 5 for CuratorCache, still widely used
  static AutoCloseable nodeCache(CuratorFramework c, String path, int who, AtomicReference<Arrivals> round)
      throws Exception {
    NodeCache cache = new NodeCache(c, path);
    cache.getListenable().addListener(() -> {
      long now = System.nanoTime();
      ChildData d = cache.getCurrentData();
      if (d != null) seen(round, who, d.getData(), now);
    });
    cache.start(true);
    return cache;
  }

  /** One variant of config: 16 subscriber sessions, each one cache; {p50, p99} in ms. */
  static double[] config(String connect, String path, boolean curatorCache) throws Exception {
    AtomicReference<Arrivals> round = new AtomicReference<>();
    List<CuratorFramework> clients = new ArrayList<>();
    List<AutoCloseable> caches = new ArrayList<>();
    List<Double> lat = new ArrayList<>();
    try (CuratorFramework pub = connect(connect)) {
      if (pub.checkExists().forPath(path) == null) pub.create().creatingParentsIfNeeded().forPath(path, bytes("v0"));
      else pub.setData().forPath(path, bytes("v0"));
      for (int k = 0; k < SUBSCRIBERS; ++k) {
        CuratorFramework c = connect(connect);
        clients.add(c);
        caches.add(curatorCache ? curatorCache(c, path, k, round) : nodeCache(c, path, k, round));
      }
      for (int i = 1; i <= CHANGES; ++i) {
        Arrivals r = new Arrivals("v" + i, SUBSCRIBERS);
        round.set(r);
        long t0 = System.nanoTime();
        pub.setData().forPath(path, bytes(r.value));
        lat.add(r.latest(t0, "config"));
      }
    }
    for (AutoCloseable cache : caches) cache.close();
    for (CuratorFramework c : clients) c.close();
    return new double[] {percentile(lat, 0.5), percentile(lat, 0.99)};
  }

  /** config with CuratorCache, then with NodeCache; the figures of the lower p50, both kept. */
  static String config(String connect, String root) throws Exception {
    double[] cc = config(connect, root + "/config", true);
    double[] nc = config(connect, root + "/config", false);
    double[] best = cc[0] <= nc[0] ? cc : nc;
    return String.format(Locale.ROOT, "{\"workload\": \"config\", \"library\": \"curator\", \"subscribers\": %d, "
        + "\"changes\": %d, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"curator_cache\": [%.3f, %.3f], "
        + "\"node_cache\": [%.3f, %.3f]}", SUBSCRIBERS, CHANGES, best[0], best[1], cc[0], cc[1], nc[0], nc[1]);
  }

  /** DistributedDoubleBarrier, 8 member sessions (one thread each), a fresh barrier node per round. */
  static String barrier(String connect, String root) throws Exception {
    List<CuratorFramework> clients = new ArrayList<>();
    for (int k = 0; k < MEMBERS; ++k) clients.add(connect(connect));
    CountDownLatch go = new CountDownLatch(1);
    CountDownLatch finished = new CountDownLatch(MEMBERS);
    AtomicInteger steps = new AtomicInteger();  // enters and leaves done, for the watchdog below
    for (CuratorFramework c : clients) {
      new Thread(() -> {
        try {
          go.await();
          for (int r = 1; r <= ROUNDS; ++r) {
            DistributedDoubleBarrier b = new DistributedDoubleBarrier(c, root + "/barrier/r" + r, MEMBERS);
            if (!b.enter(WAIT_S, TimeUnit.SECONDS)) throw new IllegalStateException("enter timeout, round " + r);
            steps.incrementAndGet();
            if (!b.leave(WAIT_S, TimeUnit.SECONDS)) throw new IllegalStateException("leave timeout, round " + r);
            steps.incrementAndGet();
          }
          finished.countDown();
        } catch (Exception e) {
          e.printStackTrace();
          System.exit(1);
        }
      }).start();
    }
    long t0 = System.nanoTime();
    go.countDown();
    // Curator 5.4's enter(timeout) can fall into an untimed wait() (a member already notified of the
    // ready node sees fewer than 8 members because faster ones have begun to leave); the others'
    // timed leave() then end the run. Should nothing else end it, this bounds it as well.
    for (int before = steps.get(); !finished.await(WAIT_S, TimeUnit.SECONDS); before = steps.get()) {
      if (steps.get() == before) throw new IllegalStateException("barrier: no enter/leave done in " + WAIT_S + " s");
    }
    double seconds = (System.nanoTime() - t0) / 1e9;
    for (CuratorFramework c : clients) c.close();
    return String.format(Locale.ROOT, "{\"workload\": \"barrier\", \"library\": \"curator\", \"members\": %d, "
        + "\"rounds\": %d, \"rounds_per_s\": %.1f}", MEMBERS, ROUNDS, ROUNDS / seconds);
  }

  static ServiceDiscovery<Void> discovery(CuratorFramework c, String root) throws Exception {
    ServiceDiscovery<Void> d = ServiceDiscoveryBuilder.builder(Void.class).client(c).basePath(root + "/services")
        .build();
    d.start();
    return d;
  }

  /** A started ServiceCache of "bench" whose listener stamps the instance being waited for. */
  static ServiceCache<Void> serviceCache(ServiceDiscovery<Void> d, int who, AtomicReference<Arrivals> round)
      throws Exception {
    ServiceCache<Void> cache = d.serviceCacheBuilder().name("bench").build();
    cache.addListener(new ServiceCacheListener() {
      public void cacheChanged() {
        long now = System.nanoTime();
        Arrivals r = round.get();
        if (r == null) return;
        for (ServiceInstance<Void> instance : cache.getInstances()) {
          if (instance.getId().equals(r.value)) r.stamp(who, now);
        }
      }
      public void stateChanged(CuratorFramework client, ConnectionState state) {}
    });
    cache.start();
    return cache;
  }

  static ServiceInstance<Void> instance(int i) throws Exception {
    return ServiceInstance.<Void>builder().name("bench").id("i" + i).address("127.0.0.1").port(10000 + i).build();
  }

  /** curator-x-discovery: registerService on one session, seen by 8 ServiceCaches on their own sessions. */
  static String registry(String connect, String root) throws Exception {
    AtomicReference<Arrivals> round = new AtomicReference<>();
    List<CuratorFramework> clients = new ArrayList<>();
    List<ServiceDiscovery<Void>> discoveries = new ArrayList<>();
    List<ServiceCache<Void>> caches = new ArrayList<>();
    for (int k = 0; k < CACHES; ++k) {
      clients.add(connect(connect));
      discoveries.add(discovery(clients.get(k), root));
      caches.add(serviceCache(discoveries.get(k), k, round));
    }
    List<Double> lat = new ArrayList<>();
    try (CuratorFramework rc = connect(connect); ServiceDiscovery<Void> registrar = discovery(rc, root)) {
      for (int i = 1; i <= REGISTRATIONS; ++i) {
        ServiceInstance<Void> instance = instance(i);
        Arrivals r = new Arrivals(instance.getId(), CACHES);
        round.set(r);
        long t0 = System.nanoTime();
        registrar.registerService(instance);
        lat.add(r.latest(t0, "registration"));
      }
    }
    for (ServiceCache<Void> cache : caches) cache.close();
    for (ServiceDiscovery<Void> d : discoveries) d.close();
    for (CuratorFramework c : clients) c.close();
    return String.format(Locale.ROOT, "{\"workload\": \"registry\", \"library\": \"curator\", \"caches\": %d, "
        + "\"registrations\": %d, \"p50_ms\": %.3f, \"p99_ms\": %.3f}", CACHES, REGISTRATIONS,
        percentile(lat, 0.5), percentile(lat, 0.99));
  }

  static long vmRssKib() throws Exception {
    for (String line : Files.readAllLines(Paths.get("/proc/self/status"))) {
      if (line.startsWith("VmRSS:")) return Long.parseLong(line.replaceAll("[^0-9]", ""));
    }
    throw new IllegalStateException("no VmRSS in /proc/self/status");
  }

  /** One session holding one of each recipe, then the JVM's VmRSS. */
  static String memory(String connect, String root) throws Exception {
    CuratorFramework c = connect(connect);
    List<String> holds = new ArrayList<>();
    InterProcessMutex lock = new InterProcessMutex(c, root + "/lock");
    if (!lock.acquire(WAIT_S, TimeUnit.SECONDS)) throw new IllegalStateException("lock timeout");
    holds.add("lock");
    InterProcessReadWriteLock rwlock = new InterProcessReadWriteLock(c, root + "/rwlock");
    if (!rwlock.readLock().acquire(WAIT_S, TimeUnit.SECONDS)) throw new IllegalStateException("read lock timeout");
    holds.add("rwlock");
    InterProcessSemaphoreV2 semaphore = new InterProcessSemaphoreV2(c, root + "/semaphore", 1);
    Lease lease = semaphore.acquire(WAIT_S, TimeUnit.SECONDS);
    if (lease == null) throw new IllegalStateException("semaphore timeout");
    holds.add("semaphore");
    LeaderLatch latch = new LeaderLatch(c, root + "/election");
    latch.start();
    if (!latch.await(WAIT_S, TimeUnit.SECONDS)) throw new IllegalStateException("leader latch timeout");
    holds.add("latch");
    SimpleDistributedQueue queue = new SimpleDistributedQueue(c, root + "/queue");
    if (!queue.offer(bytes("item"))) throw new IllegalStateException("queue offer failed");
    holds.add("queue");
    DistributedDoubleBarrier barrier = new DistributedDoubleBarrier(c, root + "/barrier", MEMBERS);
    holds.add("barrier");
    c.create().creatingParentsIfNeeded().forPath(root + "/config", bytes("v0"));
    AutoCloseable config = curatorCache(c, root + "/config", 0, new AtomicReference<>());
    holds.add("config");
    ServiceDiscovery<Void> discovery = discovery(c, root);
    discovery.registerService(instance(1));
    holds.add("registration");
    ServiceCache<Void> serviceCache = serviceCache(discovery, 0, new AtomicReference<>());
    waitUntil("service cache", () -> serviceCache.getInstances().size() == 1);
    holds.add("discovery");
    CuratorCache tree = started(CuratorCache.build(c, root), CuratorCacheListener.builder());  // whole tree
    holds.add("tree_cache");
    long rss = vmRssKib();
    java.lang.ref.Reference.reachabilityFence(
        List.of(lock, rwlock, lease, latch, queue, barrier, config, serviceCache, tree));
    return String.format(Locale.ROOT, "{\"workload\": \"memory\", \"library\": \"curator\", \"rss_kib\": %d, "
        + "\"holds\": [\"%s\"]}", rss, String.join("\", \"", holds));
  }

  public static void main(String[] args) {
    try {
      run(args);
    } catch (Throwable e) {
      e.printStackTrace();
      System.exit(1);
    }
    System.exit(0);
  }

  static void run(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println(
          "usage: CuratorBench <lock|lock8|queue|failover|config|barrier|registry|memory> <connect> <root>");
      System.exit(2);
    }
    String workload = args[0], connect = args[1], root = args[2];
    if (workload.equals("lock")) {
      try (CuratorFramework c = connect(connect)) {
        InterProcessMutex m = new InterProcessMutex(c, root + "/lock");
        List<Double> lat = new ArrayList<>();
        long t0 = System.nanoTime();
        for (int i = 0; i < UNCONTENDED_CYCLES; ++i) {
          long t = System.nanoTime();
          if (!m.acquire(10, TimeUnit.SECONDS)) throw new IllegalStateException("lock timeout");
          lat.add((System.nanoTime() - t) / 1e6);
          m.release();
        }
        print(workload, UNCONTENDED_CYCLES, (System.nanoTime() - t0) / 1e9, lat);
      }
    } else if (workload.equals("lock8")) {
      List<CuratorFramework> clients = new ArrayList<>();
      for (int i = 0; i < SESSIONS; ++i) clients.add(connect(connect));
      List<Double> lat = Collections.synchronizedList(new ArrayList<>());
      CountDownLatch go = new CountDownLatch(1);
      List<Thread> threads = new ArrayList<>();
      for (CuratorFramework c : clients) {
        Thread th = new Thread(() -> {
          try {
            InterProcessMutex m = new InterProcessMutex(c, root + "/lock8");
            go.await();
            for (int i = 0; i < CYCLES_EACH; ++i) {
              long t = System.nanoTime();
              if (!m.acquire(60, TimeUnit.SECONDS)) throw new IllegalStateException("lock timeout");
              lat.add((System.nanoTime() - t) / 1e6);
              m.release();
            }
          } catch (Exception e) {
            e.printStackTrace();
            System.exit(1);
          }
        });
        th.start();
        threads.add(th);
      }
      long t0 = System.nanoTime();
      go.countDown();
      for (Thread th : threads) th.join();
      print(workload, SESSIONS * CYCLES_EACH, (System.nanoTime() - t0) / 1e9, lat);
      for (CuratorFramework c : clients) c.close();
    } else if (workload.equals("queue")) {
      final int items = 5000;
      final byte[] payload = new byte[100];
      java.util.Arrays.fill(payload, (byte) 'x');
      try (CuratorFramework p = connect(connect); CuratorFramework c = connect(connect)) {
        SimpleDistributedQueue producer = new SimpleDistributedQueue(p, root + "/q");
        SimpleDistributedQueue consumer = new SimpleDistributedQueue(c, root + "/q");
        long t0 = System.nanoTime();
        for (int i = 0; i < items; ++i) producer.offer(payload);
        double put = items / ((System.nanoTime() - t0) / 1e9);
        t0 = System.nanoTime();
        for (int i = 0; i < items; ++i) consumer.take();
        double take = items / ((System.nanoTime() - t0) / 1e9);
        t0 = System.nanoTime();
        Thread prod = new Thread(() -> {
          try {
            for (int i = 0; i < items; ++i) producer.offer(payload);
          } catch (Exception e) {
            e.printStackTrace();
            System.exit(1);
          }
        });
        prod.start();
        for (int i = 0; i < items; ++i) consumer.take();
        prod.join();
        double e2e = items / ((System.nanoTime() - t0) / 1e9);
        double[] dq = distributedQueue(p, c, root + "/dq", items, payload);
        System.out.printf("{\"workload\": \"queue\", \"library\": \"curator\", \"items\": %d, \"put_per_s\": %.1f, "
            + "\"take_per_s\": %.1f, \"e2e_per_s\": %.1f, \"simple\": [%.1f, %.1f, %.1f], "
            + "\"distributed\": [%.1f, %.1f, %.1f]}%n", items, Math.max(put, dq[0]), Math.max(take, dq[1]),
            Math.max(e2e, dq[2]), put, take, e2e, dq[0], dq[1], dq[2]);
      }
    } else if (workload.equals("failover")) {
      System.out.println(failover(connect, root));
    } else if (workload.equals("config")) {
      System.out.println(config(connect, root));
    } else if (workload.equals("barrier")) {
      System.out.println(barrier(connect, root));
    } else if (workload.equals("registry")) {
      System.out.println(registry(connect, root));
    } else if (workload.equals("memory")) {
      System.out.println(memory(connect, root));
    } else {
      System.err.println("unknown workload " + workload);
      System.exit(2);
    }
  }
}
