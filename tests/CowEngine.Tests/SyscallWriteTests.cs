using System.Runtime.InteropServices;
using CowEngine.TestSupport;
using Microsoft.Win32.SafeHandles;
using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// The kernel writing into views: a system call that copies into a write-protected page does not
/// raise the SIGSEGV the engine relies on, it fails with EFAULT (or stops short). These tests pin
/// down that behaviour and that <see cref="CowView.PrepareForWrite"/> is the cure.
/// </summary>
public sealed unsafe class SyscallWriteTests
{
    private const int PageSize = CowMemoryEngine.PageSize;

    [Fact]
    public void ReadFromPipe_IntoSharedPage_FailsWithEfaultAndLeavesTheDataInThePipe()
    {
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(2 * PageSize);
        region.AsSpan().Fill(0xAB);
        using CowView snapshot = region.Snapshot(); // every page of the region is shared now
        byte[] data = Enumerable.Range(1, 100).Select(i => (byte)i).ToArray();
        var (readEnd, writeEnd) = LibC.CreatePipe();
        try
        {
            LibC.WriteAll(writeEnd, data);

            nint result = LibC.Read(readEnd, region.Pointer, (nuint)data.Length);
            int errno = Marshal.GetLastPInvokeError();

            Assert.Equal(-1, result);
            Assert.Equal(LibC.EFAULT, errno);
            Assert.False(region.AsSpan().ContainsAnyExcept((byte)0xAB), "the failed read changed the region");

            // The data is still in the pipe: once the page is prepared, the same read gets all of it.
            region.PrepareForWrite(0, data.Length);
            nint retried = LibC.Read(readEnd, region.Pointer, (nuint)data.Length);

            Assert.Equal(data.Length, retried);
            Assert.True(region.AsSpan(0, data.Length).SequenceEqual(data));
            Assert.False(region.AsSpan(data.Length, (int)region.Length - data.Length).ContainsAnyExcept((byte)0xAB));
            Assert.False(snapshot.AsSpan().ContainsAnyExcept((byte)0xAB), "the snapshot saw the read");
        }
        finally
        {
            LibC.Close(readEnd);
            LibC.Close(writeEnd);
        }
    }

    public enum ReadSource
    {
        RegularFile,

        /// <summary>
        /// A pipe holding two buffers: one full page, then the rest. (With all the data in one pipe
        /// buffer, a copy that stops part-way makes pipe_read return EFAULT instead of a count.)
        /// </summary>
        PipeOfTwoBuffers,
    }

    [Theory]
    [InlineData(ReadSource.RegularFile)]
    [InlineData(ReadSource.PipeOfTwoBuffers)]
    public void Read_SpanningPrivateWritablePageThenSharedPage_ReturnsShortCount(ReadSource source)
    {
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(2 * PageSize);
        using CowView snapshot = region.Snapshot();
        region.PrepareForWrite(0, PageSize); // page 0: private and writable again; page 1: still shared
        Assert.Equal(1, region.GetStats().PrivatePages);
        byte[] data = new byte[PageSize + 100];
        new Random(5).NextBytes(data);

        using var input = new ReadableSource(source, data);
        // The first page fits into page 0; the last 100 bytes would go to the shared page 1.
        nint result = LibC.Read(input.Fd, region.Pointer, (nuint)data.Length);

        Assert.Equal(PageSize, result);
        Assert.True(region.AsSpan(0, PageSize).SequenceEqual(data.AsSpan(0, PageSize)));
        Assert.False(region.AsSpan(PageSize, PageSize).ContainsAnyExcept((byte)0));
        Assert.False(snapshot.AsSpan().ContainsAnyExcept((byte)0));
        // The kernel consumed only what it copied: the other 100 bytes can still be read.
        byte[] rest = new byte[200];
        fixed (byte* buffer = rest)
            Assert.Equal(100, LibC.Read(input.Fd, buffer, (nuint)rest.Length));
        Assert.True(rest.AsSpan(0, 100).SequenceEqual(data.AsSpan(PageSize)));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void RandomAccessRead_IntoSharedSpan_ThrowsIOExceptionAndWorksAfterPrepareForWrite(bool intoSnapshot)
    {
        // Both sides of a snapshot are shared: the region (write-protected by the snapshot) and the
        // snapshot itself (read-only, or not even mapped until touched).
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(2 * PageSize);
        region.AsSpan().Fill(0x5A);
        using CowView snapshot = region.Snapshot();
        CowView target = intoSnapshot ? snapshot : region;
        CowView other = intoSnapshot ? region : snapshot;
        byte[] contents = new byte[2 * PageSize];
        new Random(7).NextBytes(contents);
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(path, contents);
            using SafeFileHandle file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);

            Assert.ThrowsAny<IOException>(() => RandomAccess.Read(file, target.AsSpan(), 0));
            Assert.False(target.AsSpan().ContainsAnyExcept((byte)0x5A), "the failed read changed the view");

            target.PrepareForWrite(0, target.Length);
            int read = RandomAccess.Read(file, target.AsSpan(), 0);

            Assert.Equal(contents.Length, read);
            Assert.True(target.AsSpan().SequenceEqual(contents));
            Assert.False(other.AsSpan().ContainsAnyExcept((byte)0x5A), "the other view saw the read");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void RandomAccessWrite_FromAFreshSnapshot_NeedsPrepareForRead_ThenSavesItsContents()
    {
        // The other direction: the kernel only reads the view. A snapshot maps its pages on first
        // touch, and the kernel's own reads raise no fault, so writing an untouched snapshot to a
        // file fails with EFAULT (documented); PrepareForRead maps the pages first.
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(2 * PageSize);
        new Random(11).NextBytes(region.AsSpan());
        byte[] expected = region.AsSpan().ToArray();
        using CowView snapshot = region.Snapshot();
        string path = Path.GetTempFileName();
        try
        {
            using (SafeFileHandle file = File.OpenHandle(path, FileMode.Create, FileAccess.Write))
            {
                IOException refused = Assert.Throws<IOException>(() => RandomAccess.Write(file, snapshot.AsSpan(), 0));
                Assert.Contains("Bad address", refused.Message);
                snapshot.PrepareForRead(0, snapshot.Length);
                RandomAccess.Write(file, snapshot.AsSpan(), 0);
            }

            Assert.Equal(expected, File.ReadAllBytes(path));
            Assert.Equal(0, snapshot.GetStats().PagesCopied); // reading never copies
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void RandomAccessWrite_FromARegionEvictedUnderMappingPressure_SavesItsContentsAfterPrepareForRead()
    {
        // Under its mapping budget the engine unmaps fragmented segments of cold views and maps
        // them again on the next touch; PrepareForRead maps them for the kernel to read.
        const int Pages = 64;
        using var engine = NewFragmentingEngine(mappingBudget: 64);
        using CowView cold = engine.CreateRegion(Pages * PageSize);
        byte[] expected = new byte[Pages * PageSize];
        new Random(13).NextBytes(expected);
        expected.CopyTo(cold.AsSpan());
        using CowView coldSnapshot = cold.Snapshot();
        for (int page = 0; page < Pages; page += 2)
            cold.Pointer[page * PageSize] = expected[page * PageSize] = 1; // every other page copied: fragmented
        // Pressure from elsewhere: first writes scattered over the 64 segments of another region split
        // a mapping each time (+2), so the engine goes over its budget and keeps evicting, one segment
        // per fault in the order of its eviction clock. The faults are in many segments, so the cold
        // region soon is not among the segments faults just mapped (which eviction spares), and three
        // rounds take the clock past every segment, the cold region's included.
        const int HotSegments = 64, SegmentPages = 512;
        using CowView hot = engine.CreateRegion((long)HotSegments * SegmentPages * PageSize);
        using CowView hotSnapshot = hot.Snapshot();
        for (int round = 0; round < 3; round++)
            for (long segment = 0; segment < HotSegments; segment++)
                hot.Pointer[(segment * SegmentPages + 7 + 100 * round) * PageSize] = 1;
        CowViewStats coldStats = cold.GetStats();
        Assert.True(coldStats.MappedPages < Pages,
            $"over its budget the engine must have evicted the cold region's fragmented segment ({coldStats}; {engine.GetStats()})");
        string path = Path.GetTempFileName();
        try
        {
            using (SafeFileHandle file = File.OpenHandle(path, FileMode.Create, FileAccess.Write))
            {
                Assert.Throws<IOException>(() => RandomAccess.Write(file, cold.AsSpan(), 0));
                cold.PrepareForRead(0, cold.Length);
                RandomAccess.Write(file, cold.AsSpan(), 0);
            }

            Assert.Equal(expected, File.ReadAllBytes(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>A file descriptor to read <c>data</c> from: a temporary file, or a pipe.</summary>
    private sealed class ReadableSource : IDisposable
    {
        private readonly SafeFileHandle? _file;
        private readonly string? _path;
        private readonly int _pipeWriteEnd = -1;

        public ReadableSource(ReadSource source, byte[] data)
        {
            if (source == ReadSource.RegularFile)
            {
                _path = Path.GetTempFileName();
                File.WriteAllBytes(_path, data);
                _file = File.OpenHandle(_path, FileMode.Open, FileAccess.Read);
                Fd = (int)_file.DangerousGetHandle();
            }
            else
            {
                (Fd, _pipeWriteEnd) = LibC.CreatePipe();
                LibC.WriteAll(_pipeWriteEnd, data.AsSpan(0, PageSize)); // fills one pipe buffer
                LibC.WriteAll(_pipeWriteEnd, data.AsSpan(PageSize));    // so this one starts another
            }
        }

        public int Fd { get; }

        public void Dispose()
        {
            if (_file != null)
            {
                _file.Dispose();
                File.Delete(_path!);
            }
            else
            {
                LibC.Close(Fd);
                LibC.Close(_pipeWriteEnd);
            }
        }
    }
}
