using System.Buffers.Binary;
using System.Text;
using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// <see cref="CowViewFile"/> and <see cref="CowViewFileChain"/>: full and incremental saves, loaded
/// back and compared with a byte-array model of the view at every save; and every check of the
/// format refusing a damaged or misordered file.
/// </summary>
public sealed class ViewFileTests : IDisposable
{
    private const int PageSize = CowMemoryEngine.PageSize;

    private readonly string _directory = Directory.CreateTempSubdirectory("cowengine-files-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string PathOf(string name) => Path.Combine(_directory, name);

    /// <summary>The format's checksum is XXH64 with seed 0: the reference implementation's values.</summary>
    [Theory]
    [InlineData("", 0xEF46DB3751D8E999UL)]
    [InlineData("a", 0xD24EC4F1A98C6E5BUL)]
    [InlineData("abc", 0x44BC2CF5AD770999UL)]
    [InlineData("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", 0x7639D419DE614EEDUL)]
    public void Checksum_IsXxHash64(string text, ulong expected) =>
        Assert.Equal(expected, CowViewFile.Checksum(Encoding.ASCII.GetBytes(text)));

    [Fact]
    public void Checksum_OfAPage_IsXxHash64()
    {
        // bytes 0..255 sixteen times: 4096 bytes, the reference value from libxxhash 0.8.1
        byte[] page = Enumerable.Range(0, PageSize).Select(i => (byte)i).ToArray();
        Assert.Equal(0x0F6E64BE186AF6A4UL, CowViewFile.Checksum(page));
    }

    [Fact]
    public void SaveThenLoad_GivesTheSameBytes_AndStoresOnlyNonZeroPages()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView world = engine.CreateRegion(300 * PageSize);
        var model = new byte[world.Length];
        var random = new Random(11);
        for (int page = 0; page < 300; page += 3) // two pages in three stay zero
            random.NextBytes(model.AsSpan(page * PageSize, PageSize));
        model.CopyTo(world.AsSpan());
        using CowView snapshot = world.Snapshot();
        string path = PathOf("world.cowview");

        CowViewFileHeader header = CowViewFile.Save(snapshot, path);
        using CowView loaded = CowViewFile.Load(engine, path);

        Assert.Equal(model, loaded.AsSpan().ToArray());
        Assert.False(loaded.IsSnapshot);
        Assert.Equal(CowViewFileKind.Full, header.Kind);
        Assert.Equal(100, header.PageCount);
        Assert.Equal(0, header.Sequence);
        Assert.Equal(world.Length, header.ViewLength);
        Assert.Equal(4096 + 4096 + 100L * PageSize, new FileInfo(path).Length); // header, 1,600-byte table padded, pages
        Assert.Equal(header, CowViewFile.ReadHeader(path));
        Assert.Equal(Encoding.ASCII.GetBytes("COWVIEW\0"), File.ReadAllBytes(path).AsSpan(0, 8).ToArray());
        Assert.Equal(new[] { "world.cowview" }, Directory.GetFiles(_directory).Select(f => Path.GetFileName(f))); // no temporary left
    }

    /// <summary>
    /// The model test of the chain: random writes (some of them rewriting a page with the bytes it
    /// held), a rollback to an older snapshot, a save after each round; every prefix of the chain
    /// loads back to the model as it was at that save, and each changes file holds exactly the
    /// pages written that round.
    /// </summary>
    [Fact]
    public void IncrementalChain_EveryPrefixLoadsBackToTheModel()
    {
        const int Pages = 1_200; // three segments, the last one partial
        using CowMemoryEngine engine = NewEngine();
        using CowView world = engine.CreateRegion(Pages * PageSize);
        var model = new byte[world.Length];
        var random = new Random(12);
        random.NextBytes(model.AsSpan(0, 50 * PageSize));
        model.CopyTo(world.AsSpan());
        using var chain = new CowViewFileChain(PathOf("sim"));
        var modelAtSave = new List<byte[]>();
        CowView? rollbackPoint = null;
        byte[]? modelAtRollbackPoint = null;

        try
        {
            for (int round = 0; round < 8; round++)
            {
                var written = new HashSet<long>();
                bool rolledBack = false;
                if (round == 5)
                {
                    world.RestoreTo(rollbackPoint!);
                    modelAtRollbackPoint!.CopyTo(model, 0);
                    rolledBack = true;
                }
                int writes = round == 0 ? 0 : random.Next(1, 40);
                for (int w = 0; w < writes; w++)
                {
                    long page = random.Next(Pages);
                    int offset = random.Next(PageSize - 16);
                    var bytes = new byte[16];
                    if (w % 5 == 0)
                        model.AsSpan((int)(page * PageSize + offset), 16).CopyTo(bytes); // same bytes again
                    else
                        random.NextBytes(bytes);
                    bytes.CopyTo(world.AsSpan(page * PageSize + offset, 16));
                    bytes.CopyTo(model, page * PageSize + offset);
                    written.Add(page);
                }
                if (round == 2)
                {
                    rollbackPoint = world.Snapshot();
                    modelAtRollbackPoint = (byte[])model.Clone();
                }

                CowViewFileHeader header = chain.Save(world);
                modelAtSave.Add((byte[])model.Clone());

                Assert.Equal(round, header.Sequence);
                if (round == 0)
                {
                    Assert.Equal(CowViewFileKind.Full, header.Kind);
                    Assert.Equal(50, header.PageCount);
                }
                else
                {
                    Assert.Equal(CowViewFileKind.Changes, header.Kind);
                    // An incremental file holds the pages whose bytes changed since the last save
                    // (GetChangedPages compares bytes: a page written with the bytes it held is not one).
                    byte[] previous = modelAtSave[^2];
                    long changed = Enumerable.Range(0, Pages).Count(page =>
                        !model.AsSpan(page * PageSize, PageSize).SequenceEqual(previous.AsSpan(page * PageSize, PageSize)));
                    if (!rolledBack)
                        Assert.Equal(changed, header.PageCount);
                    Assert.True(header.PageCount <= written.Count || rolledBack, $"round {round}: {header.PageCount} pages saved, {written.Count} written");
                }
            }

            Assert.Equal(8, chain.Files.Count);
            for (int length = 1; length <= chain.Files.Count; length++)
            {
                using CowView loaded = CowViewFile.Load(engine, chain.Files.Take(length).ToList());
                Assert.True(modelAtSave[length - 1].AsSpan().SequenceEqual(loaded.AsSpan()), $"the first {length} files should load back to save {length - 1}");
            }
            using CowView last = chain.Load(engine);
            Assert.Equal(model, last.AsSpan().ToArray());
            Assert.Equal(model, world.AsSpan().ToArray());
        }
        finally
        {
            rollbackPoint?.Dispose();
        }
    }

    [Fact]
    public void StaticSaveChanges_LinksToItsParent_AndStoresOnlyChangedPages()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView world = engine.CreateRegion(64 * PageSize);
        world.AsSpan(0, 64 * PageSize).Fill(9);
        using CowView first = world.Snapshot();
        CowViewFileHeader firstFile = CowViewFile.Save(first, PathOf("a.0"));
        world.AsSpan(10 * PageSize, 2 * PageSize).Fill(1);
        world.AsSpan(40 * PageSize + 7, 1)[0] = 2;
        using CowView second = world.Snapshot();

        CowViewFileHeader secondFile = CowViewFile.SaveChanges(second, first, firstFile, PathOf("a.1"));

        Assert.Equal(3, secondFile.PageCount);
        Assert.Equal(firstFile.ChainId, secondFile.ChainId);
        Assert.Equal(firstFile.Checksum, secondFile.ParentChecksum);
        Assert.Equal(1, secondFile.Sequence);
        Assert.Equal(4096 + 4096 + 3L * PageSize, new FileInfo(PathOf("a.1")).Length);
        using CowView loaded = CowViewFile.Load(engine, [PathOf("a.0"), PathOf("a.1")]);
        Assert.True(second.AsSpan().SequenceEqual(loaded.AsSpan()));
    }

    // ---- files written by an earlier version of the library still load ----

    private static string TestDataPath(string name) => Path.Combine(AppContext.BaseDirectory, "TestData", name);

    /// <summary>The bytes the test data generator wrote (TestData/README.md): page <paramref name="page"/>, byte <paramref name="index"/>, for <paramref name="seed"/>.</summary>
    private static byte Pattern(int seed, long page, int index)
    {
        uint x = unchecked((uint)seed * 0x9E3779B1u + (uint)page * 0x85EBCA77u + (uint)index * 0xC2B2AE3Du);
        x ^= x >> 15;
        x = unchecked(x * 0x2C1B3C6Du);
        x ^= x >> 12;
        return (byte)x;
    }

    private static void FillPattern(byte[] model, int seed, long page, int offset, int count)
    {
        for (int i = offset; i < offset + count; i++)
            model[page * PageSize + i] = Pattern(seed, page, i);
    }

    /// <summary>
    /// A full file written by the library's own XXH64 before it used System.IO.Hashing: it passes
    /// every check (the header, table and page checksums are recomputed on load) and loads back to
    /// every byte that was saved.
    /// </summary>
    [Fact]
    public void AFullFileOfAnEarlierVersion_LoadsByteForByte()
    {
        string path = TestDataPath("full-v1.cowview");
        var model = new byte[8 * PageSize];
        foreach (int page in new[] { 0, 1, 2, 4, 7 })
            FillPattern(model, seed: 1, page, 0, PageSize);

        CowViewFileHeader header = CowViewFile.ReadHeader(path);
        using CowMemoryEngine engine = NewEngine();
        using CowView loaded = CowViewFile.Load(engine, path);

        Assert.Equal(new CowViewFileHeader(1, 8 * PageSize, CowViewFileKind.Full, 5, Guid.Parse("97521d07-1a3e-46a4-94cc-043e1f3b9a60"),
            0, 0, 0x67F7CAA35A0FE6CFUL, header.CreatedUtc), header);
        Assert.Equal(model, loaded.AsSpan().ToArray());
    }

    /// <summary>
    /// A chain (full file, two changes files) of the earlier version: each prefix loads back to the
    /// bytes of its last save, and each file's header checksum, which the next file names as its
    /// parent, is the one written then.
    /// </summary>
    [Fact]
    public void AChainOfAnEarlierVersion_LoadsByteForByte()
    {
        string[] paths = [TestDataPath("chain-v1.0000.cowview"), TestDataPath("chain-v1.0001.cowview"), TestDataPath("chain-v1.0002.cowview")];
        ulong[] checksums = [0xDE0D1D104013E5C8UL, 0x781128861A74C3DCUL, 0x6946BF462CA01937UL];
        long[] pageCounts = [4, 2, 2];
        var model = new byte[6 * PageSize];
        var modelAtSave = new List<byte[]>();
        foreach (int page in new[] { 0, 1, 3, 5 })
            FillPattern(model, seed: 2, page, 0, PageSize);
        modelAtSave.Add((byte[])model.Clone());
        FillPattern(model, seed: 3, 1, 0, PageSize);
        FillPattern(model, seed: 3, 2, 0, PageSize);
        modelAtSave.Add((byte[])model.Clone());
        FillPattern(model, seed: 4, 5, 1000, 100);
        model.AsSpan(0, PageSize).Clear(); // a page written back to zero: a changes file stores it all the same
        modelAtSave.Add((byte[])model.Clone());

        using CowMemoryEngine engine = NewEngine();
        for (int i = 0; i < paths.Length; i++)
        {
            CowViewFileHeader header = CowViewFile.ReadHeader(paths[i]);
            Assert.Equal(new CowViewFileHeader(1, 6 * PageSize, i == 0 ? CowViewFileKind.Full : CowViewFileKind.Changes, pageCounts[i],
                Guid.Parse("e25cdc1d-725b-4b3f-adff-fdf634b63100"), i, i == 0 ? 0 : checksums[i - 1], checksums[i], header.CreatedUtc), header);

            using CowView loaded = CowViewFile.Load(engine, paths.Take(i + 1).ToList());
            Assert.True(modelAtSave[i].AsSpan().SequenceEqual(loaded.AsSpan()), $"the first {i + 1} files should load back to save {i}");
        }
    }

    // ---- every check refuses, and a failed load leaves nothing allocated ----

    [Fact]
    public void DamagedPageData_IsRefused_NamingThePage()
    {
        using CowMemoryEngine engine = NewEngine();
        string path = SaveSample(engine, "damaged", pages: 8);
        long dataStart = 4096 + 4096;
        FlipByte(path, dataStart + 5 * PageSize + 100);

        var error = AssertLoadRefused(engine, [path]);
        Assert.Contains("page 5 does not match its checksum", error.Message);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void DamagedHeaderOrTable_IsRefused()
    {
        using CowMemoryEngine engine = NewEngine();
        string header = SaveSample(engine, "header", pages: 4);
        FlipByte(header, 20); // the view length
        Assert.Contains("header checksum", AssertLoadRefused(engine, [header]).Message);
        Assert.Throws<InvalidDataException>(() => CowViewFile.ReadHeader(header));

        string table = SaveSample(engine, "table", pages: 4);
        FlipByte(table, 4096 + 16 + 8); // second entry's page checksum
        Assert.Contains("page table does not match", AssertLoadRefused(engine, [table]).Message);
    }

    [Fact]
    public void WrongMagic_UnknownVersion_AndWrongLength_AreRefused()
    {
        using CowMemoryEngine engine = NewEngine();
        string notOurs = PathOf("not-ours");
        File.WriteAllText(notOurs, "hello, world");
        Assert.Contains("magic", AssertLoadRefused(engine, [notOurs]).Message);

        string future = SaveSample(engine, "future", pages: 2);
        using (FileStream file = File.OpenWrite(future))
        {
            file.Position = 8;
            file.Write(BitConverter.GetBytes(2)); // version 2, checked before the header checksum
        }
        Assert.Contains("format version 2", AssertLoadRefused(engine, [future]).Message);

        string truncated = SaveSample(engine, "truncated", pages: 3);
        using (FileStream file = File.OpenWrite(truncated))
            file.SetLength(file.Length - 1);
        Assert.Contains("truncated or extended", AssertLoadRefused(engine, [truncated]).Message);

        string extended = SaveSample(engine, "extended", pages: 3);
        File.AppendAllText(extended, "x");
        Assert.Contains("truncated or extended", AssertLoadRefused(engine, [extended]).Message);
    }

    [Fact]
    public void ChainsInTheWrongOrder_WithAGap_OrFromAnotherChain_AreRefused()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView world = engine.CreateRegion(16 * PageSize);
        using var chain = new CowViewFileChain(PathOf("c"));
        for (int i = 0; i < 3; i++)
        {
            world.AsSpan(i * PageSize, 1)[0] = (byte)(i + 1);
            chain.Save(world);
        }
        string full = chain.Files[0], one = chain.Files[1], two = chain.Files[2];
        using var otherChain = new CowViewFileChain(PathOf("other"));
        otherChain.Save(world);
        otherChain.Save(world);

        Assert.Contains("must start with a full file", AssertLoadRefused(engine, [one, two]).Message);
        Assert.Contains("missing, repeated or out of order", AssertLoadRefused(engine, [full, two]).Message);
        Assert.Contains("missing, repeated or out of order", AssertLoadRefused(engine, [full, two, one]).Message);
        Assert.Contains("missing, repeated or out of order", AssertLoadRefused(engine, [full, one, one]).Message);
        Assert.Contains("only changes files may follow", AssertLoadRefused(engine, [full, full]).Message);
        Assert.Contains("belongs to chain", AssertLoadRefused(engine, [full, otherChain.Files[1]]).Message);
        Assert.Throws<ArgumentException>(() => CowViewFile.Load(engine, Array.Empty<string>()));

        using CowView loaded = CowViewFile.Load(engine, [full, one, two]);
        Assert.Equal(new byte[] { 1, 2, 3 }, new[] { loaded.AsSpan(0, 1)[0], loaded.AsSpan(PageSize, 1)[0], loaded.AsSpan(2 * PageSize, 1)[0] });
    }

    [Fact]
    public void Chain_RefusesAViewOfAnotherSize_AndAFailedSaveLeavesTheChainUnchanged()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView world = engine.CreateRegion(4 * PageSize);
        using CowView other = engine.CreateRegion(8 * PageSize);
        using var chain = new CowViewFileChain(PathOf("missing-directory/w"));
        Assert.ThrowsAny<IOException>(() => chain.Save(world));
        Assert.Empty(chain.Files);
        Assert.Null(chain.LastSaved);
        Assert.Equal(1 + 1, engine.GetStats().LiveViews); // the save's snapshot was released

        using var good = new CowViewFileChain(PathOf("w"));
        good.Save(world);
        Assert.Throws<ArgumentException>(() => good.Save(other));
        Assert.Single(good.Files);
        Assert.Throws<InvalidOperationException>(() => new CowViewFileChain(PathOf("empty")).Load(engine));
    }

    // ---- finding a chain from the files alone (after a restart or a crash) ----

    [Fact]
    public void FindFiles_FindsTheChainFromTheFilesAlone_AndLoadLatestLoadsItsLastSave()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView world = engine.CreateRegion(16 * PageSize);
        using var chain = new CowViewFileChain(PathOf("w"));
        for (int i = 0; i < 4; i++)
        {
            world.AsSpan(i * PageSize, 1)[0] = (byte)(i + 1);
            chain.Save(world);
        }

        Assert.Equal(chain.Files, CowViewFileChain.FindFiles(PathOf("w")));
        using CowView latest = CowViewFileChain.LoadLatest(engine, PathOf("w"));
        Assert.True(world.AsSpan().SequenceEqual(latest.AsSpan()));
    }

    /// <summary>
    /// A new chain under the same base path replaces the old one: its full save replaces the full
    /// file, then the old chain's changes files are deleted. If the process dies between the two
    /// (put back here by hand), FindFiles leaves the old files out by their chain id, and the next
    /// save deletes the ones that follow its own.
    /// </summary>
    [Fact]
    public void ANewChainUnderTheSameBasePath_ReplacesTheOldOne_AndItsLeftoversAreLeftOut()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView world = engine.CreateRegion(16 * PageSize);
        var old = new CowViewFileChain(PathOf("w"));
        for (int i = 0; i < 4; i++)
        {
            world.AsSpan(i * PageSize, 1)[0] = (byte)(i + 1);
            old.Save(world);
        }
        old.Dispose();
        byte[][] oldLinks = old.Files.Skip(1).Select(File.ReadAllBytes).ToArray();

        world.AsSpan().Fill(0x5A);
        using var replacing = new CowViewFileChain(PathOf("w"));
        replacing.Save(world);
        Assert.All(old.Files.Skip(1), path => Assert.False(File.Exists(path), $"{path} of the old chain should be deleted"));
        Assert.Equal([PathOf("w.0000.cowview")], CowViewFileChain.FindFiles(PathOf("w")));

        // As if the process had died right after the new full file's rename.
        for (int i = 0; i < oldLinks.Length; i++)
            File.WriteAllBytes(old.Files[i + 1], oldLinks[i]);
        Assert.Equal([PathOf("w.0000.cowview")], CowViewFileChain.FindFiles(PathOf("w")));
        using (CowView latest = CowViewFileChain.LoadLatest(engine, PathOf("w")))
            Assert.True(latest.AsSpan().SequenceEqual(world.AsSpan()));

        world.AsSpan(0, 1)[0] = 0x77;
        replacing.Save(world);
        Assert.False(File.Exists(old.Files[2]));
        Assert.False(File.Exists(old.Files[3]));
        Assert.Equal(replacing.Files, CowViewFileChain.FindFiles(PathOf("w")));
        using (CowView latest = CowViewFileChain.LoadLatest(engine, PathOf("w")))
            Assert.True(latest.AsSpan().SequenceEqual(world.AsSpan()));
    }

    /// <summary>
    /// A save killed before its rename leaves <c>.{name}.{pid}.{id}.tmp</c>. The next save to that
    /// name (or of a chain under that base path, for any of its links) deletes those of processes
    /// that no longer run, and leaves a running process's (a save under way) and every other file.
    /// PID 999999999 cannot run: Linux's PID limit is 4,194,304.
    /// </summary>
    [Fact]
    public void ASave_DeletesTheTemporariesOfKilledSaves_AndNothingElse()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView world = engine.CreateRegion(4 * PageSize);
        world.AsSpan().Fill(0x21);
        string id = new('a', 32);
        string[] stale = [".world.cowview.999999999." + id + ".tmp", ".c.0007.cowview.999999999." + id + ".tmp"];
        string[] kept =
        [
            $".world.cowview.{Environment.ProcessId}.{id}.tmp", // this process: a save may be under way
            ".world.cowview.1." + id + ".tmp",                   // PID 1 runs
            ".other.cowview.999999999." + id + ".tmp",          // another file's
            ".c.0007.cowview.999999999.not-an-id.tmp",          // not a name saves make
            ".c.x007.cowview.999999999." + id + ".tmp",         // not a link of the chain
            "notes.tmp",
        ];
        foreach (string name in stale.Concat(kept))
            File.WriteAllText(PathOf(name), "left behind");

        CowViewFile.Save(world, PathOf("world.cowview"));
        Assert.False(File.Exists(PathOf(stale[0])), "the killed save's temporary of world.cowview should be deleted");
        Assert.True(File.Exists(PathOf(stale[1])), "a single file's save must not touch a chain's temporaries");

        using var chain = new CowViewFileChain(PathOf("c"));
        chain.Save(world);
        Assert.False(File.Exists(PathOf(stale[1])), "the chain's save should delete its killed link's temporary");
        Assert.All(kept, name => Assert.True(File.Exists(PathOf(name)), $"{name} should be left alone"));
    }

    [Fact]
    public void FindFiles_RefusesAMissingChain_AChainThatDoesNotStartWithAFullFile_AndAFileOutOfPlace()
    {
        using CowMemoryEngine engine = NewEngine();
        Assert.Throws<FileNotFoundException>(() => CowViewFileChain.FindFiles(PathOf("none")));
        Assert.Throws<FileNotFoundException>(() => CowViewFileChain.LoadLatest(engine, PathOf("none")));

        using CowView world = engine.CreateRegion(16 * PageSize);
        using var chain = new CowViewFileChain(PathOf("w"));
        for (int i = 0; i < 3; i++)
        {
            world.AsSpan(i * PageSize, 1)[0] = (byte)(i + 1);
            chain.Save(world);
        }
        string full = chain.Files[0], one = chain.Files[1], two = chain.Files[2];

        // The second changes file where the first should be: same chain, wrong number.
        File.Copy(one, PathOf("one.saved"));
        File.Copy(two, one, overwrite: true);
        Assert.Contains("not changes file 1", Assert.Throws<InvalidDataException>(() => CowViewFileChain.FindFiles(PathOf("w"))).Message);
        File.Copy(PathOf("one.saved"), one, overwrite: true);

        // A damaged header in the last file: reported, not left out (that would load an older save as the newest).
        FlipByte(two, 60);
        Assert.Contains("header checksum", Assert.Throws<InvalidDataException>(() => CowViewFileChain.FindFiles(PathOf("w"))).Message);
        FlipByte(two, 60);
        Assert.Equal(chain.Files, CowViewFileChain.FindFiles(PathOf("w")));

        File.Copy(one, full, overwrite: true);
        Assert.Contains("must start with a full file", Assert.Throws<InvalidDataException>(() => CowViewFileChain.FindFiles(PathOf("w"))).Message);
    }

    private string SaveSample(CowMemoryEngine engine, string name, int pages)
    {
        using CowView view = engine.CreateRegion(pages * PageSize);
        for (int page = 0; page < pages; page++)
            view.AsSpan(page * PageSize, PageSize).Fill((byte)(page + 1));
        string path = PathOf(name);
        CowViewFile.Save(view, path);
        return path;
    }

    private static void FlipByte(string path, long offset)
    {
        using FileStream file = File.Open(path, FileMode.Open, FileAccess.ReadWrite);
        file.Position = offset;
        int value = file.ReadByte();
        file.Position = offset;
        file.WriteByte((byte)(value ^ 0x40));
    }

    /// <summary>Load must throw InvalidDataException and leave the engine as it was.</summary>
    private static InvalidDataException AssertLoadRefused(CowMemoryEngine engine, string[] paths)
    {
        CowEngineStats before = engine.GetStats();
        InvalidDataException error = Assert.Throws<InvalidDataException>(() => CowViewFile.Load(engine, paths));
        CowEngineStats after = engine.GetStats();
        Assert.Equal(before.LiveViews, after.LiveViews);
        Assert.Equal(before.SlotsInUse, after.SlotsInUse);
        return error;
    }
}
