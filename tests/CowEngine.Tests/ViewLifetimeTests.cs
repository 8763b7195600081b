using System.Runtime.CompilerServices;
using CowEngine.Tests.Support;
using Microsoft.Extensions.Logging;
using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// Issue 14, item 5: the lifetime contract. The engine holds every view it made until the view is
/// disposed (by its own Dispose or by the engine's), so a view never goes to the garbage collector
/// while its engine lives - a class that keeps only <see cref="CowView.Pointer"/> keeps working.
/// Disposing an engine with views still open disposes them and logs a warning; an engine that
/// becomes unreachable with its views is released by the finalizers without harm.
/// </summary>
public sealed class ViewLifetimeTests
{
    private const int PageSize = CowMemoryEngine.PageSize;
    private const int Pages = 64;

    /// <summary>What the emulator did: it kept the view's pointer and nothing else.</summary>
    private sealed unsafe class PointerOnlyMemory
    {
        public byte* Memory;
        public byte* Saved;
    }

    /// <summary>
    /// Runs in a child process: if the engine let the garbage collector have the views, their
    /// finalizers would dispose them and the first access below would end the process.
    /// </summary>
    [Fact]
    public async Task ARegionKeptOnlyThroughItsPointer_SurvivesForcedCollections_AndStaysUsable()
    {
        if (!IsolatedTest.IsChildFor(nameof(ARegionKeptOnlyThroughItsPointer_SurvivesForcedCollections_AndStaysUsable)))
        {
            await IsolatedTest.RunAndAssertPassedAsync(GetType(), nameof(ARegionKeptOnlyThroughItsPointer_SurvivesForcedCollections_AndStaysUsable), TimeSpan.FromSeconds(120));
            return;
        }
        KeptOnlyThroughItsPointer();
    }

    private static unsafe void KeptOnlyThroughItsPointer()
    {
        using CowMemoryEngine engine = NewSmallEngine();
        PointerOnlyMemory holder = MakeViewsKeepingOnlyPointers(engine, out WeakReference region, out WeakReference snapshot);
        for (int round = 0; round < 5; round++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
        }

        Assert.True(region.IsAlive, "the region was collected although its engine lives");
        Assert.True(snapshot.IsAlive, "the snapshot was collected although its engine lives");
        Assert.False(((CowView)region.Target!).IsDisposed);
        Assert.Equal(2, engine.GetStats().LiveViews);
        for (int page = 0; page < Pages; page++)
        {
            Assert.Equal((byte)page, holder.Memory[page * PageSize]);
            holder.Memory[page * PageSize] = (byte)(page + 100); // a copy fault: the snapshot shares the page
        }
        for (int page = 0; page < Pages; page++)
        {
            Assert.Equal((byte)(page + 100), holder.Memory[page * PageSize]);
            Assert.Equal((byte)page, holder.Saved[page * PageSize]);
        }
    }

    [Fact]
    public void DisposingAnEngineWithViewsStillOpen_DisposesThem_AndLogsAWarningNamingHowMany()
    {
        var log = new CapturingLoggerFactory();
        var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = SmallCapacity, LoggerFactory = log });
        CowView region = engine.CreateRegion(Pages * PageSize);
        region.AsSpan().Fill(7);
        CowView snapshot = region.Snapshot();
        CowView ofSnapshot = snapshot.Snapshot();
        CowView disposedEarly = region.Snapshot();
        disposedEarly.Dispose();

        engine.Dispose();

        Assert.True(region.IsDisposed && snapshot.IsDisposed && ofSnapshot.IsDisposed);
        var warning = Assert.Single(log.Entries, e => e.Level >= LogLevel.Warning);
        Assert.Equal(20, warning.EventId);
        Assert.Contains("3 views still open (1 regions, 2 snapshots)", warning.Message);
        Assert.Contains(log.Entries, e => e.EventId == 2 && e.Message.Contains("3 views still live"));
        Assert.Throws<ObjectDisposedException>(() => region.Snapshot());
    }

    [Fact]
    public void DisposingAnEngineWhoseViewsWereAllDisposed_LogsNoWarning()
    {
        var log = new CapturingLoggerFactory();
        using (var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = SmallCapacity, LoggerFactory = log }))
        {
            using CowView region = engine.CreateRegion(Pages * PageSize);
            using CowView snapshot = region.Snapshot();
        }
        Assert.DoesNotContain(log.Entries, e => e.Level >= LogLevel.Warning);
        Assert.Contains(log.Entries, e => e.EventId == 2 && e.Message.Contains("0 views still live"));
    }

    /// <summary>The documented flip side: a snapshot nobody disposes stays, memory and all, until the engine goes.</summary>
    [Fact]
    public void ForgottenSnapshots_StayLiveUntilTheEngineIsDisposed()
    {
        var log = new CapturingLoggerFactory();
        var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = SmallCapacity, LoggerFactory = log });
        using CowView region = engine.CreateRegion(Pages * PageSize);
        TakeAndForgetSnapshots(region, 10); // each keeps a copy of page 0
        CowEngineStats before = engine.GetStats();
        for (int round = 0; round < 3; round++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        CowEngineStats after = engine.GetStats();
        Assert.Equal(11, after.LiveViews);
        Assert.Equal(before.SlotsInUse, after.SlotsInUse); // nothing went back to the pool
        Assert.True(after.SlotsInUse >= 10, $"{after.SlotsInUse} slots in use: the 10 snapshots' copies of page 0 at least");

        engine.Dispose();
        Assert.Contains(log.Entries, e => e.EventId == 20 && e.Message.Contains("11 views still open (1 regions, 10 snapshots)"));
    }

    /// <summary>The engine holds only live views: a disposed one is free for the garbage collector.</summary>
    [Fact]
    public void DisposedViews_AreNotKeptByTheEngine()
    {
        using CowMemoryEngine engine = NewSmallEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        WeakReference[] disposed = MakeAndDisposeSnapshots(region, 100);
        for (int round = 0; round < 3; round++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        Assert.Equal(1, engine.GetStats().LiveViews);
        Assert.DoesNotContain(disposed, reference => reference.IsAlive);
    }

    /// <summary>
    /// The safety net, in a child process (a finalizer that goes wrong ends the process): an engine
    /// that is never disposed becomes unreachable with its views; the finalizers release the views,
    /// the pool (its memfd is closed) and the reclaimer thread, log a warning, and a new engine works.
    /// </summary>
    [Fact]
    public async Task AnUnreachableEngineAndItsViews_AreReleasedByTheFinalizers_WithoutEndingTheProcess()
    {
        ChildResult result = await ChildProcess.RunAsync("unreachable-engine", TimeSpan.FromSeconds(120));

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.DoesNotContain("UNEXPECTED", result.StandardOutput);
        Assert.Contains("engine made: 2 live views, region intact True, snapshot intact True", result.StandardOutput);
        Assert.Contains("memfds while the engine lives: 1", result.StandardOutput);
        Assert.Contains("engine and views collected: True", result.StandardOutput);
        Assert.Contains("pool closed: True", result.StandardOutput);
        Assert.Contains("was never disposed: it and its 2 open views became unreachable", result.StandardOutput);
        Assert.Contains("next engine copy-on-write ok: True", result.StandardOutput);
        Assert.DoesNotContain("CowEngine: access to", result.StandardError);
    }

    /// <summary>Not inlined: no reference to the views outlives this frame, only their pointers.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe PointerOnlyMemory MakeViewsKeepingOnlyPointers(CowMemoryEngine engine, out WeakReference region, out WeakReference snapshot)
    {
        CowView view = engine.CreateRegion(Pages * PageSize);
        for (int page = 0; page < Pages; page++)
            view.Pointer[page * PageSize] = (byte)page;
        CowView saved = view.Snapshot();
        region = new WeakReference(view);
        snapshot = new WeakReference(saved);
        return new PointerOnlyMemory { Memory = view.Pointer, Saved = saved.Pointer };
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe void TakeAndForgetSnapshots(CowView region, int count)
    {
        for (int i = 0; i < count; i++)
        {
            _ = region.Snapshot();
            region.Pointer[0] = (byte)i; // a copy of page 0 for each
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference[] MakeAndDisposeSnapshots(CowView region, int count)
    {
        var references = new WeakReference[count];
        for (int i = 0; i < count; i++)
        {
            CowView snapshot = region.Snapshot();
            references[i] = new WeakReference(snapshot);
            snapshot.Dispose();
        }
        return references;
    }
}
