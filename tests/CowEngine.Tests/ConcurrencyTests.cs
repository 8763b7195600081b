using System.Runtime.CompilerServices;
using CowEngine.Tests.Support;

namespace CowEngine.Tests;

/// <summary>
/// Threads writing the same pages while another thread snapshots them: the handler's per-page
/// locking must lose no update, and every snapshot must be a consistent cut that never changes
/// afterwards.
/// </summary>
/// <remarks>
/// The threads really interleave, however the machine schedules them: after each snapshot the
/// snapshotting thread waits until every writer has written again (a handshake, not a timing
/// assumption), and the writers keep writing until the snapshotting thread has taken its quota.
/// So every snapshot is followed, while it is alive, by writes to the pages it shares, and the next
/// snapshot is taken while those writes go on. Writers count their own updates in locals, so the
/// expected final values do not depend on how the threads interleaved.
/// </remarks>
public sealed unsafe class ConcurrencyTests
{
    private const int PageSize = CowMemoryEngine.PageSize;

    /// <summary>Snapshots the snapshotting thread takes while the writers run.</summary>
    private const int SnapshotQuota = 60;

    /// <summary>Snapshots kept alive at once (older ones are checked and disposed).</summary>
    private const int SnapshotsKept = 4;

    /// <summary>Each writer does at least this many updates, however fast the snapshots come.</summary>
    private const int MinimumUpdatesPerWriter = 50_000;

    /// <summary>Hang detector, not a timing assertion.</summary>
    private static readonly TimeSpan HangTimeout = TestThreads.DefaultTimeout;

    public enum IncrementKind
    {
        /// <summary>Non-atomic read-modify-write, each writer on its own int of the shared page.</summary>
        PlainOnSeparateInts,

        /// <summary>Interlocked.Increment, every writer on the same int.</summary>
        InterlockedOnOneInt,
    }

    [Theory]
    [InlineData(2, IncrementKind.PlainOnSeparateInts)]
    [InlineData(4, IncrementKind.PlainOnSeparateInts)]
    [InlineData(2, IncrementKind.InterlockedOnOneInt)]
    [InlineData(4, IncrementKind.InterlockedOnOneInt)]
    public void IncrementsInOnePage_WhileAnotherThreadSnapshots_LoseNoUpdate(int writers, IncrementKind kind)
    {
        var engine = new CowMemoryEngine();
        using var threads = new TestThreads(engine); // owns the engine: see RunConcurrently
        CowView region = engine.CreateRegion(2 * PageSize);
        // Counters 64 bytes apart, all in page 0. Interlocked writers all use counter 0.
        int* counters = (int*)region.Pointer;
        int counterCount = kind == IncrementKind.PlainOnSeparateInts ? writers : 1;
        var done = new long[writers];
        var progress = new WriterProgress(writers);
        int stop = 0;

        var writerActions = Enumerable.Range(0, writers).Select(w => (Action)(() =>
        {
            ref int mine = ref counters[w * 16];
            ref int shared = ref counters[0];
            long count = 0;
            try
            {
                while (Volatile.Read(ref stop) == 0 || count < MinimumUpdatesPerWriter)
                {
                    if (kind == IncrementKind.PlainOnSeparateInts)
                        Volatile.Write(ref mine, Volatile.Read(ref mine) + 1);
                    else
                        Interlocked.Increment(ref shared);
                    count++;
                    progress.Report(w, count);
                }
            }
            finally
            {
                done[w] = count;
                progress.Finished(w);
            }
        }));

        var snapshots = new SnapshotKeeper<int>(SnapshotsKept, view => ReadCounters(view, counterCount));
        Action snapshotter = () => TakeSnapshots(ref stop, () =>
        {
            int[]? previous = null;
            for (int i = 0; i < SnapshotQuota; i++)
            {
                int[] current = snapshots.Take(region);
                progress.WaitForEveryWriterToWriteAfterNow();
                // A later cut contains everything an earlier one did.
                if (previous != null)
                    for (int c = 0; c < counterCount; c++)
                        Assert.True(current[c] >= previous[c], $"counter {c} went back from {previous[c]} to {current[c]} between snapshots");
                previous = current;
            }
        });

        RunConcurrently(threads, writerActions.Append(snapshotter).ToArray());
        snapshots.CheckAndDisposeAll();

        if (kind == IncrementKind.PlainOnSeparateInts)
        {
            for (int w = 0; w < writers; w++)
                Assert.Equal(done[w], counters[w * 16]);
        }
        else
        {
            Assert.Equal(done.Sum(), counters[0]);
        }
        // Every snapshot was followed by a write to page 0 while it was alive: one copy each at least.
        CowEngineStats stats = engine.GetStats();
        Assert.True(stats.CopyFaults >= SnapshotQuota, $"expected at least {SnapshotQuota} copy faults: {stats}");
        Assert.Equal(0, region.Pointer[PageSize]); // page 1 was never written
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Snapshot_TakenWhileWritersBumpPageCountersInOrder_IsAConsistentCutThatNeverChanges(int writers)
    {
        // Writer w owns one int per page (at offset w * 64) and bumps them page 0, 1, ..., N-1, then
        // again from 0. Any consistent cut therefore sees c[0] >= c[1] >= ... >= c[N-1] >= c[0] - 1.
        const int Pages = 8;
        var engine = new CowMemoryEngine();
        using var threads = new TestThreads(engine); // owns the engine: see RunConcurrently
        CowView region = engine.CreateRegion(Pages * PageSize);
        var progress = new WriterProgress(writers);
        int stop = 0;

        var writerActions = Enumerable.Range(0, writers).Select(w => (Action)(() =>
        {
            int round = 0;
            try
            {
                while (Volatile.Read(ref stop) == 0 || round < MinimumUpdatesPerWriter / Pages)
                {
                    round++;
                    for (int page = 0; page < Pages; page++)
                        Volatile.Write(ref CounterOf(region, page, w), round);
                    progress.Report(w, round);
                }
            }
            finally
            {
                progress.Finished(w);
            }
        }));

        var snapshots = new SnapshotKeeper<int>(SnapshotsKept, view =>
            Enumerable.Range(0, writers * Pages).Select(i => CounterOf(view, i % Pages, i / Pages)).ToArray());
        Action snapshotter = () => TakeSnapshots(ref stop, () =>
        {
            for (int i = 0; i < SnapshotQuota; i++)
            {
                int[] cut = snapshots.Take(region);
                progress.WaitForEveryWriterToWriteAfterNow();
                for (int w = 0; w < writers; w++)
                {
                    ReadOnlySpan<int> c = cut.AsSpan(w * Pages, Pages);
                    bool consistent = c[Pages - 1] >= c[0] - 1;
                    for (int page = 1; page < Pages; page++)
                        consistent &= c[page - 1] >= c[page];
                    Assert.True(consistent, $"snapshot {i}, writer {w}: not a consistent cut: [{string.Join(", ", c.ToArray())}]");
                }
            }
        });

        RunConcurrently(threads, writerActions.Append(snapshotter).ToArray());
        snapshots.CheckAndDisposeAll();
        // Each snapshot was followed by a full round of every writer: all pages copied at least once
        // (by fewer faults than pages: fault-around resolves the pages after a sequential run).
        CowEngineStats stats = engine.GetStats();
        Assert.True(stats.PagesCopied >= SnapshotQuota * Pages, $"expected at least {SnapshotQuota * Pages} copies: {stats}");
    }

    [Fact]
    public void EightByteStoreAcrossAPageBoundary_WhileSnapshotting_IsNeverTornInASnapshot()
    {
        // Each store writes k into both halves, one half on each page: a snapshot that holds one
        // half of a store but not the other would show different halves.
        const int Offset = PageSize - 4;
        var engine = new CowMemoryEngine();
        using var threads = new TestThreads(engine); // owns the engine: see RunConcurrently
        CowView region = engine.CreateRegion(3 * PageSize);
        byte* address = region.Pointer + Offset;
        var progress = new WriterProgress(1);
        int stop = 0;
        ulong last = 0;

        Action writer = () =>
        {
            ulong k = 0;
            try
            {
                while (Volatile.Read(ref stop) == 0 || k < MinimumUpdatesPerWriter)
                {
                    k++;
                    Unsafe.WriteUnaligned(address, k << 32 | k);
                    progress.Report(0, (long)k);
                }
            }
            finally
            {
                last = k;
                progress.Finished(0);
            }
        };
        var snapshots = new SnapshotKeeper<ulong>(SnapshotsKept, view => [Unsafe.ReadUnaligned<ulong>(view.Pointer + Offset)]);
        Action snapshotter = () => TakeSnapshots(ref stop, () =>
        {
            ulong previous = 0;
            for (int i = 0; i < SnapshotQuota; i++)
            {
                ulong value = snapshots.Take(region)[0];
                progress.WaitForEveryWriterToWriteAfterNow();
                Assert.True(value >> 32 == (value & 0xFFFF_FFFF), $"snapshot {i} holds a torn store: 0x{value:x16}");
                Assert.True(value >= previous, $"snapshot {i} went back from 0x{previous:x16} to 0x{value:x16}");
                previous = value;
            }
        });

        RunConcurrently(threads, writer, snapshotter);
        snapshots.CheckAndDisposeAll();

        Assert.Equal(last << 32 | last, Unsafe.ReadUnaligned<ulong>(address));
        // The first store after each snapshot copied both of its pages.
        CowEngineStats stats = engine.GetStats();
        Assert.True(stats.CopyFaults >= 2 * SnapshotQuota, $"expected at least {2 * SnapshotQuota} copy faults: {stats}");
        // Nothing around the store was touched.
        Assert.False(region.AsSpan(0, Offset).ContainsAnyExcept((byte)0));
        Assert.False(region.AsSpan(Offset + 8, (int)region.Length - Offset - 8).ContainsAnyExcept((byte)0));
    }

    [Fact]
    public void EightByteStoreAcrossAPageBoundary_OnTwoSharedPages_CopiesBothAndLeavesTheSnapshotAlone()
    {
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(2 * PageSize);
        region.AsSpan().Fill(0xAA);
        using CowView snapshot = region.Snapshot();

        Unsafe.WriteUnaligned(region.Pointer + PageSize - 4, 0x1122334455667788UL);

        Assert.Equal(0x1122334455667788UL, Unsafe.ReadUnaligned<ulong>(region.Pointer + PageSize - 4));
        Assert.False(snapshot.AsSpan().ContainsAnyExcept((byte)0xAA));
        Assert.Equal(2, region.GetStats().PrivatePages);
        Assert.Equal(2, engine.GetStats().CopyFaults);
    }

    [Fact]
    public void LargeCopyAcrossManySharedPages_WhileSnapshotting_EndsWithTheCopyAndSnapshotsHoldOnlyWrittenBytes()
    {
        // Span.CopyTo of megabytes runs the runtime's native memmove: the faults come from native
        // code. The copier alternates two patterns over an unaligned range across a segment boundary;
        // every byte of every snapshot must be the original or one of the two patterns at that offset.
        const int Pages = 768; // 3 MiB: across the boundary of two 2 MiB segments
        const int Start = 50;
        const int MinimumRounds = 3;
        int length = Pages * PageSize - 2 * Start;
        var engine = new CowMemoryEngine();
        using var threads = new TestThreads(engine); // owns the engine: see RunConcurrently
        CowView region = engine.CreateRegion(Pages * PageSize);
        byte[] original = Pattern(Pages * PageSize, seed: 1);
        byte[][] patterns = [Pattern(length, seed: 2), Pattern(length, seed: 3)];
        original.CopyTo(region.AsSpan());
        using CowView before = region.Snapshot();
        var progress = new WriterProgress(1);
        int stop = 0, rounds = 0;

        Action copier = () =>
        {
            try
            {
                while (Volatile.Read(ref stop) == 0 || rounds < MinimumRounds)
                {
                    patterns[rounds % 2].CopyTo(region.AsSpan(Start, length));
                    rounds++;
                    progress.Report(0, rounds);
                }
            }
            finally
            {
                progress.Finished(0);
            }
        };
        var snapshots = new SnapshotKeeper<byte>(2, view => view.AsSpan().ToArray());
        Action snapshotter = () => TakeSnapshots(ref stop, () =>
        {
            for (int i = 0; i < 6; i++)
            {
                byte[] taken = snapshots.Take(region);
                progress.WaitForEveryWriterToWriteAfterNow();
                for (int offset = 0; offset < taken.Length; offset++)
                {
                    byte value = taken[offset];
                    bool inRange = offset >= Start && offset < Start + length;
                    bool possible = value == original[offset]
                        || (inRange && (value == patterns[0][offset - Start] || value == patterns[1][offset - Start]));
                    if (!possible)
                        Assert.Fail($"snapshot {i}: byte {offset} is 0x{value:x2}, which nobody wrote there");
                }
            }
        });

        RunConcurrently(threads, copier, snapshotter);
        snapshots.CheckAndDisposeAll();

        Assert.True(region.AsSpan(Start, length).SequenceEqual(patterns[(rounds - 1) % 2]), "the region does not hold the last copy");
        Assert.True(region.AsSpan(0, Start).SequenceEqual(original.AsSpan(0, Start)));
        Assert.True(region.AsSpan(Start + length, Start).SequenceEqual(original.AsSpan(Start + length)));
        Assert.True(before.AsSpan().SequenceEqual(original), "the snapshot taken before the copies changed");
    }

    // ---- helpers ----

    private static ref int CounterOf(CowView view, int page, int writer) =>
        ref *(int*)(view.Pointer + (long)page * PageSize + writer * 64);

    private static int[] ReadCounters(CowView view, int count)
    {
        var values = new int[count];
        for (int c = 0; c < count; c++)
            values[c] = Volatile.Read(ref ((int*)view.Pointer)[c * 16]);
        return values;
    }

    private static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>Runs the snapshotting loop, then tells the writers to stop, even if a check failed.</summary>
    private static void TakeSnapshots(ref int stop, Action loop)
    {
        try
        {
            loop();
        }
        finally
        {
            Volatile.Write(ref stop, 1);
        }
    }

    /// <summary>
    /// The handshake between writers and the snapshotting thread: writers report after each update
    /// (or round of updates) how many they completed, and the snapshotting thread waits until each
    /// has completed one that started after the wait began.
    /// </summary>
    private sealed class WriterProgress(int writers)
    {
        private const int Stride = 8; // one cache line per writer
        private readonly long[] _counts = new long[writers * Stride];

        public void Report(int writer, long count) => Volatile.Write(ref _counts[writer * Stride], count);

        /// <summary>A writer that stopped (or failed) is never waited for.</summary>
        public void Finished(int writer) => Volatile.Write(ref _counts[writer * Stride], long.MaxValue);

        /// <summary>
        /// Returns once every writer has completed an update that began after this call: seeing
        /// count n now, update n + 1 may have begun before the call, but update n + 2 began after
        /// report n + 1, which this call did not see yet.
        /// </summary>
        public void WaitForEveryWriterToWriteAfterNow()
        {
            long[] seen = new long[writers];
            for (int w = 0; w < writers; w++)
                seen[w] = Volatile.Read(ref _counts[w * Stride]);
            DateTime deadline = DateTime.UtcNow + HangTimeout;
            for (int w = 0; w < writers; w++)
            {
                var spinner = new SpinWait();
                while (Volatile.Read(ref _counts[w * Stride]) < seen[w] + 2 && seen[w] != long.MaxValue)
                {
                    if (DateTime.UtcNow > deadline)
                        throw new TimeoutException($"writer {w} made no progress (hang detector)");
                    spinner.SpinOnce(sleep1Threshold: -1);
                }
            }
        }
    }

    /// <summary>
    /// Takes snapshots, remembers what each held when taken, keeps the last few alive, and checks
    /// each still holds the same when it is disposed: a snapshot never changes after it is taken.
    /// </summary>
    private sealed class SnapshotKeeper<T>(int keep, Func<CowView, T[]> read) where T : IEquatable<T>
    {
        private readonly Queue<(CowView View, T[] FirstRead, int Number)> _kept = new();
        private int _taken;

        public T[] Take(CowView source)
        {
            CowView snapshot = source.Snapshot();
            T[] firstRead = read(snapshot);
            _kept.Enqueue((snapshot, firstRead, _taken++));
            if (_kept.Count > keep)
                CheckAndDispose(_kept.Dequeue());
            return firstRead;
        }

        public void CheckAndDisposeAll()
        {
            while (_kept.Count > 0)
                CheckAndDispose(_kept.Dequeue());
            Assert.True(_taken > 0, "no snapshot was taken");
        }

        private void CheckAndDispose((CowView View, T[] FirstRead, int Number) entry)
        {
            try
            {
                T[] now = read(entry.View);
                if (!now.AsSpan().SequenceEqual(entry.FirstRead))
                    Assert.Fail($"snapshot {entry.Number} changed after it was taken");
            }
            finally
            {
                entry.View.Dispose();
            }
        }
    }

    /// <summary>
    /// Runs each action on its own thread of <paramref name="threads"/>; rethrows the failures; fails
    /// on a hang, leaving the engine the group owns (and so every view) alive for the stuck threads.
    /// </summary>
    private static void RunConcurrently(TestThreads threads, params Action[] actions)
    {
        for (int i = 0; i < actions.Length; i++)
            threads.Start($"concurrency {i}", actions[i]);
        threads.JoinAll(HangTimeout);
    }
}
