using CowEngine.Tests.Support;
using CowEngine.TestSupport;

namespace CowEngine.Tests;

/// <summary>
/// Sharing is physical, not a copy that merely looks equal: right after a snapshot, every page of
/// both views is backed by the same memory, and a write separates exactly the written page.
/// </summary>
/// <remarks>
/// Two independent witnesses, both from the kernel rather than from the engine's tables:
/// <list type="bullet">
/// <item>/proc/self/maps, always: the memfd offset each page maps (VMA offset + distance into the
/// VMA). Two pages mapping the same offset of the same memfd are the same page-cache page.</item>
/// <item>/proc/self/pagemap, when the kernel shows frame numbers (only with CAP_SYS_ADMIN; an
/// ordinary user reads PFN 0): the physical frame behind each page.</item>
/// </list>
/// Both are cross-checked with the engine's own SlotOf (slot = memfd offset / 4096).
/// </remarks>
public sealed class PhysicalSharingTests
{
    private const int PageSize = CowMemoryEngine.PageSize;

    /// <summary>What the kernel says backs one page of a view.</summary>
    private readonly record struct Backing(ulong Inode, ulong FileOffset, bool Writable, ulong? Pfn);

    [Fact]
    public void ASnapshotSharesEveryFrameWithItsSourceAndAWriteSeparatesOnlyTheWrittenPages()
    {
        const int pages = 600; // two segments, so two leaves are shared
        long[] written = [7, 511, 512, 599];
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(pages * PageSize);
        var random = new Random(600);
        random.NextBytes(region.AsSpan());
        using CowView snapshot = region.Snapshot();

        Backing[] regionBefore = Inspect(region, out string method);
        Backing[] snapshotBefore = Inspect(snapshot, out _);
        TestContext.Current.TestOutputHelper?.WriteLine(method);
        for (int page = 0; page < pages; page++)
        {
            Assert.Equal(regionBefore[page].Inode, snapshotBefore[page].Inode);
            Assert.True(regionBefore[page].FileOffset == snapshotBefore[page].FileOffset,
                $"page {page}: the region maps memfd offset {regionBefore[page].FileOffset}, its fresh snapshot {snapshotBefore[page].FileOffset}");
            Assert.True(regionBefore[page].Pfn == snapshotBefore[page].Pfn,
                $"page {page}: the region is on frame {regionBefore[page].Pfn}, its fresh snapshot on {snapshotBefore[page].Pfn}");
            // The snapshot write-protected its source (the consistent cut): no page is writable.
            Assert.False(regionBefore[page].Writable, $"page {page} of the source is still writable after a snapshot");
            Assert.False(snapshotBefore[page].Writable, $"page {page} of a fresh snapshot is writable");
        }

        foreach (long page in written)
            snapshot.AsSpan(page * PageSize + 100, 1)[0] ^= 0xFF;

        Backing[] regionAfter = Inspect(region, out _);
        Backing[] snapshotAfter = Inspect(snapshot, out _);
        for (int page = 0; page < pages; page++)
        {
            // The source never moves: a write to the snapshot copies into the snapshot.
            Assert.Equal(regionBefore[page], regionAfter[page]);
            if (written.Contains(page))
            {
                Assert.True(snapshotAfter[page].FileOffset != regionAfter[page].FileOffset,
                    $"written page {page} still maps the source's memfd offset {regionAfter[page].FileOffset}");
                Assert.True(snapshotAfter[page].Pfn is null || snapshotAfter[page].Pfn != regionAfter[page].Pfn,
                    $"written page {page} is still on the source's frame {regionAfter[page].Pfn}");
                Assert.True(snapshotAfter[page].Writable, $"written page {page} of the snapshot is not mapped writable");
            }
            else
            {
                Assert.True(snapshotAfter[page] == snapshotBefore[page],
                    $"unwritten page {page} of the snapshot changed its backing: {snapshotBefore[page]} -> {snapshotAfter[page]}");
            }
        }
        Assert.Equal(written.Length, Enumerable.Range(0, pages).Count(page => snapshotAfter[page].FileOffset != regionAfter[page].FileOffset));
    }

    [Fact]
    public void AWriteToTheSourceGivesOnlyTheSourceANewFrameAndTheSiblingsKeepSharing()
    {
        const int pages = 20;
        const int writtenPage = 13;
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(pages * PageSize);
        region.AsSpan().Fill(0x42);
        using CowView first = region.Snapshot();
        using CowView second = region.Snapshot();
        Backing[] before = Inspect(region, out string method);
        TestContext.Current.TestOutputHelper?.WriteLine(method);
        Assert.Equal(before, Inspect(first, out _));
        Assert.Equal(before, Inspect(second, out _));

        region.AsSpan(writtenPage * PageSize, 1)[0] = 0x43;

        Backing[] regionAfter = Inspect(region, out _);
        Backing[] firstAfter = Inspect(first, out _);
        Backing[] secondAfter = Inspect(second, out _);
        Assert.Equal(before, firstAfter);
        Assert.Equal(before, secondAfter);
        for (int page = 0; page < pages; page++)
        {
            if (page == writtenPage)
            {
                Assert.NotEqual(before[page].FileOffset, regionAfter[page].FileOffset);
                Assert.True(regionAfter[page].Pfn is null || regionAfter[page].Pfn != before[page].Pfn,
                    $"the written page is still on the shared frame {before[page].Pfn}");
            }
            else
            {
                Assert.Equal(before[page], regionAfter[page]);
            }
        }
        Assert.Equal(0x43, region.AsSpan(writtenPage * PageSize, 1)[0]);
        Assert.Equal(0x42, first.AsSpan(writtenPage * PageSize, 1)[0]);
        Assert.Equal(0x42, second.AsSpan(writtenPage * PageSize, 1)[0]);
    }

    /// <summary>
    /// Reads every page of the view (so the kernel has a page-table entry for it), then asks the
    /// kernel what backs each page; checks the answer against the engine's SlotOf.
    /// </summary>
    private static Backing[] Inspect(CowView view, out string method)
    {
        long sum = 0;
        Span<byte> bytes = view.AsSpan();
        for (int offset = 0; offset < bytes.Length; offset += PageSize)
            sum += bytes[offset];
        GC.KeepAlive(sum);

        List<Vma> maps = ProcMaps.ReadAll();
        ulong[]? entries = Pagemap.TryRead(view.BaseAddress, view.PageCount, out string? readFailure);
        bool pfnsVisible = Pagemap.PfnsAreVisible(entries, readFailure, out string reason);
        method = pfnsVisible
            ? $"Compared memfd offsets (/proc/self/maps) and physical frames (/proc/self/pagemap): {reason}."
            : $"Compared memfd offsets (/proc/self/maps) only; physical frames were not used: {reason}.";

        var result = new Backing[view.PageCount];
        for (long page = 0; page < view.PageCount; page++)
        {
            ulong address = (ulong)view.BaseAddress + (ulong)(page * PageSize);
            Vma? found = ProcMaps.FindContaining(maps, address);
            Assert.True(found.HasValue, $"page {page} at 0x{address:x} is in no mapping of /proc/self/maps");
            Vma vma = found.Value;
            Assert.True(vma.Path.Contains("memfd:", StringComparison.Ordinal), $"page {page} maps '{vma.Path}', not the engine's memfd");
            ulong offset = vma.FileOffsetOf(address);
            uint slot = view.SlotOf(page);
            Assert.True(offset == (ulong)slot * PageSize,
                $"page {page}: the kernel maps memfd offset {offset} (slot {offset / PageSize}), the engine's page table says slot {slot}");
            ulong? pfn = null;
            if (pfnsVisible)
            {
                Assert.True(Pagemap.IsPresent(entries![page]), $"page {page} is not present after being read");
                pfn = Pagemap.PfnOf(entries[page]);
            }
            // Writable for the kernel: a writable mapping, and with userfaultfd write protection no
            // write-protect bit on the page (the mapping itself stays read-write there).
            bool writable = vma.IsWritable;
            if (view.Engine.WriteProtection == CowWriteProtection.Userfaultfd)
            {
                Assert.True(entries is not null, $"/proc/self/pagemap is needed to see userfaultfd write protection: {readFailure}");
                writable &= !Pagemap.IsUserfaultfdWriteProtected(entries![page]);
            }
            result[page] = new Backing(vma.Inode, offset, writable, pfn);
        }
        return result;
    }
}
