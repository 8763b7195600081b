using System.IO.Compression;
using System.Security.Cryptography;
using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// <see cref="CowViewStream"/>: a read-only seekable stream over a view that ordinary .NET APIs
/// (CopyTo, compression, hashing, files) can save; compared with a byte-array model of the view.
/// </summary>
public sealed class ViewStreamTests
{
    private const int PageSize = CowMemoryEngine.PageSize;

    [Fact]
    public void CopyTo_RoundTripsASnapshot_WhileTheViewMovesOn()
    {
        using CowMemoryEngine engine = NewLargeEngine();
        using CowView world = engine.CreateRegion(256 * PageSize);
        byte[] model = Pattern(world.Length, seed: 1);
        model.CopyTo(world.AsSpan());
        using CowView snapshot = world.Snapshot();
        world.AsSpan(100 * PageSize, 3 * PageSize).Fill(0xEE); // after the snapshot: not in it

        using var stream = new CowViewStream(snapshot);
        using var copy = new MemoryStream();
        stream.CopyTo(copy);

        Assert.Equal(model, copy.ToArray());
        Assert.Equal(snapshot.Length, stream.Position);
        Assert.Equal(0, stream.Read(new byte[10]));
    }

    /// <summary>
    /// A snapshot's pages are mapped on first touch, and the kernel cannot read pages that are not
    /// mapped: a stream over a snapshot nobody has touched must still save every byte to a file.
    /// </summary>
    [Fact]
    public async Task SavingAnUntouchedSnapshotToAFile_WritesEveryByte()
    {
        using CowMemoryEngine engine = NewLargeEngine();
        using CowView world = engine.CreateRegion(1024 * PageSize);
        byte[] model = Pattern(world.Length, seed: 2);
        model.CopyTo(world.AsSpan());
        using CowView snapshot = world.Snapshot();
        string path = Path.Combine(Path.GetTempPath(), $"cowengine-stream-{Guid.NewGuid():N}.bin");
        try
        {
            await using (FileStream file = File.Create(path))
            await using (var stream = new CowViewStream(snapshot))
                await stream.CopyToAsync(file, TestContext.Current.CancellationToken);

            Assert.Equal(model, await File.ReadAllBytesAsync(path, TestContext.Current.CancellationToken));
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Pages unmapped by mapping-budget eviction are read back correctly too.</summary>
    [Fact]
    public void Stream_OverAViewWithEvictedSegments_ReadsEveryByte()
    {
        using CowMemoryEngine engine = NewFragmentingEngine(mappingBudget: 64, capacityBytes: LargeCapacity);
        using CowView world = engine.CreateRegion(8 * 512 * PageSize); // 8 segments of 2 MiB
        byte[] model = Pattern(world.Length, seed: 3);
        model.CopyTo(world.AsSpan());
        using CowView snapshot = world.Snapshot();
        // Every third page written: two mappings per page, far past a budget of 64, so the engine evicts.
        for (long page = 0; page < world.PageCount; page += 3)
        {
            world.AsSpan(page * PageSize, 1)[0] ^= 0xFF;
            model[page * PageSize] ^= 0xFF;
        }
        Assert.True(engine.GetStats().Evictions > 0, "the test needs evictions to mean anything");

        using var stream = new CowViewStream(world);
        Assert.Equal(SHA256.HashData(model), SHA256.HashData(stream));
    }

    [Fact]
    public void CompressedAndDecompressed_GivesTheViewsBytes()
    {
        using CowMemoryEngine engine = NewLargeEngine();
        using CowView world = engine.CreateRegion(64 * PageSize);
        byte[] model = new byte[world.Length];
        for (int i = 0; i < model.Length; i += 97)
            model[i] = (byte)(i / 97);
        model.CopyTo(world.AsSpan());

        using var compressed = new MemoryStream();
        using (var gzip = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
        using (var stream = new CowViewStream(world.Snapshot(), ownsView: true))
            stream.CopyTo(gzip);
        long compressedLength = compressed.Length;
        compressed.Position = 0;
        using var restored = new MemoryStream();
        using (var gunzip = new GZipStream(compressed, CompressionMode.Decompress))
            gunzip.CopyTo(restored);

        Assert.Equal(model, restored.ToArray());
        Assert.True(compressedLength < model.Length / 4, $"compressed to {compressedLength} of {model.Length} bytes");
    }

    [Fact]
    public void SeekPositionReadByteAndPartialReads_FollowTheStreamContract()
    {
        using CowMemoryEngine engine = NewLargeEngine();
        using CowView view = engine.CreateRegion(2 * PageSize);
        byte[] model = Pattern(view.Length, seed: 4);
        model.CopyTo(view.AsSpan());
        using var stream = new CowViewStream(view);

        Assert.True(stream.CanRead);
        Assert.True(stream.CanSeek);
        Assert.False(stream.CanWrite);
        Assert.Equal(2 * PageSize, stream.Length);

        Assert.Equal(model[0], stream.ReadByte());
        Assert.Equal(1, stream.Position);
        Assert.Equal(PageSize + 10, stream.Seek(PageSize + 10, SeekOrigin.Begin));
        Assert.Equal(model[PageSize + 10], stream.ReadByte());
        Assert.Equal(PageSize + 1, stream.Seek(-10, SeekOrigin.Current));
        Assert.Equal(model[PageSize + 1], stream.ReadByte());
        Assert.Equal(2 * PageSize - 5, stream.Seek(-5, SeekOrigin.End));

        var buffer = new byte[100];
        Assert.Equal(5, stream.Read(buffer, 10, 50)); // only 5 bytes are left
        Assert.Equal(model.AsSpan(2 * PageSize - 5, 5).ToArray(), buffer.AsSpan(10, 5).ToArray());
        Assert.Equal(0, buffer[9]);
        Assert.Equal(-1, stream.ReadByte());

        stream.Position = 3 * PageSize; // past the end: allowed, reads nothing
        Assert.Equal(0, stream.Read(buffer));
        Assert.Throws<IOException>(() => stream.Seek(-1, SeekOrigin.Begin));
        Assert.Throws<ArgumentOutOfRangeException>(() => stream.Position = -1);
        Assert.Throws<NotSupportedException>(() => stream.Write(buffer, 0, 1));
        Assert.Throws<NotSupportedException>(() => stream.WriteByte(1));
        Assert.Throws<NotSupportedException>(() => stream.SetLength(1));
    }

    [Fact]
    public async Task ReadAsync_ReadsLikeRead()
    {
        using CowMemoryEngine engine = NewLargeEngine();
        using CowView view = engine.CreateRegion(PageSize);
        byte[] model = Pattern(view.Length, seed: 5);
        model.CopyTo(view.AsSpan());
        await using var stream = new CowViewStream(view);
        stream.Position = 100;
        var buffer = new byte[200];

        int read = await stream.ReadAsync(buffer.AsMemory(), TestContext.Current.CancellationToken);

        Assert.Equal(200, read);
        Assert.Equal(model.AsSpan(100, 200).ToArray(), buffer);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => read = await stream.ReadAsync(buffer.AsMemory(), cancelled.Token));
    }

    /// <summary>Positions past 2 GiB work: a 3 GiB region, only the touched pages cost memory.</summary>
    [Fact]
    public void Read_BeyondTwoGigabytes()
    {
        using CowMemoryEngine engine = NewLargeEngine();
        using CowView view = engine.CreateRegion(3L << 30);
        long offset = (5L << 29) + 123; // 2.5 GiB + 123
        new byte[] { 1, 2, 3, 4 }.CopyTo(view.AsSpan(offset, 4));
        using var stream = new CowViewStream(view);

        stream.Seek(offset - 1, SeekOrigin.Begin);
        var buffer = new byte[6];
        stream.ReadExactly(buffer);

        Assert.Equal(new byte[] { 0, 1, 2, 3, 4, 0 }, buffer);
        Assert.Equal(3L << 30, stream.Length);
    }

    [Fact]
    public void Disposal_OfTheStreamOrTheView_IsReported()
    {
        using CowMemoryEngine engine = NewLargeEngine();
        CowView view = engine.CreateRegion(PageSize);
        var stream = new CowViewStream(view);
        view.Dispose();
        Assert.Throws<ObjectDisposedException>(() => stream.ReadByte());
        Assert.Throws<ObjectDisposedException>(() => stream.Read(new byte[1]));
        Assert.Throws<ObjectDisposedException>(() => new CowViewStream(view));

        CowView owned = engine.CreateRegion(PageSize);
        var owning = new CowViewStream(owned, ownsView: true);
        owning.Dispose();
        Assert.True(owned.IsDisposed);
        Assert.False(owning.CanRead);
        Assert.Throws<ObjectDisposedException>(() => owning.Position);

        CowView kept = engine.CreateRegion(PageSize);
        new CowViewStream(kept).Dispose();
        Assert.False(kept.IsDisposed);
        kept.Dispose();
    }

    private static byte[] Pattern(long length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
