using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CowEngine.Tests.Support;
using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// <see cref="CowViewGroup"/> and <see cref="CowGroupSnapshot"/>: several views (regions and typed
/// collections) snapshotted at one consistent cut with writer threads running, restored, compared and
/// disposed together, with a payload copied by value; checked against a model, and every refusal
/// (bad arguments, a disposed member, the mapping budget) checked to leave nothing half-made.
/// </summary>
public sealed unsafe class ViewGroupTests
{
    private const int PageSize = CowMemoryEngine.PageSize;

    [StructLayout(LayoutKind.Sequential)]
    public struct Registers
    {
        public ushort PC;
        public byte A, X, Y, Flags;
        public long Cycles;
    }

    // ---- the cut, with writer threads ----

    /// <summary>Group snapshots the snapshotting thread takes while the writers run.</summary>
    private const int CutQuota = 150;

    /// <summary>Each writer does at least this many rounds, however fast the snapshots come.</summary>
    private const int MinimumRoundsPerWriter = 20_000;

    /// <summary>
    /// The group is A (a <see cref="CowArray{T}"/>), L (a <see cref="CowList{T}"/>) and B (a region).
    /// Writers increment their own counter in one member and then in another: half of them A then B,
    /// half B then A; one more writes its counter in A and then adds an element to L. In every
    /// consistent cut the counter written second is at most the one written first, and at most one
    /// behind it (the list's count likewise). Checked with the group snapshot replaced by
    /// CowView.Snapshot per member, in member order, the list's check switched off: the A/B writers
    /// broke it by cut 1 to 4 in each of 8 runs (both mechanisms, both writer counts), in both
    /// directions. (Members snapshotted one after another leave a window of L's snapshot between A's
    /// and B's; with A and B adjacent it was caught only once in 600 cuts: a writer's first write after
    /// a cut is a copy fault, slower than the next member's snapshot.)
    /// Every snapshot is checked again when it is disposed: a cut never changes afterwards.
    /// </summary>
    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void GroupSnapshots_TakenWhileThreadsWriteAcrossMembers_AreConsistentCuts(int writers)
    {
        var engine = NewEngine();
        using var threads = new TestThreads(engine); // owns the engine: nothing is disposed under a hung writer
        var array = new CowArray<long>(engine, 64 * 512); // 64 pages of longs
        CowView region = engine.CreateRegion(64 * PageSize);
        var list = new CowList<long>(engine, capacity: 1_000_000);
        var group = new CowViewGroup(array.View, list.View, region);
        var progress = new WriterProgress(writers + 1);
        int stop = 0;
        var written = new long[writers + 1];

        // Writer w's counter: element w * 512 of the array (page w), long w * 512 of the region.
        long* arrayBase = (long*)array.View.Pointer, regionBase = (long*)region.Pointer;
        for (int w = 0; w < writers; w++)
        {
            int writer = w;
            bool arrayFirst = writer % 2 == 0;
            threads.Start($"writer {writer} ({(arrayFirst ? "A then B" : "B then A")})", () =>
            {
                long* first = (arrayFirst ? arrayBase : regionBase) + writer * 512;
                long* second = (arrayFirst ? regionBase : arrayBase) + writer * 512;
                long n = 0;
                try
                {
                    while (Volatile.Read(ref stop) == 0 || n < MinimumRoundsPerWriter)
                    {
                        n++;
                        Volatile.Write(ref *first, n);
                        Volatile.Write(ref *second, n);
                        progress.Report(writer, n);
                    }
                }
                finally
                {
                    written[writer] = n;
                    progress.Finished(writer);
                }
            });
        }
        // The list writer: its counter in the array's last page, then one more element in the list.
        long* listCounter = arrayBase + 63 * 512;
        threads.Start("list writer (A then C)", () =>
        {
            long n = 0;
            try
            {
                while ((Volatile.Read(ref stop) == 0 || n < MinimumRoundsPerWriter) && n < list.Capacity)
                {
                    n++;
                    Volatile.Write(ref *listCounter, n);
                    list.Add(n);
                    progress.Report(writers, n);
                }
            }
            finally
            {
                written[writers] = n;
                progress.Finished(writers);
            }
        });

        long[] Cut(CowGroupSnapshot snapshot)
        {
            var values = new long[2 * writers + 2];
            for (int w = 0; w < writers; w++)
            {
                values[2 * w] = ((long*)snapshot[0].Pointer)[w * 512];
                values[2 * w + 1] = ((long*)snapshot[2].Pointer)[w * 512];
            }
            values[2 * writers] = ((long*)snapshot[0].Pointer)[63 * 512];
            values[2 * writers + 1] = *(long*)snapshot[1].Pointer; // the list's count
            return values;
        }

        var kept = new Queue<(CowGroupSnapshot Snapshot, long[] Values, int Number)>();
        try
        {
            for (int i = 0; i < CutQuota; i++)
            {
                CowGroupSnapshot snapshot = group.Snapshot();
                long[] values = Cut(snapshot);
                for (int w = 0; w < writers; w++)
                {
                    (long a, long b) = (values[2 * w], values[2 * w + 1]);
                    (long first, long second) = w % 2 == 0 ? (a, b) : (b, a);
                    Assert.True(second <= first && first <= second + 1,
                        $"cut {i}, writer {w}: the member written first holds {first}, the member written second {second}: not a consistent cut");
                }
                long counter = values[2 * writers], count = values[2 * writers + 1];
                Assert.True(count <= counter && counter <= count + 1, $"cut {i}: the list writer's counter is {counter}, the list's count {count}");
                kept.Enqueue((snapshot, values, i));
                if (kept.Count > 4)
                    CheckAndDispose(kept.Dequeue());
                progress.WaitForEveryWriterToWriteAfterNow();
            }
        }
        finally
        {
            Volatile.Write(ref stop, 1);
            threads.JoinAll();
        }
        while (kept.Count > 0)
            CheckAndDispose(kept.Dequeue());

        for (int w = 0; w < writers; w++)
        {
            Assert.Equal(written[w], arrayBase[w * 512]);
            Assert.Equal(written[w], regionBase[w * 512]);
        }
        Assert.Equal(written[writers], list.Count);
        Assert.Equal(written[writers], list[list.Count - 1]);
        Assert.Equal(CutQuota * 3, engine.GetStats().Snapshots);

        void CheckAndDispose((CowGroupSnapshot Snapshot, long[] Values, int Number) entry)
        {
            Assert.Equal(entry.Values, Cut(entry.Snapshot));
            entry.Snapshot.Dispose();
        }
    }

    // ---- payload ----

    [Fact]
    public void Payload_IsCopiedByValueAtTheSnapshot_AndWrittenBackByRestore()
    {
        using CowMemoryEngine engine = NewEngine();
        using var ram = new CowArray<byte>(engine, 64 * 1024);
        using CowView vram = engine.CreateRegion(4 * PageSize);
        var machine = new CowViewGroup(ram.View, vram);
        var cpu = new Registers { PC = 0x100, A = 1, X = 2, Y = 3, Flags = 0x80, Cycles = 123_456_789_012 };
        ram[10] = 10;
        vram.AsSpan()[5] = 5;

        using CowGroupSnapshot saved = machine.Snapshot(cpu);
        Registers taken = cpu;
        cpu.PC = 0x200;
        cpu.Cycles++;
        ram[10] = 99;
        vram.AsSpan()[5] = 99;

        Assert.True(saved.HasPayload);
        Assert.Equal(typeof(Registers), saved.PayloadType);
        Assert.Equal(taken, saved.GetPayload<Registers>()); // the value at the call, not the variable
        machine.RestoreTo(saved, out cpu);
        Assert.Equal(taken, cpu);
        Assert.Equal(10, ram[10]);
        Assert.Equal(5, vram.AsSpan()[5]);

        // A snapshot without a payload says so; a payload of another type is refused, and nothing is restored.
        using CowGroupSnapshot plain = machine.Snapshot();
        Assert.False(plain.HasPayload);
        Assert.Null(plain.PayloadType);
        ram[10] = 77;
        var none = Assert.Throws<InvalidOperationException>(() => machine.RestoreTo(plain, out Registers _));
        Assert.Contains("no payload", none.Message);
        var wrong = Assert.Throws<InvalidOperationException>(() => machine.RestoreTo(saved, out long _));
        Assert.Contains(nameof(Registers), wrong.Message);
        Assert.Equal(77, ram[10]);
        machine.RestoreTo(plain);
        Assert.Equal(10, ram[10]);
    }

    [Fact]
    public void Payload_OfManySizes_RoundTrips()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView view = engine.CreateRegion(PageSize);
        var group = new CowViewGroup(view);
        using (CowGroupSnapshot s = group.Snapshot((byte)0xAB))
            Assert.Equal((byte)0xAB, s.GetPayload<byte>());
        using (CowGroupSnapshot s = group.Snapshot(Guid.Parse("0f8fad5b-d9cb-469f-a165-70867728950e")))
            Assert.Equal(Guid.Parse("0f8fad5b-d9cb-469f-a165-70867728950e"), s.GetPayload<Guid>());
        var big = new Big();
        for (int i = 0; i < 512; i++)
            big.Words[i] = (ulong)i * 0x9E3779B97F4A7C15UL;
        using (CowGroupSnapshot s = group.Snapshot(big))
        {
            Big back = s.GetPayload<Big>();
            for (int i = 0; i < 512; i++)
                Assert.Equal(big.Words[i], back.Words[i]);
        }
    }

    [InlineArray(512)]
    private struct Words512
    {
        private ulong _element;
    }

    private struct Big
    {
        public Words512 Words;
    }

    // ---- refusals ----

    [Fact]
    public void BadMembers_AreRefusedWithTheReason()
    {
        using CowMemoryEngine engine = NewEngine(), other = NewSmallEngine();
        using CowView a = engine.CreateRegion(PageSize), b = engine.CreateRegion(2 * PageSize), foreign = other.CreateRegion(PageSize);

        Assert.Contains("at least one", Assert.Throws<ArgumentException>(() => new CowViewGroup()).Message);
        Assert.Contains("another engine", Assert.Throws<ArgumentException>(() => new CowViewGroup(a, foreign)).Message);
        Assert.Contains("already in the group", Assert.Throws<ArgumentException>(() => new CowViewGroup(a, b, a)).Message);
        Assert.Throws<ArgumentNullException>(() => new CowViewGroup(a, null!));
        Assert.Throws<ArgumentNullException>(() => new CowViewGroup((IEnumerable<CowView>)null!));

        CowView gone = engine.CreateRegion(PageSize);
        gone.Dispose();
        Assert.Contains("Member 1", Assert.Throws<ObjectDisposedException>(() => new CowViewGroup(a, gone)).Message);

        // A member disposed after the group was made: Snapshot refuses, and makes no view.
        CowView later = engine.CreateRegion(PageSize);
        var group = new CowViewGroup(a, later);
        later.Dispose();
        long views = engine.GetStats().LiveViews;
        Assert.Contains("Member 1", Assert.Throws<ObjectDisposedException>(() => group.Snapshot()).Message);
        Assert.Equal(views, engine.GetStats().LiveViews);
        Assert.Equal(0, engine.GetStats().Snapshots);
    }

    [Fact]
    public void RestoreAndCompare_WithAMismatchedSnapshot_AreRefusedBeforeAnythingChanges()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView a = engine.CreateRegion(PageSize), b = engine.CreateRegion(2 * PageSize), c = engine.CreateRegion(PageSize);
        var ab = new CowViewGroup(a, b);
        a.AsSpan()[0] = 1;
        b.AsSpan()[0] = 1;
        using CowGroupSnapshot saved = ab.Snapshot();
        using CowGroupSnapshot ofA = new CowViewGroup(a).Snapshot();
        using CowGroupSnapshot sizes = new CowViewGroup(a, c).Snapshot(); // member 1: 1 page, not 2
        a.AsSpan()[0] = 2;
        b.AsSpan()[0] = 2;

        Assert.Contains("1 members", Assert.Throws<ArgumentException>(() => ab.RestoreTo(ofA)).Message);
        Assert.Contains("Member 1 differs in size", Assert.Throws<ArgumentException>(() => ab.RestoreTo(sizes)).Message);
        Assert.Throws<ArgumentException>(() => ab.GetChangedPages(sizes));
        Assert.Throws<ArgumentException>(() => saved.GetChangedPages(ofA));
        Assert.Throws<ArgumentNullException>(() => ab.RestoreTo(null!));
        Assert.Equal(2, a.AsSpan()[0]); // nothing was restored, not even member 0
        Assert.Equal(2, b.AsSpan()[0]);

        using (CowMemoryEngine other = NewSmallEngine())
        using (CowView x = other.CreateRegion(PageSize), y = other.CreateRegion(2 * PageSize))
        using (CowGroupSnapshot foreign = new CowViewGroup(x, y).Snapshot())
            Assert.Contains("another engine", Assert.Throws<ArgumentException>(() => ab.RestoreTo(foreign)).Message);

        // A member snapshot disposed on its own, or the whole group snapshot disposed.
        CowGroupSnapshot partly = ab.Snapshot();
        partly[1].Dispose();
        Assert.Contains("Member 1 of the group snapshot", Assert.Throws<ObjectDisposedException>(() => ab.RestoreTo(partly)).Message);
        partly.Dispose();
        Assert.True(partly.IsDisposed);
        Assert.True(partly[0].IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => ab.RestoreTo(partly));
        Assert.Throws<ObjectDisposedException>(() => ab.GetChangedPages(partly));
        Assert.Throws<ObjectDisposedException>(() => partly.GetChangedPages(saved));
        partly.Dispose(); // twice: nothing
        Assert.Equal(2, a.AsSpan()[0]);

        ab.RestoreTo(saved);
        Assert.Equal(1, a.AsSpan()[0]);
        Assert.Equal(1, b.AsSpan()[0]);
    }

    /// <summary>
    /// Three regions of one mapping each use 3 + 3 gaps + the pool window = 7 mappings; a budget of
    /// 12 leaves room for one snapshot (2 more), not for three (6), and nothing can be evicted to make
    /// room. The refused group snapshot must leave no view made, every member's contents and dirty
    /// pages as they were, and a page prepared for writing (pinned) writable.
    /// </summary>
    [Fact]
    public void GroupSnapshot_OverTheMappingBudget_IsRefusedWhole_AndLeavesNothingHalfMade()
    {
        using CowMemoryEngine engine = NewEngine(mappingBudget: 12);
        using CowView a = engine.CreateRegion(4 * PageSize), b = engine.CreateRegion(4 * PageSize), c = engine.CreateRegion(4 * PageSize);
        a.AsSpan().Fill(0x0A);
        b.AsSpan().Fill(0x0B);
        c.AsSpan().Fill(0x0C);
        foreach (CowView v in new[] { a, b, c })
            v.TakeDirtyPages(); // write-protected: the next write is seen
        a.AsSpan(PageSize, 1)[0] = 0xA1;      // page 1 of a is dirty
        c.PrepareForWrite(2 * PageSize, 1);   // page 2 of c is pinned writable
        var group = new CowViewGroup(a, b, c);
        CowEngineStats before = engine.GetStats();

        var refused = Assert.Throws<CowMappingBudgetExceededException>(() => group.Snapshot(new Registers { PC = 1 }));
        Assert.Contains("3 views at one cut", refused.Message);

        CowEngineStats after = engine.GetStats();
        Assert.Equal(before.LiveViews, after.LiveViews);
        Assert.Equal(before.Snapshots, after.Snapshots);
        byte[] expectedA = Enumerable.Repeat((byte)0x0A, 4 * PageSize).ToArray();
        expectedA[PageSize] = 0xA1;
        Assert.True(a.AsSpan().SequenceEqual(expectedA));
        Assert.False(b.AsSpan().ContainsAnyExcept((byte)0x0B));
        Assert.False(c.AsSpan().ContainsAnyExcept((byte)0x0C));
        Assert.Equal(1, c.GetStats().WritablePages); // the pinned page, writable again
        Assert.Equal([1L], a.TakeDirtyPages().ToArray()); // still reported
        a.AsSpan()[0] = 0xA0; // members stay writable
        Assert.Equal(0xA0, a.AsSpan()[0]);

        using CowGroupSnapshot one = new CowViewGroup(b).Snapshot(); // a group of one fits
        Assert.Equal(0x0B, one[0].AsSpan()[3]);
        Assert.Equal(before.Snapshots + 1, engine.GetStats().Snapshots);
    }

    // ---- a model of restore, compare, branch and dispose ----

    private const int ModelSteps = 600;
    private const int MaxKept = 6;

    private sealed class ModelState(CowView[] views, byte[][] bytes, Registers payload)
    {
        public CowView[] Views { get; } = views;
        public byte[][] Bytes { get; } = bytes;
        public Registers Payload { get; set; } = payload;
        public CowGroupSnapshot? Snapshot { get; init; }
    }

    /// <summary>
    /// Random writes (to the live members and to kept snapshots, which are writable), list appends,
    /// group snapshots with a payload, snapshots of a snapshot group (branches), restores, comparisons
    /// and disposals, against a model that is one byte array per member per state. Every page is
    /// written before the first snapshot, so a comparison is exact: the pages whose bytes differ.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void RandomGroupOperations_AgreeWithTheModel(int seed)
    {
        using CowMemoryEngine engine = NewEngine();
        var random = new Random(seed);
        using var array = new CowArray<ulong>(engine, 3_000);  // 6 pages
        using var list = new CowList<int>(engine, 5_000);       // 5 pages, count at offset 0
        using CowView region = engine.CreateRegion(600 * PageSize); // across a 2 MiB segment edge
        CowView[] members = [array.View, list.View, region];
        var group = new CowViewGroup(members);
        foreach (CowView member in members)
            random.NextBytes(member.AsSpan());
        list.Clear();
        var live = new ModelState(members, members.Select(m => m.AsSpan().ToArray()).ToArray(), default);
        var kept = new List<ModelState>();
        try
        {
            for (int step = 0; step < ModelSteps; step++)
            {
                int choice = random.Next(100);
                if (choice < 35)
                {
                    ModelState target = kept.Count > 0 && random.Next(4) == 0 ? kept[random.Next(kept.Count)] : live;
                    Write(target, random);
                }
                else if (choice < 45)
                {
                    int count = (int)BitConverter.ToInt64(live.Bytes[1]);
                    if (count < list.Capacity)
                    {
                        int value = random.Next();
                        list.Add(value);
                        BitConverter.TryWriteBytes(live.Bytes[1].AsSpan(64 + 4 * count), value);
                        BitConverter.TryWriteBytes(live.Bytes[1].AsSpan(0, 8), (long)count + 1);
                    }
                }
                else if (choice < 60 && kept.Count < MaxKept)
                {
                    live.Payload = new Registers { PC = (ushort)step, Cycles = step * 1000L, A = (byte)seed };
                    bool branch = kept.Count > 0 && random.Next(3) == 0;
                    ModelState source = branch ? kept[random.Next(kept.Count)] : live;
                    CowGroupSnapshot snapshot = branch ? new CowViewGroup(source.Views).Snapshot(source.Payload) : group.Snapshot(live.Payload);
                    kept.Add(new ModelState(snapshot.Members.ToArray(), source.Bytes.Select(b => b.ToArray()).ToArray(), source.Payload) { Snapshot = snapshot });
                }
                else if (choice < 75 && kept.Count > 0)
                {
                    ModelState source = kept[random.Next(kept.Count)];
                    group.RestoreTo(source.Snapshot!, out Registers payload);
                    Assert.Equal(source.Payload, payload);
                    for (int m = 0; m < members.Length; m++)
                        source.Bytes[m].CopyTo(live.Bytes[m], 0);
                    live.Payload = payload;
                }
                else if (choice < 88 && kept.Count > 0)
                {
                    ModelState other = kept[random.Next(kept.Count)];
                    bool live2 = random.Next(2) == 0;
                    ModelState first = live2 ? live : kept[random.Next(kept.Count)];
                    IReadOnlyList<CowPageSet> changed = live2 ? group.GetChangedPages(other.Snapshot!) : first.Snapshot!.GetChangedPages(other.Snapshot!);
                    for (int m = 0; m < members.Length; m++)
                        Assert.Equal(DifferingPages(first.Bytes[m], other.Bytes[m]), changed[m].ToArray());
                }
                else if (kept.Count > 0)
                {
                    int index = random.Next(kept.Count);
                    kept[index].Snapshot!.Dispose();
                    Assert.All(kept[index].Views, v => Assert.True(v.IsDisposed));
                    kept.RemoveAt(index);
                }
                if (step % 50 == 0 || step == ModelSteps - 1)
                    foreach (ModelState state in kept.Append(live))
                        CheckContents(state, step);
            }
            Assert.Equal(members.Length * (1 + kept.Count), engine.GetStats().LiveViews);
        }
        finally
        {
            foreach (ModelState state in kept)
                state.Snapshot!.Dispose();
        }
        Assert.Equal(members.Length, engine.GetStats().LiveViews);
    }

    private static void Write(ModelState state, Random random)
    {
        int m = random.Next(state.Views.Length);
        int length = 1 + random.Next(64);
        int offset = random.Next(state.Bytes[m].Length - length);
        if (m == 1 && offset < 8)
            offset = 8; // the list's count stays a count
        var bytes = new byte[length];
        random.NextBytes(bytes);
        bytes.CopyTo(state.Views[m].AsSpan(offset, length));
        bytes.CopyTo(state.Bytes[m], offset);
    }

    private static void CheckContents(ModelState state, int step)
    {
        for (int m = 0; m < state.Views.Length; m++)
        {
            ReadOnlySpan<byte> seen = state.Views[m].AsSpan(), want = state.Bytes[m];
            if (!seen.SequenceEqual(want))
            {
                int at = seen.CommonPrefixLength(want);
                Assert.Fail($"step {step}, member {m}{(state.Snapshot is null ? " (live)" : "")}: byte {at} is {seen[at]}, the model says {want[at]}");
            }
        }
    }

    private static long[] DifferingPages(byte[] a, byte[] b)
    {
        var pages = new List<long>();
        for (int p = 0; p < a.Length / PageSize; p++)
            if (!a.AsSpan(p * PageSize, PageSize).SequenceEqual(b.AsSpan(p * PageSize, PageSize)))
                pages.Add(p);
        return pages.ToArray();
    }

    // ---- helpers ----

    /// <summary>
    /// The handshake between writers and the snapshotting thread (as in ConcurrencyTests): writers
    /// report each round; the snapshotting thread waits until each has completed a round that began
    /// after the wait began, so every cut is followed by writes to the pages it shares.
    /// </summary>
    private sealed class WriterProgress(int writers)
    {
        private const int Stride = 8; // one cache line per writer
        private readonly long[] _counts = new long[writers * Stride];

        public void Report(int writer, long count) => Volatile.Write(ref _counts[writer * Stride], count);

        public void Finished(int writer) => Volatile.Write(ref _counts[writer * Stride], long.MaxValue);

        public void WaitForEveryWriterToWriteAfterNow()
        {
            long[] seen = new long[writers];
            for (int w = 0; w < writers; w++)
                seen[w] = Volatile.Read(ref _counts[w * Stride]);
            DateTime deadline = DateTime.UtcNow + TestThreads.DefaultTimeout;
            for (int w = 0; w < writers; w++)
            {
                var spinner = new SpinWait();
                while (seen[w] != long.MaxValue && Volatile.Read(ref _counts[w * Stride]) < seen[w] + 2)
                {
                    if (DateTime.UtcNow > deadline)
                        throw new TimeoutException($"writer {w} made no progress (hang detector)");
                    spinner.SpinOnce(sleep1Threshold: -1);
                }
            }
        }
    }
}
