using System.Runtime.CompilerServices;
using CowEngine.Interop;
using CowEngine.Tests.Support;

namespace CowEngine.Tests;

/// <summary>
/// The engine's SIGSEGV handler shares the signal with the .NET runtime: faults that are not writes
/// to a live view must reach the runtime exactly as before (NullReferenceException stays catchable,
/// the thread's signal mask is not changed), and the handler must not get in the way of the GC.
/// </summary>
public sealed class RuntimeInteropTests
{
    private const int PageSize = CowMemoryEngine.PageSize;
    private const int Repetitions = 1_000;
    private const int SigSegv = 11;

    /// <summary>Hang detector for the multi-threaded tests, not a timing assertion.</summary>
    private static readonly TimeSpan HangTimeout = TimeSpan.FromSeconds(60);

    private sealed class Holder
    {
        public int Value = 1;
    }

    [Fact]
    public void NullFieldAccess_AfterEngineExists_IsCatchableEveryTime_OnDedicatedThread()
    {
        using var engine = CreateEngineWithResolvedFault();

        RunOnDedicatedThread(() => AssertNullReferencesAreCaught(() => _ = ReadField(null)));
    }

    [Fact]
    public async Task NullFieldAccess_AfterEngineExists_IsCatchableEveryTime_OnThreadPool()
    {
        using var engine = CreateEngineWithResolvedFault();

        // Several work items, so more than one pool thread takes part.
        Task[] workers = Enumerable.Range(0, 4)
            .Select(_ => Task.Run(() => AssertNullReferencesAreCaught(() => _ = ReadField(null)), TestContext.Current.CancellationToken))
            .ToArray();
        await Task.WhenAll(workers).WaitAsync(HangTimeout, TestContext.Current.CancellationToken);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(0x10)]
    [InlineData(0x100)]
    [InlineData(0xFF8)]
    public void UnsafeReadOfNullOrSmallAddress_AfterEngineExists_IsNullReferenceException(long address)
    {
        using var engine = CreateEngineWithResolvedFault();

        RunOnDedicatedThread(() => AssertNullReferencesAreCaught(() => ReadAddress((nint)address)));
    }

    [Fact]
    public void UnsafeWriteToNull_AfterEngineExists_IsNullReferenceException()
    {
        // A write fault, but outside the arena: the handler inspects every write fault and must pass
        // this one on untouched.
        using var engine = CreateEngineWithResolvedFault();

        RunOnDedicatedThread(() => AssertNullReferencesAreCaught(() => WriteAddress(0x20)));
    }

    [Fact]
    public unsafe void SignalMask_IsUnchangedByCopyOnWriteFaults()
    {
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(4 * PageSize);

        RunOnDedicatedThread(() =>
        {
            var written = new byte[4];
            for (int i = 0; i < 100; i++)
            {
                using CowView snapshot = region.Snapshot(); // every page shared: the next write faults
                int page = i % 4;
                byte[] before = LibC.CurrentThreadSignalMask();
                long faultsBefore = region.GetStats().WriteFaults;

                region.Pointer[page * PageSize] = (byte)(i + 1);

                byte[] after = LibC.CurrentThreadSignalMask();
                Assert.True(region.GetStats().WriteFaults > faultsBefore, "the write did not fault: the test would test nothing");
                Assert.Equal(before, after);
                Assert.Equal(written[page], snapshot.Pointer[page * PageSize]);
                written[page] = (byte)(i + 1);
            }
        });
    }

    [Fact]
    public void GarbageCollections_DuringThousandsOfCopyOnWriteFaults_DoNotDeadlock()
    {
        using var engine = new CowMemoryEngine();
        const int Writers = 2, Rounds = 60, Pages = 32;
        using var stop = new CancellationTokenSource();
        long collections = 0;
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                Interlocked.Increment(ref collections);
            }
        }) { IsBackground = true, Name = "GC.Collect loop" };

        var failures = new List<Exception>();
        var writers = new Thread[Writers];
        for (int w = 0; w < Writers; w++)
        {
            CowView region = engine.CreateRegion(Pages * PageSize);
            writers[w] = new Thread(() =>
            {
                try
                {
                    SnapshotAndWriteRounds(region, Rounds, allocateGarbage: true);
                }
                catch (Exception e)
                {
                    lock (failures)
                        failures.Add(e);
                }
            }) { IsBackground = true, Name = $"COW writer {w}" };
        }

        collector.Start();
        foreach (Thread writer in writers)
            writer.Start();
        bool finished = writers.All(writer => writer.Join(HangTimeout));
        stop.Cancel();
        bool collectorFinished = collector.Join(HangTimeout);

        Assert.True(finished, "the writers did not finish: a fault and a garbage collection deadlocked");
        Assert.True(collectorFinished, "the GC.Collect loop did not finish");
        Assert.Empty(failures);
        Assert.True(Interlocked.Read(ref collections) > 0);
        Assert.True(engine.GetStats().CopyFaults >= Writers * Rounds * Pages,
            $"expected at least {Writers * Rounds * Pages} copy faults, saw {engine.GetStats().CopyFaults}");
    }

    [Fact]
    public void Faults_FromSeveralEnginesAtOnce_AreEachResolvedInTheirOwnEngine()
    {
        const int Engines = 3, Rounds = 50, Pages = 16;
        var engines = Enumerable.Range(0, Engines).Select(_ => new CowMemoryEngine()).ToArray();
        try
        {
            var regions = engines.Select(e => e.CreateRegion(Pages * PageSize)).ToArray();
            var failures = new List<Exception>();
            var threads = regions.Select((region, i) => new Thread(() =>
            {
                try
                {
                    SnapshotAndWriteRounds(region, Rounds, allocateGarbage: false);
                }
                catch (Exception e)
                {
                    lock (failures)
                        failures.Add(e);
                }
            }) { IsBackground = true, Name = $"engine {i} writer" }).ToArray();

            foreach (Thread thread in threads)
                thread.Start();
            Assert.True(threads.All(thread => thread.Join(HangTimeout)), "a writer did not finish");

            Assert.Empty(failures);
            foreach (CowMemoryEngine engine in engines)
                Assert.Equal(Rounds * Pages, engine.GetStats().CopyFaults);
        }
        finally
        {
            foreach (CowMemoryEngine engine in engines)
                engine.Dispose();
        }
    }

    [Fact]
    public void Handler_AfterEnginesFaultsAndNullReferences_IsStillTheInstalledSigsegvHandler()
    {
        using var engine = CreateEngineWithResolvedFault();
        AssertNullReferencesAreCaught(() => _ = ReadField(null), repetitions: 10);

        Assert.Equal(1, CowNative.HandlerIsCurrent());
    }

    // ---- helpers ----

    /// <summary>An engine whose handler is installed and has resolved a fault already.</summary>
    private static unsafe CowMemoryEngine CreateEngineWithResolvedFault()
    {
        var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(PageSize);
        using CowView snapshot = region.Snapshot();
        region.Pointer[0] = 1;
        Assert.Equal(0, snapshot.Pointer[0]);
        Assert.Equal(1, engine.GetStats().CopyFaults);
        return engine;
    }

    /// <summary>
    /// Provokes a NullReferenceException <paramref name="repetitions"/> times on the calling thread,
    /// checking each is caught and the thread's signal mask (in particular SIGSEGV) is as before.
    /// </summary>
    private static void AssertNullReferencesAreCaught(Action fault, int repetitions = Repetitions)
    {
        byte[] maskBefore = LibC.CurrentThreadSignalMask();
        Assert.False(IsBlocked(maskBefore, SigSegv), "SIGSEGV was blocked before the test started");
        for (int i = 0; i < repetitions; i++)
        {
            Assert.Throws<NullReferenceException>(fault);
            byte[] maskAfter = LibC.CurrentThreadSignalMask();
            if (!maskAfter.AsSpan().SequenceEqual(maskBefore))
                Assert.Fail($"after NullReferenceException #{i + 1} the signal mask is {Convert.ToHexString(maskAfter, 0, 8)}, was {Convert.ToHexString(maskBefore, 0, 8)}");
        }
    }

    /// <summary>Each round: snapshot, write every page (one copy fault each), check both views, dispose.</summary>
    private static unsafe void SnapshotAndWriteRounds(CowView region, int rounds, bool allocateGarbage)
    {
        long pages = region.PageCount;
        for (int round = 1; round <= rounds; round++)
        {
            using CowView snapshot = region.Snapshot();
            for (long page = 0; page < pages; page++)
            {
                long* slot = (long*)(region.Pointer + page * PageSize);
                Assert.Equal(round - 1, *slot);
                *slot = round;
                if (allocateGarbage)
                    _ = new byte[256]; // give the collector something to do, and allocation points to suspend at
            }
            for (long page = 0; page < pages; page++)
            {
                Assert.Equal(round - 1, *(long*)(snapshot.Pointer + page * PageSize));
                Assert.Equal(round, *(long*)(region.Pointer + page * PageSize));
            }
        }
        // The caller's closure is this region's only other reference, and a started thread drops its
        // delegate: without this, a collection between the last Pointer read and the dereference may
        // finalize (dispose) the region under the read - an access violation this test once hit.
        GC.KeepAlive(region);
    }

    private static bool IsBlocked(byte[] mask, int signal) => (mask[(signal - 1) / 8] & (1 << ((signal - 1) % 8))) != 0;

    private static void RunOnDedicatedThread(Action action)
    {
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                action();
            }
            catch (Exception e)
            {
                failure = e;
            }
        }) { IsBackground = true };
        thread.Start();
        Assert.True(thread.Join(HangTimeout), "the thread did not finish");
        if (failure != null)
            throw new Xunit.Sdk.XunitException($"failed on the dedicated thread: {failure}");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int ReadField(Holder? holder) => holder!.Value;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe void ReadAddress(nint address) => _ = Volatile.Read(ref *(int*)address);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe void WriteAddress(nint address) => Volatile.Write(ref *(int*)address, 1);
}
