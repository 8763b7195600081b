using System.Runtime.InteropServices;
using CowEngine.Tests.Support;
using CowEngine.TestSupport;
using static CowEngine.Tests.Support.TestEngines;
using Kind = CowEngine.TestSupport.FailureInjection.Kind;

namespace CowEngine.Tests;

/// <summary>
/// The tests that arm the shim's process-wide failure injection in this process: they run alone, so
/// that no parallel test's engine sees their failures.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FailureInjectionCollection
{
    public const string Name = "Process-wide failure injection";
}

/// <summary>
/// API calls whose system calls fail (native/include/cow_test_inject.h), one case each where the
/// model tests (ModelBasedTests, RollbackModelTests, with injection) cannot see the outcome: the
/// background reclaimer's retries and the exact accounting meanwhile; a view that cannot be unmapped
/// at dispose; a refused Snapshot, RestoreTo or TakeDirtyPages and the pages prepared for the kernel;
/// a diff refused because mincore fails.
/// </summary>
[Collection(FailureInjectionCollection.Name)]
public sealed unsafe class ApiFailureInjectionTests : IDisposable
{
    private const int PageSize = CowMemoryEngine.PageSize;
    private const int SegmentPages = 512;

    /// <summary>The kind a freeze or an in-place unprotect of this process's write protection goes through.</summary>
    private static Kind ProtectKind => InjectionPlan.UsesUserfaultfd ? Kind.UffdWriteprotect : Kind.Protect;

    public ApiFailureInjectionTests() => FailureInjection.Reset();

    public void Dispose() => FailureInjection.Reset();

    [Fact]
    public void HolePunchesThatFail_KeepTheirSlotsInUse_UntilTheReclaimersOwnRetrySucceeds()
    {
        using CowMemoryEngine engine = NewEngine();
        CowView region = engine.CreateRegion(SegmentPages * PageSize);
        region.AsSpan().Fill(0xAB);
        FailureInjection.FailEvery(Kind.Punch, FailureInjection.Context.Api, FailureInjection.EIO);

        region.Dispose();
        CowEngineStats failing = engine.GetStats(); // its drain fails too
        Assert.Equal(0, failing.LiveViews);
        Assert.Equal(SegmentPages, failing.SlotsInUse); // not punched: still in use, and exactly that
        Assert.True(failing.CommittedBytes >= (long)SegmentPages * PageSize, $"the unpunched slots are still committed: {failing}");
        Assert.True(engine.Reclaimer.Failures > 0, "the reclaimer saw no failure");
        Assert.True(FailureInjection.Injected(Kind.Punch, FailureInjection.Context.Api) > 0, "no punch failed");

        // Meanwhile a new region does not get those slots, and reads zero.
        using CowView fresh = engine.CreateRegion(SegmentPages * PageSize);
        Assert.False(fresh.AsSpan().ContainsAnyExcept((byte)0), "a new region holds another view's old bytes");

        // No API call from here on: the reclaimer thread tries again by itself (within a second).
        FailureInjection.Reset();
        bool reclaimed = SpinWait.SpinUntil(() => Volatile.Read(ref engine.Handle.Table->SlotsInUse) == SegmentPages, TimeSpan.FromSeconds(30));
        Assert.True(reclaimed, $"the reclaimer did not retry: {Volatile.Read(ref engine.Handle.Table->SlotsInUse)} slots in use, expected {SegmentPages}");
        fresh.Dispose();
        CowEngineStats empty = engine.GetStats();
        Assert.True(empty.SlotsInUse == 0 && empty.CommittedBytes == 0, $"memory left after every view was disposed: {empty}");
    }

    [Fact]
    public void AViewThatCannotBeUnmappedAtDispose_KeepsItsSlots_AndTheOtherViewsAreIntact()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView kept = engine.CreateRegion(8 * PageSize);
        kept.AsSpan().Fill(1);
        using CowView keptSnapshot = kept.Snapshot();
        CowView retried = engine.CreateRegion(8 * PageSize);
        CowView leaked = engine.CreateRegion(8 * PageSize);
        leaked.AsSpan().Fill(2);

        FailureInjection.FailNth(Kind.ReserveFixed, FailureInjection.Context.Api, 1, FailureInjection.ENOMEM);
        retried.Dispose(); // one refusal: tried again
        Assert.Equal(0, engine.LeakedViews);
        FailureInjection.FailEvery(Kind.ReserveFixed, FailureInjection.Context.Api, FailureInjection.ENOMEM);
        leaked.Dispose(); // never throws
        FailureInjection.Reset();

        Assert.True(leaked.IsDisposed);
        Assert.Equal(1, engine.LeakedViews);
        CowEngineStats stats = engine.GetStats();
        Assert.Equal(2, stats.LiveViews);
        Assert.Equal(16, stats.SlotsInUse); // the kept region's 8 (shared with its snapshot) and the leaked view's 8: exact
        Assert.False(kept.AsSpan().ContainsAnyExcept((byte)1));
        Assert.False(keptSnapshot.AsSpan().ContainsAnyExcept((byte)1));
        kept.AsSpan().Fill(3);
        Assert.False(keptSnapshot.AsSpan().ContainsAnyExcept((byte)1));
    }

    [Fact]
    public void ASnapshotRefusedHalfWay_LeavesThePagesPreparedForTheKernelWritable()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(64 * PageSize, trackWrites: true);
        long[] prepared = [10, 20, 40];
        foreach (long page in prepared)
            region.PrepareForWrite(page * PageSize, 1);
        FailureInjection.FailNth(ProtectKind, FailureInjection.Context.Api, 2, FailureInjection.ENOMEM);

        var refused = Assert.Throws<CowMappingBudgetExceededException>(region.Snapshot);
        Assert.Equal(FailureInjection.ENOMEM, Assert.IsType<CowSystemException>(refused.InnerException).ErrorNumber);
        FailureInjection.Reset();

        Assert.Equal(1, engine.GetStats().LiveViews);
        AssertTheKernelCanWriteInto(region, prepared);
    }

    [Fact]
    public void ARestoreRefusedHalfWay_ChangesNoContents_AndLeavesPreparedPagesWritable()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(64 * PageSize);
        region.AsSpan().Fill(5);
        using CowView snapshot = region.Snapshot();
        long[] prepared = [10, 20];
        foreach (long page in prepared)
            region.PrepareForWrite(page * PageSize, 1);
        region.AsSpan(10L * PageSize, PageSize).Fill(6);
        snapshot.AsSpan(30L * PageSize, PageSize).Fill(7); // the snapshot has a writable run: its freeze is call 1
        // Calls 2 and 3 protect the region's runs [10] and [20]: the third fails.
        FailureInjection.FailNth(ProtectKind, FailureInjection.Context.Api, 3, FailureInjection.EPERM);

        var refused = Assert.Throws<CowSystemException>(() => region.RestoreTo(snapshot));
        Assert.Equal(FailureInjection.EPERM, refused.ErrorNumber);
        FailureInjection.Reset();

        Assert.False(region.AsSpan(10L * PageSize, PageSize).ContainsAnyExcept((byte)6));
        Assert.Equal(5, region.AsSpan(30L * PageSize, 1)[0]);
        Assert.Equal(7, snapshot.AsSpan(30L * PageSize, 1)[0]);
        AssertTheKernelCanWriteInto(region, prepared);
        region.RestoreTo(snapshot); // and it works once the calls do
        Assert.Equal(7, region.AsSpan(30L * PageSize, 1)[0]);
        Assert.Equal(5, region.AsSpan(10L * PageSize, 1)[0]);
    }

    [Fact]
    public void TakeDirtyPagesRefused_ReportsThePagesOnTheNextCall()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(64 * PageSize, trackWrites: true);
        region.AsSpan(1L * PageSize, 1)[0] = 1;
        region.AsSpan(5L * PageSize, 1)[0] = 1;
        // (EPERM: an EAGAIN of UFFDIO_WRITEPROTECT is asked again, and would pass.)
        FailureInjection.FailNth(ProtectKind, FailureInjection.Context.Api, 2, FailureInjection.EPERM);

        Assert.Equal(FailureInjection.EPERM, Assert.Throws<CowSystemException>(region.TakeDirtyPages).ErrorNumber);
        FailureInjection.Reset();

        Assert.Equal([1L, 5L], region.TakeDirtyPages().ToArray());
        Assert.Empty(region.TakeDirtyPages());
    }

    [Fact]
    public void ADiffWhoseMincoreFails_IsRefused_AndTheNextOneAnswers()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(16 * PageSize);
        region.AsSpan().Fill(1);
        using CowView snapshot = region.Snapshot();
        region.AsSpan(3L * PageSize, 1)[0] = 2;
        FailureInjection.FailNth(Kind.Mincore, FailureInjection.Context.Api, 1, FailureInjection.EAGAIN);
        Assert.Equal([3L], region.GetChangedPages(snapshot).ToArray()); // one EAGAIN: asked again
        FailureInjection.FailEvery(Kind.Mincore, FailureInjection.Context.Api, FailureInjection.EAGAIN);

        var refused = Assert.Throws<CowSystemException>(() => region.GetChangedPages(snapshot));
        Assert.Equal(FailureInjection.EAGAIN, refused.ErrorNumber);
        Assert.Contains("comparing views", refused.Message, StringComparison.Ordinal);
        FailureInjection.Reset();

        Assert.Equal([3L], region.GetChangedPages(snapshot).ToArray());
    }

    [Fact]
    public void PrepareForWriteRefusedHalfWay_PreparedThePagesBeforeAndChangedNoContents()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(SegmentPages * PageSize);
        region.AsSpan().Fill(4);
        using CowView snapshot = region.Snapshot();
        region.AsSpan(100L * PageSize, 1)[0] = 9;
        // The snapshot has mapped none of its pages, so each page's copy goes to it (reverse copy) and the
        // region's pages are unprotected in place: one call per batch of 64 pages; the second fails.
        FailureInjection.FailNth(ProtectKind, FailureInjection.Context.Api, 2, FailureInjection.EPERM);

        var refused = Assert.Throws<CowSystemException>(() => region.PrepareForWrite(0, SegmentPages * PageSize));
        Assert.Equal(FailureInjection.EPERM, refused.ErrorNumber);
        FailureInjection.Reset();

        Assert.Equal(9, region.AsSpan(100L * PageSize, 1)[0]);
        region.AsSpan(100L * PageSize, 1)[0] = 4;
        Assert.False(region.AsSpan().ContainsAnyExcept((byte)4));
        Assert.False(snapshot.AsSpan().ContainsAnyExcept((byte)4));
        Assert.True(region.GetStats().WritablePages > 0, "the pages before the failure were not prepared");
        region.PrepareForWrite(0, SegmentPages * PageSize);
        Assert.Equal(SegmentPages, region.GetStats().WritablePages);
    }

    /// <summary>read(2) from a pipe into each page: the kernel writes without a fault, so it works only on a writable page.</summary>
    private static void AssertTheKernelCanWriteInto(CowView view, long[] pages)
    {
        (int readEnd, int writeEnd) = LibC.CreatePipe();
        try
        {
            foreach (long page in pages)
            {
                LibC.WriteAll(writeEnd, [0x5A]);
                nint count = LibC.Read(readEnd, view.Pointer + page * PageSize + 100, 1);
                Assert.True(count == 1, $"read(2) into prepared page {page} returned {count} (errno {Marshal.GetLastPInvokeError()}): the page is not writable");
                Assert.Equal(0x5A, view.AsSpan(page * PageSize + 100, 1)[0]);
            }
        }
        finally
        {
            LibC.Close(readEnd);
            LibC.Close(writeEnd);
        }
    }
}
