// The Apache Curator side of the interoperability tests
// (tests/interop_test.cpp): takes an InterProcessMutex on the same path as
// zkrecipes::mutex objects in the test process, or runs a LeaderLatch in the
// same election as zkrecipes::leader_latch candidates.
//
//   java CuratorLock loop <connect> <lock path> <iterations> <log file> <label>
//     Acquires and releases the lock <iterations> times. While holding it,
//     appends "<label> enter\n", sleeps 1-3 ms, appends "<label> exit\n"
//     (one write(2) per line, O_APPEND). Prints "ready" once connected and
//     "done" at the end.
//
//   java CuratorLock hold <connect> <lock path> <acquire timeout ms> <release file>
//     Prints "ready" once connected, then waits up to the timeout for the
//     lock: prints "held <our node name>" and, once <release file> exists,
//     releases and prints "released"; or prints "timeout" and exits 3.
//
//   java CuratorLock latch <connect> <latch path> <id> <release file>
//     Prints "ready" once connected, starts a LeaderLatch with participant id
//     <id> and prints "joined <our node name>" once its node exists. Then,
//     polling every 20 ms, prints "leader <id of getLeader()>" whenever the
//     leader's id changes and "has <true|false>" whenever hasLeadership()
//     changes (first the initial view). Once <release file> exists, closes
//     the latch and prints "closed".
//
// Exit status: 0 done, 2 bad arguments, 3 the lock was not acquired in time,
// 4 no connection, 5 no release file within a minute (or, for latch, not
// joined within 30 s), 1 any other error.
// Prints nothing else: slf4j-nop on the class path keeps Curator and the
// ZooKeeper client quiet.

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.Iterator;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.ExponentialBackoffRetry;

public final class CuratorLock {
  private static final long LOOP_ACQUIRE_TIMEOUT_MS = 15_000;

  public static void main(String[] args) throws Exception {
    if (args.length < 1) usage();
    int status;
    switch (args[0]) {
      case "loop":
        if (args.length != 6) usage();
        status = loop(args[1], args[2], Integer.parseInt(args[3]), Paths.get(args[4]), args[5]);
        break;
      case "hold":
        if (args.length != 5) usage();
        status = hold(args[1], args[2], Long.parseLong(args[3]), Paths.get(args[4]));
        break;
      case "latch":
        if (args.length != 5) usage();
        status = latch(args[1], args[2], args[3], Paths.get(args[4]));
        break;
      default:
        usage();
        return;
    }
    System.out.flush();
    // Curator and ZooKeeper leave non-daemon threads behind on some paths.
    System.exit(status);
  }

  private static void usage() {
    System.err.println("usage: CuratorLock loop <connect> <path> <iterations> <log> <label>\n"
        + "       CuratorLock hold <connect> <path> <acquire timeout ms> <release file>\n"
        + "       CuratorLock latch <connect> <path> <id> <release file>");
    System.exit(2);
  }

  private static CuratorFramework connect(String connect) throws InterruptedException {
    CuratorFramework client = CuratorFrameworkFactory.builder()
        .connectString(connect)
        .sessionTimeoutMs(4_000)
        .connectionTimeoutMs(5_000)
        .retryPolicy(new ExponentialBackoffRetry(50, 6))
        .build();
    client.start();
    if (!client.blockUntilConnected(15, TimeUnit.SECONDS)) {
      System.out.println("no connection to " + connect);
      client.close();
      return null;
    }
    System.out.println("ready");
    System.out.flush();
    return client;
  }

  private static void append(Path log, String line) throws Exception {
    Files.write(log, line.getBytes(StandardCharsets.UTF_8),
        StandardOpenOption.APPEND, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
  }

  private static int loop(String connect, String path, int iterations, Path log, String label)
      throws Exception {
    CuratorFramework client = connect(connect);
    if (client == null) return 4;
    try {
      InterProcessMutex mutex = new InterProcessMutex(client, path);
      for (int i = 0; i < iterations; ++i) {
        if (!mutex.acquire(LOOP_ACQUIRE_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
          System.out.println("timeout in iteration " + i);
          return 3;
        }
        try {
          append(log, label + " enter\n");
          Thread.sleep(1 + ThreadLocalRandom.current().nextInt(3));
          append(log, label + " exit\n");
        } finally {
          mutex.release();
        }
      }
      System.out.println("done");
      return 0;
    } finally {
      client.close();
    }
  }

  private static int hold(String connect, String path, long timeoutMs, Path release)
      throws Exception {
    CuratorFramework client = connect(connect);
    if (client == null) return 4;
    try {
      InterProcessMutex mutex = new InterProcessMutex(client, path);
      if (!mutex.acquire(timeoutMs, TimeUnit.MILLISECONDS)) {
        System.out.println("timeout");
        return 3;
      }
      try {
        // The holder is the first participant: that is our node.
        Iterator<String> it = mutex.getParticipantNodes().iterator();
        String node = it.hasNext() ? it.next() : "?";
        System.out.println("held " + node.substring(node.lastIndexOf('/') + 1));
        System.out.flush();
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(1);
        while (!Files.exists(release)) {
          if (System.nanoTime() > deadline) {
            System.out.println("no release file");
            return 5;
          }
          Thread.sleep(5);
        }
      } finally {
        mutex.release();
      }
      System.out.println("released");
      return 0;
    } finally {
      client.close();
    }
  }

  private static int latch(String connect, String path, String id, Path release) throws Exception {
    CuratorFramework client = connect(connect);
    if (client == null) return 4;
    try {
      LeaderLatch latch = new LeaderLatch(client, path, id);
      latch.start();
      try {
        // Joined once our node is there (getOurPath() is set, and it exists).
        long joinDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        String ours;
        for (;;) {
          ours = latch.getOurPath();
          if (ours != null && client.checkExists().forPath(ours) != null) break;
          if (System.nanoTime() > joinDeadline) {
            System.out.println("not joined");
            return 5;
          }
          Thread.sleep(5);
        }
        System.out.println("joined " + ours.substring(ours.lastIndexOf('/') + 1));
        System.out.flush();

        String leader = null;
        Boolean has = null;
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(1);
        while (!Files.exists(release)) {
          if (System.nanoTime() > deadline) {
            System.out.println("no release file");
            return 5;
          }
          String l;
          try {
            l = latch.getLeader().getId(); // "" when there is no leader
          } catch (Exception e) {
            l = leader; // a node vanished under us: look again next round
          }
          boolean h = latch.hasLeadership();
          if (l != null && !l.equals(leader)) {
            leader = l;
            System.out.println("leader " + l);
          }
          if (has == null || h != has) {
            has = h;
            System.out.println("has " + h);
          }
          System.out.flush();
          Thread.sleep(20);
        }
      } finally {
        latch.close();
      }
      System.out.println("closed");
      return 0;
    } finally {
      client.close();
    }
  }
}
