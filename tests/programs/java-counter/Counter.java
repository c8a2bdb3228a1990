// Counter [THREADS]: a Java program that counts in several threads, for the restart tests.
//
// THREADS (default 4) threads named "counter-<i>" each loop: add one to their own count (an AtomicLongArray),
// and under a lock add one to the shared count and to their count of rounds under the lock, checking that
// their ThreadLocal tag is still theirs (else bad++); then sleep 1 ms every 16 rounds. The main thread
// prints, every 50 ms, one line
//   TICK <n> shared=<S> sum=<sum of locked rounds> bad=<n> gc=<collections> counts=c0,c1,...
// read under the lock, so shared always equals sum. It allocates garbage and asks for a collection every
// 4th tick (the JVM stops every thread at a safepoint to collect), gc being the collections it has seen.
// Prints "READY <pid>" once every thread has counted.
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

public class Counter {
    public static void main(String[] args) throws Exception {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : 4;
        AtomicLongArray counts = new AtomicLongArray(threads);
        long[] locked = new long[threads];
        long[] shared = new long[1];
        AtomicLong bad = new AtomicLong();
        Object gate = new Object();
        CountDownLatch started = new CountDownLatch(threads);
        ThreadLocal<Integer> tag = new ThreadLocal<>();
        for (int i = 0; i < threads; i++) {
            int index = i;
            Thread t = new Thread(() -> {
                tag.set(index);
                started.countDown();
                for (long round = 1; ; round++) {
                    counts.incrementAndGet(index);
                    synchronized (gate) {
                        shared[0]++;
                        locked[index]++;
                        if (tag.get() != index) bad.incrementAndGet();
                    }
                    if (round % 16 == 0) {
                        try { Thread.sleep(1); } catch (InterruptedException e) { return; }
                    }
                }
            }, "counter-" + index);
            t.setDaemon(true);
            t.start();
        }
        started.await();
        System.out.println("READY " + ProcessHandle.current().pid());
        List<String> keep = new ArrayList<>();
        for (int i = 0; i < 1000; i++) keep.add("item " + i);
        for (long n = 1; ; n++) {
            List<byte[]> garbage = new ArrayList<>();
            for (int i = 0; i < 20; i++) garbage.add(new byte[1024]);
            if (n % 4 == 0) System.gc();
            for (int i = 0; i < keep.size(); i += 97)
                if (!keep.get(i).equals("item " + i)) bad.incrementAndGet();
            long collections = 0;
            for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) collections += Math.max(0, gc.getCollectionCount());
            StringBuilder line = new StringBuilder();
            synchronized (gate) {
                long sum = 0;
                for (int i = 0; i < threads; i++) sum += locked[i];
                line.append("TICK ").append(n).append(" shared=").append(shared[0]).append(" sum=").append(sum)
                    .append(" bad=").append(bad.get()).append(" gc=").append(collections).append(" counts=");
                for (int i = 0; i < threads; i++) line.append(i == 0 ? "" : ",").append(counts.get(i));
            }
            System.out.println(line);
            System.out.flush();
            Thread.sleep(50);
        }
    }
}
