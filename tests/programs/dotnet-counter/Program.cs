// dotnet-counter [THREADS [GC_EVERY]]: a .NET console program that counts in several threads, for the restart tests.
//
// THREADS (default 4) threads named "counter-<i>" each loop: add one to their own count (Interlocked), and
// under a lock add one to the shared count and to their count of rounds under the lock, checking that their
// [ThreadStatic] tag is still theirs (else bad++); then Thread.Sleep(1) every 16 rounds. A timer-free main
// thread prints, every 50 ms, one line
//   TICK <n> shared=<S> sum=<sum of locked rounds> bad=<n> gc=<collections> counts=c0,c1,...
// read under the lock, so shared always equals sum. It also allocates and drops a little garbage, forces a
// collection every GC_EVERY-th tick (default 4; 0: never), gc being the count of gen-0 collections (to
// collect, the runtime suspends every thread: membarrier, thread-directed signals), and checks a list it
// keeps (bad++ if wrong).
// Prints "READY <pid>" once every thread has counted.
using System.Text;

var threads = args.Length > 0 ? int.Parse(args[0]) : 4;
var gcEvery = args.Length > 1 ? int.Parse(args[1]) : 4;
var counts = new long[threads];
var locked = new long[threads];
long shared = 0, bad = 0;
var gate = new object();
var started = new CountdownEvent(threads);

for (var i = 0; i < threads; i++)
{
    var index = i;
    var t = new Thread(() => Counter.Run(index, counts, locked, gate, ref shared, ref bad, started))
    {
        IsBackground = true,
        Name = $"counter-{index}",
    };
    t.Start();
}
started.Wait();
Console.WriteLine($"READY {Environment.ProcessId}");

var keep = new List<string>();
for (var i = 0; i < 1000; i++) keep.Add($"item {i}");
for (long n = 1; ; n++)
{
    // Garbage, so that collections happen before and after a restart.
    for (var i = 0; i < 20; i++) _ = new byte[1024];
    if (gcEvery > 0 && n % gcEvery == 0) GC.Collect();
    for (var i = 0; i < keep.Count; i += 97)
        if (keep[i] != $"item {i}") Interlocked.Increment(ref bad);
    long s, sum = 0;
    var line = new StringBuilder();
    lock (gate)
    {
        s = shared;
        for (var i = 0; i < threads; i++)
        {
            sum += locked[i];
            line.Append(i == 0 ? "" : ",").Append(Interlocked.Read(ref counts[i]));
        }
    }
    Console.WriteLine($"TICK {n} shared={s} sum={sum} bad={Interlocked.Read(ref bad)} gc={GC.CollectionCount(0)} counts={line}");
    Thread.Sleep(50);
}

static class Counter
{
    [ThreadStatic] private static long tag;

    public static void Run(int index, long[] counts, long[] locked, object gate, ref long shared, ref long bad, CountdownEvent started)
    {
        tag = 1000 + index;
        var signalled = false;
        for (long n = 1; ; n++)
        {
            Interlocked.Increment(ref counts[index]);
            lock (gate)
            {
                shared++;
                locked[index]++;
                if (tag != 1000 + index) bad++;
            }
            if (!signalled) { started.Signal(); signalled = true; }
            if (n % 16 == 0) Thread.Sleep(1);
        }
    }
}
