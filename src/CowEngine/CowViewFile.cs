using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using Microsoft.Win32.SafeHandles;

namespace CowEngine;

/// <summary>
/// Saves views to files and loads them back as new regions: a full save, then incremental saves
/// of only the pages changed since the previous save, make a chain of files that loads back to the
/// same bytes. <see cref="CowViewFileChain"/> keeps the state an incremental save needs.
/// </summary>
/// <remarks>
/// <para><b>Format, version 1.</b> Integers are little-endian. A file is a sequence of 4096-byte
/// blocks, so page data is page-aligned in the file:</para>
/// <code>
/// block 0: header (4096 bytes, unused bytes zero)
///   0    8  magic "COWVIEW\0" (43 4F 57 56 49 45 57 00)
///   8    4  format version (1); a reader refuses versions it does not know
///   12   4  page size (4096)
///   16   8  view length in bytes (a positive multiple of the page size)
///   24   4  kind: 1 = full (pages not stored are zero), 2 = changes (pages not stored are as in the parent)
///   28   4  flags (0)
///   32   8  N: pages stored
///   40  16  chain id (the full file's random id; copied by every changes file of its chain)
///   56   8  sequence (0 for the full file, parent's + 1)
///   64   8  parent checksum (the parent's header checksum; 0 for a full file)
///   72   8  page table checksum: XXH64 (seed 0) of the N * 16 bytes of the page table
///   80   8  created, UTC, in .NET ticks (informational)
///   4088 8  header checksum: XXH64 (seed 0) of bytes [0, 4088)
/// page table, from offset 4096: N entries of 16 bytes, zero-padded to a whole block (the padding is checked)
///   0    8  page index (strictly ascending, below view length / 4096)
///   8    8  XXH64 (seed 0) of the page's 4096 bytes
/// page data, from the next block: N * 4096 bytes, in table order
/// </code>
/// <para>The file's length is exactly 4096 + the padded table + N * 4096. The header checksum covers
/// the table checksum, which covers every page's checksum: it identifies the file's contents, and a
/// changes file names its parent by it. A reader checks the magic, version, page size, both
/// checksums, that the table's padding is zero, the length, the chain links and every page, and
/// throws <see cref="InvalidDataException"/> naming the file, the fault and its file offsets: every
/// byte of a file is covered by a checksum or a check, so a truncated file or a flipped bit is
/// refused, never loaded as other bytes (docs/reliability.md, "Files that tear", has the tests).</para>
/// <para><b>Saving</b> copies each page through an ordinary buffer (the kernel cannot read a page
/// of a snapshot that was never touched; the engine maps it on a normal load). Save a snapshot, not
/// a view other threads are writing: the file then holds one consistent cut. A file is written
/// under a temporary name in the same directory, flushed to disk (fsync), renamed over the final
/// name (rename(2), atomic) and the directory flushed (fsync): a crash or a kill at any point leaves
/// under the final name either the file that was there before or the complete new one, never a
/// half-written file, and once the save returns the new file survives a power failure (on a disk
/// that honours flushes; the tests kill processes, they do not cut power). A crash can
/// leave the temporary file (<c>.{name}.{pid}.{id}.tmp</c>), which is never loaded; the next save
/// to the same name deletes those of processes that no longer run. A save reads every page of
/// the view to find the non-zero ones; a never-written page reads the zero page, so saving a large
/// sparse view commits nothing for its empty pages.</para>
/// <para><b>Loading</b> creates a region and reads each run of stored pages straight into it with
/// <see cref="RandomAccess.Read(SafeFileHandle, Span{byte}, long)"/>, after
/// <see cref="CowView.PrepareForWrite"/> on the run (the kernel cannot write into write-protected
/// pages).</para>
/// </remarks>
public static unsafe class CowViewFile
{
    /// <summary>The format version this library writes, and the newest it reads.</summary>
    public const int FormatVersion = 1;

    /// <summary>The first 8 bytes of every view file: ASCII "COWVIEW" and a zero byte.</summary>
    public static ReadOnlySpan<byte> Magic => "COWVIEW\0"u8;

    private const int PageSize = CowMemoryEngine.PageSize;
    private const int BlockSize = 4096;
    private const int HeaderChecksumOffset = BlockSize - sizeof(ulong);
    private const int TableEntryBytes = 16;
    private const int CopyBufferPages = 256;       // 1 MiB per write when saving
    private const int MaxPagesPerRead = 16_384;    // 64 MiB per read when loading: a span stays far below 2 GiB

    /// <summary>
    /// Saves a whole view (usually a snapshot) as the full file that starts a chain. Pages that are
    /// all zero are not stored.
    /// </summary>
    /// <param name="view">The view to save.</param>
    /// <param name="path">The file to create or replace.</param>
    /// <returns>The header written: pass it to <see cref="SaveChanges"/> for the next file of the chain.</returns>
    /// <exception cref="ObjectDisposedException">The view is disposed.</exception>
    /// <exception cref="IOException">Writing the file failed.</exception>
    public static CowViewFileHeader Save(CowView view, string path)
    {
        ArgumentNullException.ThrowIfNull(view);
        ArgumentException.ThrowIfNullOrEmpty(path);
        using (CowViewLease.Acquire(view))
            return Write(view, NonZeroPages(view), CowViewFileKind.Full, Guid.NewGuid(), sequence: 0, parentChecksum: 0, path);
    }

    /// <summary>
    /// Saves only the pages of <paramref name="view"/> that changed since <paramref name="parentView"/>
    /// (<see cref="CowView.GetChangedPages"/>) as the next file of <paramref name="parentFile"/>'s
    /// chain. <paramref name="parentView"/> must hold exactly what <paramref name="parentFile"/>
    /// saved: normally the snapshot that was saved into it, kept until now.
    /// </summary>
    /// <param name="view">The view to save (usually a newer snapshot of the same lineage).</param>
    /// <param name="parentView">The view saved into <paramref name="parentFile"/>.</param>
    /// <param name="parentFile">The header <see cref="Save"/> or <see cref="SaveChanges"/> returned for the previous file.</param>
    /// <param name="path">The file to create or replace.</param>
    /// <returns>The header written.</returns>
    /// <exception cref="ArgumentException">The views or the parent file differ in size, or the views belong to different engines.</exception>
    /// <exception cref="ObjectDisposedException">A view is disposed.</exception>
    /// <exception cref="IOException">Writing the file failed.</exception>
    public static CowViewFileHeader SaveChanges(CowView view, CowView parentView, CowViewFileHeader parentFile, string path)
    {
        ArgumentNullException.ThrowIfNull(view);
        ArgumentNullException.ThrowIfNull(parentView);
        ArgumentNullException.ThrowIfNull(parentFile);
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (parentFile.ViewLength != view.Length)
            throw new ArgumentException($"The parent file describes a view of {parentFile.ViewLength} bytes, the view has {view.Length}.", nameof(parentFile));
        using (CowViewLease.Acquire(view))
        {
            long[] pages = view.GetChangedPages(parentView).ToArray();
            return Write(view, pages, CowViewFileKind.Changes, parentFile.ChainId, parentFile.Sequence + 1, parentFile.Checksum, path);
        }
    }

    /// <summary>Reads and checks a file's header (not its pages).</summary>
    /// <exception cref="InvalidDataException">The file is not a view file of a version this library reads, or its header is damaged.</exception>
    /// <exception cref="IOException">Reading the file failed.</exception>
    public static CowViewFileHeader ReadHeader(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using SafeFileHandle file = File.OpenHandle(path);
        return ReadHeader(file, path).Header;
    }

    /// <summary>Loads a full file as a new region of <paramref name="engine"/>.</summary>
    /// <inheritdoc cref="Load(CowMemoryEngine, IReadOnlyList{string})"/>
    public static CowView Load(CowMemoryEngine engine, string path) => Load(engine, [path]);

    /// <summary>
    /// Loads a chain - its full file, then its changes files in order - as a new region of
    /// <paramref name="engine"/> holding the bytes of the view saved last. Every check is made
    /// before the region is returned; on any failure the region is released.
    /// </summary>
    /// <param name="engine">The engine to create the region in.</param>
    /// <param name="paths">The full file, then any number of its chain's changes files, in order.</param>
    /// <returns>A new region; dispose it when done.</returns>
    /// <exception cref="ArgumentException">No path given.</exception>
    /// <exception cref="InvalidDataException">A file is damaged, of an unknown version, or not the next link of the chain.</exception>
    /// <exception cref="IOException">Reading a file failed.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The view is larger than the engine's capacity.</exception>
    /// <exception cref="CowCapacityExceededException">The engine's capacity is in use.</exception>
    public static CowView Load(CowMemoryEngine engine, IReadOnlyList<string> paths)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(paths);
        if (paths.Count == 0)
            throw new ArgumentException("A chain starts with a full file; no file was given.", nameof(paths));

        var files = new List<OpenFile>(paths.Count);
        try
        {
            // Check every header and link before allocating anything.
            for (int i = 0; i < paths.Count; i++)
            {
                string path = paths[i];
                ArgumentException.ThrowIfNullOrEmpty(path, nameof(paths));
                SafeFileHandle handle = File.OpenHandle(path);
                files.Add(new OpenFile(path, handle, default!, 0));
                (CowViewFileHeader header, ulong tableChecksum) = ReadHeader(handle, path);
                files[i] = files[i] with { Header = header, TableChecksum = tableChecksum };
                CheckLink(files, i);
            }

            CowView region = engine.CreateRegion(files[0].Header.ViewLength);
            try
            {
                foreach (OpenFile file in files)
                    ReadPages(file, region);
                return region;
            }
            catch
            {
                region.Dispose();
                throw;
            }
        }
        finally
        {
            foreach (OpenFile file in files)
                file.Handle.Dispose();
        }
    }

    /// <summary>XXH64 with seed 0, the format's checksum (as a number: the file stores it little-endian).</summary>
    internal static ulong Checksum(ReadOnlySpan<byte> data) => XxHash64.HashToUInt64(data, seed: 0);

    private sealed record OpenFile(string Path, SafeFileHandle Handle, CowViewFileHeader Header, ulong TableChecksum);

    private static long TableBytes(long pageCount) => RoundUpToBlock(pageCount * TableEntryBytes);

    private static long DataOffset(long pageCount) => BlockSize + TableBytes(pageCount);

    private static long FileLength(long pageCount) => DataOffset(pageCount) + pageCount * PageSize;

    private static long RoundUpToBlock(long bytes) => (bytes + BlockSize - 1) / BlockSize * BlockSize;

    private static long[] NonZeroPages(CowView view)
    {
        var pages = new List<long>();
        for (long page = 0; page < view.PageCount; page++)
            if (new ReadOnlySpan<byte>(view.Pointer + page * PageSize, PageSize).ContainsAnyExcept((byte)0))
                pages.Add(page);
        return pages.ToArray();
    }

    private static CowViewFileHeader Write(CowView view, long[] pages, CowViewFileKind kind, Guid chainId, long sequence, ulong parentChecksum, string path)
    {
        if ((long)pages.Length * TableEntryBytes > Array.MaxLength - BlockSize)
            throw new NotSupportedException($"{pages.Length} pages are more than one file can list.");
        string fullPath = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(fullPath)!;
        string temporary = Path.Combine(directory,
            string.Create(CultureInfo.InvariantCulture, $".{Path.GetFileName(fullPath)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp"));
        string fileName = Path.GetFileName(fullPath);
        CowViewFileDirectory.RemoveStaleTemporaries(directory, target => target == fileName);
        var table = new byte[TableBytes(pages.Length)];
        byte[] buffer = ArrayPool<byte>.Shared.Rent(CopyBufferPages * PageSize);
        try
        {
            CowViewFileHeader header;
            using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0))
            {
                SafeFileHandle handle = file.SafeFileHandle;
                long fileOffset = DataOffset(pages.Length);
                int buffered = 0;
                for (int i = 0; i < pages.Length; i++)
                {
                    // Copy first, then checksum the copy: the checksum matches the bytes written
                    // even if another thread is writing the view.
                    Span<byte> copy = buffer.AsSpan(buffered * PageSize, PageSize);
                    new ReadOnlySpan<byte>(view.Pointer + pages[i] * PageSize, PageSize).CopyTo(copy);
                    BinaryPrimitives.WriteInt64LittleEndian(table.AsSpan(i * TableEntryBytes), pages[i]);
                    BinaryPrimitives.WriteUInt64LittleEndian(table.AsSpan(i * TableEntryBytes + 8), Checksum(copy));
                    if (++buffered == CopyBufferPages)
                    {
                        RandomAccess.Write(handle, buffer.AsSpan(0, buffered * PageSize), fileOffset);
                        fileOffset += buffered * PageSize;
                        buffered = 0;
                    }
                }
                if (buffered != 0)
                    RandomAccess.Write(handle, buffer.AsSpan(0, buffered * PageSize), fileOffset);
                RandomAccess.Write(handle, table, BlockSize);

                var fields = new CowViewFileHeader(FormatVersion, view.Length, kind, pages.Length, chainId, sequence, parentChecksum, Checksum: 0, DateTime.UtcNow);
                byte[] headerBlock = EncodeHeader(fields, Checksum(table.AsSpan(0, pages.Length * TableEntryBytes)));
                header = fields with { Checksum = BinaryPrimitives.ReadUInt64LittleEndian(headerBlock.AsSpan(HeaderChecksumOffset)) };
                RandomAccess.Write(handle, headerBlock, 0);
                // fsync: every byte is on disk before the name points at it.
                file.Flush(flushToDisk: true);
            }
            // rename(2), atomic: the name points at the old file or at the complete new one.
            File.Move(temporary, fullPath, overwrite: true);
            // And the rename itself is on disk before the save returns.
            CowViewFileDirectory.Sync(directory, fullPath);
            return header;
        }
        catch
        {
            try
            {
                File.Delete(temporary);
            }
            catch (IOException)
            {
                // Best effort: the original failure is the one to report.
            }
            throw;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static byte[] EncodeHeader(CowViewFileHeader header, ulong tableChecksum)
    {
        var block = new byte[BlockSize];
        Span<byte> b = block;
        Magic.CopyTo(b);
        BinaryPrimitives.WriteInt32LittleEndian(b[8..], header.Version);
        BinaryPrimitives.WriteInt32LittleEndian(b[12..], PageSize);
        BinaryPrimitives.WriteInt64LittleEndian(b[16..], header.ViewLength);
        BinaryPrimitives.WriteInt32LittleEndian(b[24..], (int)header.Kind);
        BinaryPrimitives.WriteInt32LittleEndian(b[28..], 0);
        BinaryPrimitives.WriteInt64LittleEndian(b[32..], header.PageCount);
        header.ChainId.TryWriteBytes(b.Slice(40, 16));
        BinaryPrimitives.WriteInt64LittleEndian(b[56..], header.Sequence);
        BinaryPrimitives.WriteUInt64LittleEndian(b[64..], header.ParentChecksum);
        BinaryPrimitives.WriteUInt64LittleEndian(b[72..], tableChecksum);
        BinaryPrimitives.WriteInt64LittleEndian(b[80..], header.CreatedUtc.Ticks);
        BinaryPrimitives.WriteUInt64LittleEndian(b[HeaderChecksumOffset..], Checksum(b[..HeaderChecksumOffset]));
        return block;
    }

    private static (CowViewFileHeader Header, ulong TableChecksum) ReadHeader(SafeFileHandle file, string path)
    {
        var block = new byte[BlockSize];
        int read = ReadFully(file, block, 0);
        ReadOnlySpan<byte> b = block;
        if (read == 0)
            throw Corrupt(path, $"it is empty (a view file starts with a {BlockSize}-byte header)");
        int magicBytes = Math.Min(read, Magic.Length);
        if (!b[..magicBytes].SequenceEqual(Magic[..magicBytes]))
            throw Corrupt(path, "it does not start with the CowEngine view file magic \"COWVIEW\\0\" (file bytes 0 to 8)");
        if (read < BlockSize)
            throw Corrupt(path, $"it is {read} bytes long, shorter than the {BlockSize}-byte header (truncated)");
        ulong storedChecksum = BinaryPrimitives.ReadUInt64LittleEndian(b[HeaderChecksumOffset..]);
        ulong checksum = Checksum(b[..HeaderChecksumOffset]);
        int version = BinaryPrimitives.ReadInt32LittleEndian(b[8..]);
        if (version < 1 || version > FormatVersion)
        {
            // Checked before the checksum: another version may lay its header out otherwise. The
            // checksum still tells a newer file from a damaged version field.
            throw Corrupt(path, $"its header names format version {version} (file bytes 8 to 12), which this library does not read (it reads 1 to {FormatVersion}); " +
                (storedChecksum == checksum
                    ? "the file may come from a newer version of CowEngine"
                    : $"the header does not match a version-{FormatVersion} header checksum either, so the header is probably damaged"));
        }
        if (storedChecksum != checksum)
            throw Corrupt(path, $"its header checksum (file bytes {HeaderChecksumOffset} to {BlockSize}) is 0x{storedChecksum:x16}, " +
                $"its header (file bytes 0 to {HeaderChecksumOffset}) hashes to 0x{checksum:x16} (the header is damaged)");
        int pageSize = BinaryPrimitives.ReadInt32LittleEndian(b[12..]);
        if (pageSize != PageSize)
            throw Corrupt(path, $"its page size is {pageSize}, not {PageSize}");
        long viewLength = BinaryPrimitives.ReadInt64LittleEndian(b[16..]);
        if (viewLength <= 0 || viewLength % PageSize != 0)
            throw Corrupt(path, $"its view length {viewLength} is not a positive multiple of {PageSize}");
        var kind = (CowViewFileKind)BinaryPrimitives.ReadInt32LittleEndian(b[24..]);
        if (kind is not (CowViewFileKind.Full or CowViewFileKind.Changes))
            throw Corrupt(path, $"its kind {(int)kind} is neither full (1) nor changes (2)");
        int flags = BinaryPrimitives.ReadInt32LittleEndian(b[28..]);
        if (flags != 0)
            throw Corrupt(path, $"it has flags 0x{flags:x} that version {FormatVersion} does not define");
        long pageCount = BinaryPrimitives.ReadInt64LittleEndian(b[32..]);
        if (pageCount < 0 || pageCount > viewLength / PageSize)
            throw Corrupt(path, $"it claims {pageCount} pages of a view of {viewLength / PageSize}");
        var chainId = new Guid(b.Slice(40, 16));
        long sequence = BinaryPrimitives.ReadInt64LittleEndian(b[56..]);
        ulong parentChecksum = BinaryPrimitives.ReadUInt64LittleEndian(b[64..]);
        if (kind == CowViewFileKind.Full && (sequence != 0 || parentChecksum != 0))
            throw Corrupt(path, "it is a full file with a parent");
        if (kind == CowViewFileKind.Changes && sequence < 1)
            throw Corrupt(path, "it is a changes file without a parent");
        ulong tableChecksum = BinaryPrimitives.ReadUInt64LittleEndian(b[72..]);
        long createdTicks = BinaryPrimitives.ReadInt64LittleEndian(b[80..]);
        if (createdTicks < DateTime.MinValue.Ticks || createdTicks > DateTime.MaxValue.Ticks)
            throw Corrupt(path, "its creation time is out of range");
        long expectedLength = FileLength(pageCount);
        long length = RandomAccess.GetLength(file);
        if (length != expectedLength)
            throw Corrupt(path, $"it is {length} bytes long; its header says it holds {pageCount} pages, so it should be {expectedLength} (truncated or extended)");
        var header = new CowViewFileHeader(version, viewLength, kind, pageCount, chainId, sequence, parentChecksum, checksum,
            new DateTime(createdTicks, DateTimeKind.Utc));
        return (header, tableChecksum);
    }

    private static void CheckLink(List<OpenFile> files, int index)
    {
        OpenFile file = files[index];
        CowViewFileHeader header = file.Header;
        if (index == 0)
        {
            if (header.Kind != CowViewFileKind.Full)
                throw Corrupt(file.Path, $"a chain must start with a full file; this is changes file {header.Sequence} of chain {header.ChainId}");
            return;
        }
        OpenFile parent = files[index - 1];
        if (header.Kind != CowViewFileKind.Changes)
            throw Corrupt(file.Path, $"only changes files may follow the chain's full file {parent.Path}; this is another full file");
        if (header.ChainId != parent.Header.ChainId)
            throw Corrupt(file.Path, $"it belongs to chain {header.ChainId}, not to {parent.Header.ChainId} of {parent.Path}");
        if (header.Sequence != parent.Header.Sequence + 1 || header.ParentChecksum != parent.Header.Checksum)
            throw Corrupt(file.Path, $"it is file {header.Sequence} of its chain, saved after a file with checksum 0x{header.ParentChecksum:x16}; " +
                $"the file before it, {parent.Path}, is file {parent.Header.Sequence} with checksum 0x{parent.Header.Checksum:x16} (a file is missing, repeated or out of order)");
        if (header.ViewLength != parent.Header.ViewLength)
            throw Corrupt(file.Path, $"its view length {header.ViewLength} differs from its parent's {parent.Header.ViewLength}");
    }

    private static void ReadPages(OpenFile file, CowView region)
    {
        long count = file.Header.PageCount;
        long tableEnd = BlockSize + count * TableEntryBytes;
        var table = new byte[TableBytes(count)];
        if (ReadFully(file.Handle, table, BlockSize) != table.Length)
            throw Corrupt(file.Path, "its page table is truncated");
        if (Checksum(table.AsSpan(0, (int)(count * TableEntryBytes))) != file.TableChecksum)
            throw Corrupt(file.Path, $"its page table does not match its checksum (the table, file bytes {BlockSize} to {tableEnd}, is damaged)");
        // The padding is not under the checksum: the writer zeroes it, so anything else is damage.
        int nonZero = table.AsSpan((int)(count * TableEntryBytes)).IndexOfAnyExcept((byte)0);
        if (nonZero >= 0)
            throw Corrupt(file.Path, $"its page table's padding (file bytes {tableEnd} to {DataOffset(count)}) is not zero at file byte {tableEnd + nonZero} (the padding is damaged)");
        var pages = new long[count];
        for (long i = 0; i < count; i++)
        {
            long page = BinaryPrimitives.ReadInt64LittleEndian(table.AsSpan((int)(i * TableEntryBytes)));
            if (page < 0 || page >= region.PageCount || (i > 0 && page <= pages[i - 1]))
                throw Corrupt(file.Path, $"page table entry {i} (file byte {BlockSize + i * TableEntryBytes}) names page {page}: entries must ascend and be below {region.PageCount}");
            pages[i] = page;
        }

        long dataOffset = DataOffset(count);
        for (long first = 0; first < count;)
        {
            // A run of consecutive pages is consecutive in the file too: one read.
            long end = first + 1;
            while (end < count && end - first < MaxPagesPerRead && pages[end] == pages[end - 1] + 1)
                end++;
            long offset = pages[first] * PageSize;
            int bytes = (int)((end - first) * PageSize);
            region.PrepareForWrite(offset, bytes);
            Span<byte> target = region.AsSpan(offset, bytes);
            if (ReadFully(file.Handle, target, dataOffset + first * PageSize) != bytes)
                throw Corrupt(file.Path, "its page data is truncated");
            for (long i = first; i < end; i++)
            {
                ulong expected = BinaryPrimitives.ReadUInt64LittleEndian(table.AsSpan((int)(i * TableEntryBytes + 8)));
                if (Checksum(region.AsSpan(pages[i] * PageSize, PageSize)) != expected)
                    throw Corrupt(file.Path, $"page {pages[i]} does not match its checksum (its data, table entry {i} at file bytes " +
                        $"{dataOffset + i * PageSize} to {dataOffset + (i + 1) * PageSize}, is damaged)");
            }
            first = end;
        }
    }

    /// <summary>Reads until the buffer is full or the file ends; returns the bytes read.</summary>
    private static int ReadFully(SafeFileHandle file, Span<byte> buffer, long fileOffset)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int read = RandomAccess.Read(file, buffer[total..], fileOffset + total);
            if (read == 0)
                break;
            total += read;
        }
        return total;
    }

    private static InvalidDataException Corrupt(string path, string problem) =>
        new($"{path} is not a usable CowEngine view file: {problem}.");
}
