// The Apache Curator 5.4 side of `./run bench` (bench/run_bench.py).
//
//   java CuratorBench <lock|lock8|queue> <connect> <root>
// The queue workload runs SimpleDistributedQueue and DistributedQueue and
// reports each figure from the better of the two (the JSON keeps both).
// Prints one JSON object, like bench/zk_bench.cpp.
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueConsumer;
import org.apache.curator.framework.recipes.queue.QueueSerializer;
import org.apache.curator.framework.recipes.queue.SimpleDistributedQueue;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;

public final class CuratorBench {
  static final int UNCONTENDED_CYCLES = 3000;
  static final int SESSIONS = 8;
  static final int CYCLES_EACH = 250;

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

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: CuratorBench <lock|lock8> <connect> <root>");
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
    } else {
      System.err.println("unknown workload " + workload);
      System.exit(2);
    }
    System.exit(0);
  }
}
