using System.Buffers;
using System.Runtime.InteropServices;
using CowEngine.TestSupport;
using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// <see cref="CowMemoryManager{T}"/>: Memory&lt;T&gt; over a view, and its lifetime rule - a pinned
/// handle keeps the view's memory mapped; disposing the view meanwhile is deferred until the last
/// handle is disposed.
/// </summary>
/// <remarks>
/// Whether the memory is still mapped is probed through the kernel (write(2) from it into a pipe,
/// read(2) from a pipe into it), which reports EFAULT for an inaccessible range instead of
/// crashing the test host, and through /proc/self/maps.
/// </remarks>
public sealed class MemoryManagerTests
{
    private const int PageSize = CowMemoryEngine.PageSize;

    [Fact]
    public void Memory_ReadsAndWritesTheViewsBytes_AndFollowsCopyOnWrite()
    {
        using CowMemoryEngine engine = NewSmallEngine();
        using CowView region = engine.CreateRegion(4 * PageSize);
        using var manager = new CowMemoryManager<int>(region, byteOffset: PageSize, length: 2 * PageSize / sizeof(int));
        Memory<int> memory = manager.Memory;

        memory.Span.Fill(7);
        memory.Span[5] = 42;
        Assert.Equal(7, region.AsSpan<int>(PageSize, 1)[0]);
        Assert.Equal(42, region.AsSpan<int>(PageSize + 5 * sizeof(int), 1)[0]);
        Assert.Equal(0, region.AsSpan<int>(0, 1)[0]);                      // before the range: untouched
        Assert.Equal(0, region.AsSpan<int>(3 * PageSize, 1)[0]);           // after it: untouched

        using CowView snapshot = region.Snapshot();
        memory.Span[5] = 43;                                               // a copy fault, through Memory<T>
        Assert.Equal(43, region.AsSpan<int>(PageSize + 5 * sizeof(int), 1)[0]);
        Assert.Equal(42, snapshot.AsSpan<int>(PageSize + 5 * sizeof(int), 1)[0]);

        Assert.True(MemoryMarshal.TryGetMemoryManager<int, CowMemoryManager<int>>(memory.Slice(3), out var found, out int start, out int length));
        Assert.Same(manager, found);
        Assert.Equal(3, start);
        Assert.Equal(manager.Length - 3, length);
    }

    [Fact]
    public void WholeViewConstructor_CoversTheView_AndRejectsRangesOutsideIt()
    {
        using CowMemoryEngine engine = NewSmallEngine();
        using CowView region = engine.CreateRegion(2 * PageSize);

        using var whole = new CowMemoryManager<long>(region);
        Assert.Equal(2 * PageSize / sizeof(long), whole.Length);
        whole.Memory.Span[^1] = -1;
        Assert.Equal(-1L, region.AsSpan<long>(2 * PageSize - sizeof(long), 1)[0]);

        Assert.Throws<ArgumentOutOfRangeException>(() => new CowMemoryManager<byte>(region, PageSize, PageSize + 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new CowMemoryManager<byte>(region, -1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new CowMemoryManager<byte>(region, 3 * PageSize, 0));
        Assert.Throws<ArgumentException>(() => new CowMemoryManager<ThreeBytes>(region)); // 8192 is not a multiple of 3
    }

    [Fact]
    public unsafe void Pin_ThenDisposeTheView_DefersTheReleaseUntilTheHandleIsDisposed()
    {
        using CowMemoryEngine engine = NewSmallEngine();
        CowView region = engine.CreateRegion(4 * PageSize);
        region.AsSpan(0, PageSize).Fill(0x5A);
        long slotsBefore = engine.GetStats().SlotsInUse;
        var manager = new CowMemoryManager<byte>(region);
        manager.PrepareForWrite(); // pages never written are on the zero page, read-only, until prepared

        MemoryHandle handle = manager.Memory.Pin();
        nint pinned = (nint)handle.Pointer;
        Assert.Equal(region.BaseAddress, pinned);
        Assert.Equal(1, manager.PinCount);

        region.Dispose();

        // Deferred: the view is still alive - mapped, its pages allocated, usable - while pinned.
        Assert.False(region.IsDisposed);
        Assert.Equal(1, engine.GetStats().LiveViews);
        Assert.Equal(slotsBefore, engine.GetStats().SlotsInUse);
        Assert.True(MappedReadWrite(pinned, 4 * PageSize), "the pinned range should still be mapped read-write");
        Assert.Equal(Enumerable.Repeat((byte)0x5A, 8), KernelRead(pinned, 8));
        Assert.True(KernelWrite(pinned + PageSize, [1, 2, 3, 4, 5, 6, 7, 8]), "the kernel should be able to write into the pinned range");
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }, KernelRead(pinned + PageSize, 8));
        Assert.Equal(0x5A, manager.Memory.Span[0]);

        handle.Dispose();

        // Released with the last pin: the view is disposed now.
        Assert.True(region.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => region.Snapshot());
        Assert.Throws<ObjectDisposedException>(() => manager.Memory.Span.Length);
        Assert.Throws<ObjectDisposedException>(() => manager.Pin());
        Assert.Equal(0, manager.PinCount);
        Assert.Equal(0, engine.GetStats().LiveViews);
        Assert.Equal(slotsBefore - 4, engine.GetStats().SlotsInUse);
        Assert.False(MappedReadWrite(pinned, PageSize), "the released range should be inaccessible");
        Assert.Null(KernelRead(pinned, 8));
    }

    [Fact]
    public unsafe void SeveralPins_TheViewIsReleasedWithTheLast()
    {
        using CowMemoryEngine engine = NewSmallEngine();
        CowView region = engine.CreateRegion(2 * PageSize);
        using var manager = new CowMemoryManager<byte>(region);
        MemoryHandle first = manager.Pin();
        MemoryHandle second = manager.Memory.Slice(PageSize).Pin();
        Assert.Equal(2, manager.PinCount);
        Assert.Equal(region.BaseAddress + PageSize, (nint)second.Pointer);

        region.Dispose();
        first.Dispose();
        Assert.False(region.IsDisposed);
        Assert.Equal(1, engine.GetStats().LiveViews);
        Assert.NotNull(KernelRead(region.BaseAddress, 8));

        second.Dispose();
        Assert.True(region.IsDisposed);
        Assert.Equal(0, engine.GetStats().LiveViews);
        Assert.Null(KernelRead(region.BaseAddress, 8));
        Assert.Throws<InvalidOperationException>(() => manager.Unpin()); // more unpins than pins
    }

    [Fact]
    public void Pin_ThenDisposeTheEngine_KeepsTheMemoryUntilTheHandleIsDisposed()
    {
        var engine = NewSmallEngine();
        CowView region = engine.CreateRegion(PageSize);
        region.AsSpan(0, 8).Fill(3);
        var manager = new CowMemoryManager<byte>(region);
        MemoryHandle handle = manager.Pin();

        engine.Dispose();

        Assert.False(region.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => engine.CreateRegion(PageSize));
        Assert.Equal(Enumerable.Repeat((byte)3, 8), KernelRead(region.BaseAddress, 8));
        handle.Dispose();
        Assert.True(region.IsDisposed);
        Assert.Null(KernelRead(region.BaseAddress, 8));
    }

    [Fact]
    public unsafe void Pin_OutOfRangeIndex_Throws_AndPinAtTheEndIsAllowed()
    {
        using CowMemoryEngine engine = NewSmallEngine();
        using CowView region = engine.CreateRegion(PageSize);
        using var manager = new CowMemoryManager<int>(region);
        Assert.Throws<ArgumentOutOfRangeException>(() => manager.Pin(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => manager.Pin(manager.Length + 1));
        using (MemoryHandle end = manager.Pin(manager.Length))
            Assert.Equal(region.BaseAddress + PageSize, (nint)end.Pointer);
        Assert.Equal(0, manager.PinCount);
    }

    [Fact]
    public void OwningManager_DisposesTheView_AndADisposedManagerRefusesUse()
    {
        using CowMemoryEngine engine = NewSmallEngine();
        CowView region = engine.CreateRegion(PageSize);
        IMemoryOwner<byte> owner = new CowMemoryManager<byte>(region, ownsView: true);
        Memory<byte> memory = owner.Memory;
        memory.Span[0] = 1;

        owner.Dispose();

        Assert.True(region.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => memory.Span[0]);

        CowView other = engine.CreateRegion(PageSize);
        var notOwning = new CowMemoryManager<byte>(other);
        ((IDisposable)notOwning).Dispose();
        Assert.False(other.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => notOwning.Pin());
        other.Dispose();
    }

    /// <summary>
    /// The system-call rule of the XML docs: after a snapshot the region's pages are shared, so an
    /// API whose kernel call fills the memory fails with EFAULT until PrepareForWrite; then it
    /// succeeds and the snapshot keeps its bytes.
    /// </summary>
    [Fact]
    public async Task FillingFromAFile_NeedsPrepareForWrite_ThenLeavesTheSnapshotAlone()
    {
        using CowMemoryEngine engine = NewSmallEngine();
        using CowView region = engine.CreateRegion(4 * PageSize);
        region.AsSpan(0, 4 * PageSize).Fill(1);
        using CowView snapshot = region.Snapshot();
        string path = Path.Combine(Path.GetTempPath(), $"cowengine-memory-{Guid.NewGuid():N}.bin");
        byte[] fileBytes = Enumerable.Range(0, 2 * PageSize).Select(i => (byte)(i * 7)).ToArray();
        await File.WriteAllBytesAsync(path, fileBytes, TestContext.Current.CancellationToken);
        try
        {
            using var manager = new CowMemoryManager<byte>(region, PageSize, 2 * PageSize);
            using Microsoft.Win32.SafeHandles.SafeFileHandle file = File.OpenHandle(path);

            IOException refused = await Assert.ThrowsAnyAsync<IOException>(
                async () => await RandomAccess.ReadAsync(file, manager.Memory, 0, TestContext.Current.CancellationToken));
            Assert.Contains("Bad address", refused.Message, StringComparison.OrdinalIgnoreCase);

            manager.PrepareForWrite();
            int read = await RandomAccess.ReadAsync(file, manager.Memory, 0, TestContext.Current.CancellationToken);

            Assert.Equal(2 * PageSize, read);
            Assert.Equal(fileBytes, region.AsSpan(PageSize, 2 * PageSize).ToArray());
            Assert.True(snapshot.AsSpan(0, 4 * PageSize).ToArray().All(b => b == 1), "the snapshot must keep its bytes");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [StructLayout(LayoutKind.Sequential, Size = 3)]
    private struct ThreeBytes
    {
    }

    /// <summary>True if /proc/self/maps shows [address, address + length) mapped readable and writable.</summary>
    private static bool MappedReadWrite(nint address, long length)
    {
        List<Vma> vmas = ProcMaps.Overlapping(address, length);
        ulong covered = 0;
        foreach (Vma vma in vmas)
        {
            if (!vma.Permissions.StartsWith("rw", StringComparison.Ordinal))
                return false;
            covered += Math.Min(vma.End, (ulong)address + (ulong)length) - Math.Max(vma.Start, (ulong)address);
        }
        return covered == (ulong)length;
    }

    /// <summary>The kernel reads <paramref name="count"/> bytes at the address (write(2) into a pipe); null on EFAULT.</summary>
    private static unsafe byte[]? KernelRead(nint address, int count)
    {
        (int readEnd, int writeEnd) = LibC.CreatePipe();
        try
        {
            nint written = LibC.Write(writeEnd, (void*)address, (nuint)count);
            if (written < 0)
            {
                Assert.Equal(LibC.EFAULT, Marshal.GetLastPInvokeError());
                return null;
            }
            var bytes = new byte[written];
            fixed (byte* target = bytes)
                Assert.Equal(written, LibC.Read(readEnd, target, (nuint)bytes.Length));
            return bytes;
        }
        finally
        {
            LibC.Close(readEnd);
            LibC.Close(writeEnd);
        }
    }

    /// <summary>The kernel writes the bytes at the address (read(2) from a pipe); false on EFAULT.</summary>
    private static unsafe bool KernelWrite(nint address, byte[] bytes)
    {
        (int readEnd, int writeEnd) = LibC.CreatePipe();
        try
        {
            LibC.WriteAll(writeEnd, bytes);
            nint read = LibC.Read(readEnd, (void*)address, (nuint)bytes.Length);
            if (read < 0)
            {
                Assert.Equal(LibC.EFAULT, Marshal.GetLastPInvokeError());
                return false;
            }
            return read == bytes.Length;
        }
        finally
        {
            LibC.Close(readEnd);
            LibC.Close(writeEnd);
        }
    }
}
