using System.Runtime.CompilerServices;
using CowEngine.Interop;
using CowEngine.Tests.Support;
using CowEngine.TestSupport;

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

    private sealed class Holder
    {
        public int Value = 1;
    }

    [Fact]
    public void NullFieldAccess_AfterEngineExists_IsCatchableEveryTime_OnDedicatedThread()
    {
        RunOnDedicatedThread(CreateEngineWithResolvedFault(), () => AssertNullReferencesAreCaught(() => _ = ReadField(null)));
    }

    [Fact]
    public async Task NullFieldAccess_AfterEngineExists_IsCatchableEveryTime_OnThreadPool()
    {
        using var engine = CreateEngineWithResolvedFault();

        // Several work items, so more than one pool thread takes part.
        Task[] workers = Enumerable.Range(0, 4)
            .Select(_ => Task.Run(() => AssertNullReferencesAreCaught(() => _ = ReadField(null)), TestContext.Current.CancellationToken))
            .ToArray();
        // The workers never touch the engine's memory, so disposing it after a timeout is safe.
        await Task.WhenAll(workers).WaitAsync(TestThreads.DefaultTimeout, TestContext.Current.CancellationToken);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(0x10)]
    [InlineData(0x100)]
    [InlineData(0xFF8)]
    public void UnsafeReadOfNullOrSmallAddress_AfterEngineExists_IsNullReferenceException(long address)
    {
        RunOnDedicatedThread(CreateEngineWithResolvedFault(), () => AssertNullReferencesAreCaught(() => ReadAddress((nint)address)));
    }

    [Fact]
    public void UnsafeWriteToNull_AfterEngineExists_IsNullReferenceException()
    {
        // A write fault, but outside the arena: the handler inspects every write fault and must pass
        // this one on untouched.
        RunOnDedicatedThread(CreateEngineWithResolvedFault(), () => AssertNullReferencesAreCaught(() => WriteAddress(0x20)));
    }

    [Fact]
    public unsafe void SignalMask_IsUnchangedByCopyOnWriteFaults()
    {
        var engine = new CowMemoryEngine();
        CowView region = engine.CreateRegion(4 * PageSize); // disposed with the engine

        RunOnDedicatedThread(engine, () =>
        {
            var written = new byte[4];
            for (int i = 0; i < 100; i++)
            {
                using CowView snapshot = region.Snapshot(); // every page shared: the next write faults
                int page = i % 4;
                byte[] before = CurrentThreadSignalMask();
                long faultsBefore = region.GetStats().WriteFaults;

                region.Pointer[page * PageSize] = (byte)(i + 1);

                byte[] after = CurrentThreadSignalMask();
                Assert.True(region.GetStats().WriteFaults > faultsBefore, "the write did not fault: the test would test nothing");
                Assert.Equal(before, after);
                Assert.Equal(written[page], snapshot.Pointer[page * PageSize]);
                written[page] = (byte)(i + 1);
            }
        });
    }

    /// <summary>
    /// The runtime suspends threads for a garbage collection with a signal, and a thread inside the
    /// engine's SIGSEGV handler (every signal blocked) cannot be suspended until the handler returns:
    /// if the handler ever waited for something a suspended thread holds, the process would
    /// deadlock. Here collections are started again and again while two writers take thousands of
    /// copy-on-write faults; the writers go on until at least 1,000 collections have run, 100 of them
    /// requested while a fault was being resolved (the engine's faults-in-flight counter was not 0),
    /// so the race this test claims to test has been run that often when it passes.
    /// </summary>
    /// <remarks>
    /// <para>The collector paces itself: after each collection it waits until a writer has written
    /// another page. A bare <c>while (true) GC.Collect();</c> starves every other managed thread on
    /// this 2-core VM - the runtime resumes them after a collection and suspends them again before
    /// most have run (writers measured at ~1 % of a core, a <c>Thread.Sleep(1000)</c> returning after
    /// 9 s, with or without the engine; docs/reliability.md) - so the writers' finishing time was a
    /// lottery, and this test once timed out and then disposed the region under a running writer.</para>
    /// <para>Runs in a child process: a real deadlock would freeze every managed thread of the test
    /// host, the one that waits for the writers included. The parent then takes the child's native
    /// stacks and kills it.</para>
    /// </remarks>
    [Fact]
    public async Task GarbageCollections_DuringThousandsOfCopyOnWriteFaults_DoNotDeadlock()
    {
        if (!IsolatedTest.IsChildFor(nameof(GarbageCollections_DuringThousandsOfCopyOnWriteFaults_DoNotDeadlock)))
        {
            await IsolatedTest.RunAndAssertPassedAsync(typeof(RuntimeInteropTests),
                nameof(GarbageCollections_DuringThousandsOfCopyOnWriteFaults_DoNotDeadlock), 2 * TestThreads.DefaultTimeout);
            return;
        }
        const int Writers = 2, Rounds = 60, Pages = 32, MinimumCollections = 1_000, MinimumDuringFaults = 100;
        var engine = new CowMemoryEngine(new CowEngineOptions { FaultAroundPages = 1 }); // a fault per page written
        using var threads = new TestThreads(engine);
        var regions = Enumerable.Range(0, Writers).Select(_ => threads.Own(engine.CreateRegion(Pages * PageSize))).ToArray();
        long pagesWritten = 0, collections = 0, collectionsDuringFaults = 0;
        int writersLeft = Writers;

        threads.Start("GC.Collect loop", () =>
        {
            long seen = -1;
            while (Volatile.Read(ref writersLeft) > 0)
            {
                long written = Interlocked.Read(ref pagesWritten);
                if (written == seen)
                {
                    Thread.Yield(); // let the writers run: see the remarks
                    continue;
                }
                seen = written;
                if (FaultsInFlight(engine) != 0)
                    Interlocked.Increment(ref collectionsDuringFaults);
                GC.Collect();
                Interlocked.Increment(ref collections);
            }
        });
        foreach (CowView region in regions)
        {
            threads.Start($"COW writer {Array.IndexOf(regions, region)}", () =>
            {
                try
                {
                    SnapshotAndWriteRounds(region, Rounds, allocateGarbage: true, () => Interlocked.Increment(ref pagesWritten),
                        keepGoing: () => Interlocked.Read(ref collections) < MinimumCollections ||
                                         Interlocked.Read(ref collectionsDuringFaults) < MinimumDuringFaults);
                }
                finally
                {
                    Interlocked.Decrement(ref writersLeft);
                }
            });
        }
        threads.JoinAll();

        CowEngineStats stats = engine.GetStats();
        string summary = $"{collections} collections ({collectionsDuringFaults} requested while a fault was in flight), " +
                         $"{pagesWritten} pages written, {stats.CopyFaults} copy faults";
        TestContext.Current.TestOutputHelper?.WriteLine(summary);
        Console.WriteLine(summary); // for the parent's report
        // Every page of every round faulted once and was copied (the snapshot shared it).
        Assert.Equal(Interlocked.Read(ref pagesWritten), stats.CopyFaults);
        Assert.True(collections >= MinimumCollections && collectionsDuringFaults >= MinimumDuringFaults, summary);
    }

    private static unsafe uint FaultsInFlight(CowMemoryEngine engine) => Volatile.Read(ref engine.Handle.Table->FaultsInFlight);

    [Fact]
    public void Faults_FromSeveralEnginesAtOnce_AreEachResolvedInTheirOwnEngine()
    {
        const int Engines = 3, Rounds = 50, Pages = 16;
        var engines = Enumerable.Range(0, Engines).Select(_ => new CowMemoryEngine(new CowEngineOptions { FaultAroundPages = 1 })).ToArray();
        using var threads = new TestThreads(engines);
        var regions = engines.Select(e => e.CreateRegion(Pages * PageSize)).ToArray();
        for (int i = 0; i < Engines; i++)
        {
            CowView region = regions[i];
            threads.Start($"engine {i} writer", () => SnapshotAndWriteRounds(region, Rounds, allocateGarbage: false));
        }
        threads.JoinAll();

        foreach (CowMemoryEngine engine in engines)
            Assert.Equal(Rounds * Pages, engine.GetStats().CopyFaults);
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
        byte[] maskBefore = CurrentThreadSignalMask();
        Assert.False(IsBlocked(maskBefore, SigSegv), "SIGSEGV was blocked before the test started");
        for (int i = 0; i < repetitions; i++)
        {
            Assert.Throws<NullReferenceException>(fault);
            byte[] maskAfter = CurrentThreadSignalMask();
            if (!maskAfter.AsSpan().SequenceEqual(maskBefore))
                Assert.Fail($"after NullReferenceException #{i + 1} the signal mask is {Convert.ToHexString(maskAfter, 0, 8)}, was {Convert.ToHexString(maskBefore, 0, 8)}");
        }
    }

    /// <summary>Each round: snapshot, write every page (one copy fault each), check both views, dispose.</summary>
    /// <param name="keepGoing">Asked after the last of <paramref name="rounds"/>: whether to do one more round.</param>
    private static unsafe void SnapshotAndWriteRounds(CowView region, int rounds, bool allocateGarbage, Action? afterEachPage = null,
                                                      Func<bool>? keepGoing = null)
    {
        long pages = region.PageCount;
        for (int round = 1; round <= rounds || (keepGoing?.Invoke() ?? false); round++)
        {
            using CowView snapshot = region.Snapshot();
            for (long page = 0; page < pages; page++)
            {
                long* slot = (long*)(region.Pointer + page * PageSize);
                Assert.Equal(round - 1, *slot);
                *slot = round;
                if (allocateGarbage)
                    _ = new byte[256]; // give the collector something to do, and allocation points to suspend at
                afterEachPage?.Invoke();
            }
            for (long page = 0; page < pages; page++)
            {
                Assert.Equal(round - 1, *(long*)(snapshot.Pointer + page * PageSize));
                Assert.Equal(round, *(long*)(region.Pointer + page * PageSize));
            }
        }
        // Callers keep the region alive (TestThreads holds the thread's delegate); this states that
        // the region must stay reachable until its last dereference above.
        GC.KeepAlive(region);
    }

    /// <summary>The calling thread's blocked-signal mask, as glibc's 128-byte sigset_t.</summary>
    private static unsafe byte[] CurrentThreadSignalMask()
    {
        byte* set = stackalloc byte[LibC.SigsetBytes];
        new Span<byte>(set, LibC.SigsetBytes).Clear();
        int error = LibC.PthreadSigmask(LibC.SigBlock, null, set);
        if (error != 0)
            throw new InvalidOperationException($"pthread_sigmask failed with error {error}");
        return new Span<byte>(set, LibC.SigsetBytes).ToArray();
    }

    private static bool IsBlocked(byte[] mask, int signal) => (mask[(signal - 1) / 8] & (1 << ((signal - 1) % 8))) != 0;

    /// <summary>Runs the action on a thread of its own, which owns the engine (see <see cref="TestThreads"/>).</summary>
    private static void RunOnDedicatedThread(CowMemoryEngine engine, Action action)
    {
        using var threads = new TestThreads(engine);
        threads.Start("dedicated test thread", action);
        threads.JoinAll();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int ReadField(Holder? holder) => holder!.Value;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe void ReadAddress(nint address) => _ = Volatile.Read(ref *(int*)address);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe void WriteAddress(nint address) => Volatile.Write(ref *(int*)address, 1);
}
