using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using CowEngine.Tests.Support;
using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// Files that tear (issue 15, docs/reliability.md "Files that tear"): a process killed with SIGKILL
/// in the middle of saves leaves the previous file and chain loadable, bit for bit; a file truncated
/// at any 4 KiB boundary, or with any single bit flipped in its header, page table or page data, is
/// refused with an <see cref="InvalidDataException"/> that names the file, what is wrong and where,
/// never loaded as other bytes.
/// </summary>
/// <remarks>
/// The normal run is a short form. COWENGINE_TEAR_LONG=1 selects the long form
/// (tests/scripts/torn-files.sh, run by <c>./build.sh stress</c>): 200 kills instead of 30, every
/// bit of the header and of the page table block instead of a sample, more bits of page data, and
/// a 16 MiB file for the truncations. COWENGINE_TEAR_TEST_SEED fixes the kill test's seed (each
/// failure message gives the one it used).
/// </remarks>
public sealed class TornFileTests : IDisposable
{
    private const int PageSize = CowMemoryEngine.PageSize;
    private const int HeaderBytes = 4096;

    /// <summary>SIGKILL's exit status as .NET reports it: 128 + 9.</summary>
    private const int KilledExitCode = 128 + 9;

    /// <summary>The kill comes up to this long after the child's first save began.</summary>
    private const int MaxKillDelayMilliseconds = 300;

    private static readonly bool Long = Environment.GetEnvironmentVariable("COWENGINE_TEAR_LONG") == "1";

    private readonly string _directory = Directory.CreateTempSubdirectory("cowengine-tear-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string PathOf(string name) => Path.Combine(_directory, name);

    // ---- killed in the middle of saves ----

    /// <summary>A save the child announced: which run, its step, the chain file's number, the view's SHA-256.</summary>
    private sealed record Announced(int Run, int Step, int Sequence, string Hash);

    /// <summary>What the parent knows of one of the child's targets: the last save that returned, the one under way.</summary>
    private sealed class Target(string name)
    {
        public string Name { get; } = name;

        public Announced? Completed { get; set; }

        public Announced? InFlight { get; set; }
    }

    private sealed record KilledChild(IReadOnlyList<string> Lines, string Output, string StandardError, int ExitCode, bool ExitedByItself);

    /// <summary>
    /// The child (CowEngine.TestChild "torn-saves") saves a 1 MiB view again and again - full saves
    /// replacing one file, and a chain: a new one each run, whose full save replaces the previous
    /// run's full file, then changes files - and is killed with SIGKILL at a random moment. The
    /// children run one after another in the same directory, each starting from what the one before
    /// left. After each kill the single file and the chain found on disk
    /// (<see cref="CowViewFileChain.LoadLatest"/>) must load, and their bytes must be, bit for bit
    /// (SHA-256), those of the last save that returned or, if the child died inside a save, those of
    /// that save (its rename may have happened); the chain must have that save's number of files.
    /// </summary>
    [Fact]
    public async Task KilledAtRandomMomentsOfSaves_ThePreviousFileAndChainLoadBitForBit()
    {
        int kills = Long ? 200 : 30;
        int seed = Environment.GetEnvironmentVariable("COWENGINE_TEAR_TEST_SEED") is { Length: > 0 } fixedSeed
            ? int.Parse(fixedSeed, CultureInfo.InvariantCulture)
            : Random.Shared.Next();
        var random = new Random(seed);
        var single = new Target("single");
        var chain = new Target("chain");
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        void Count(string outcome) => counts[outcome] = counts.GetValueOrDefault(outcome) + 1;
        long completedSaves = 0;

        using CowMemoryEngine engine = NewEngine();
        for (int run = 0; run < kills; run++)
        {
            int childSeed = random.Next();
            int delay = random.Next(MaxKillDelayMilliseconds + 1);
            string context = $"seed {seed} (COWENGINE_TEAR_TEST_SEED={seed} repeats the schedule), run {run + 1} of {kills}: " +
                             $"child seed {childSeed}, killed {delay} ms after its first save began";
            KilledChild child = await RunAndKillAsync(childSeed, delay, context);
            string report = $"{context}\n--- the child's stdout ---\n{Tail(child.Output)}\n--- stderr ---\n{Tail(child.StandardError)}";
            Assert.False(child.ExitedByItself, $"the child ended before it was killed:\n{report}");
            Assert.True(child.ExitCode == KilledExitCode, $"the child's exit code is {child.ExitCode}, not SIGKILL's {KilledExitCode}:\n{report}");

            foreach (string line in child.Lines)
            {
                string[] words = line.Split(' ');
                if (words[0] is not ("begin" or "end"))
                {
                    Assert.False(line.StartsWith("UNEXPECTED", StringComparison.Ordinal) || line.StartsWith("setup failed", StringComparison.Ordinal), report);
                    continue;
                }
                Target target = words[1] == "single" ? single : chain;
                int step = int.Parse(words[2], CultureInfo.InvariantCulture);
                if (words[0] == "begin")
                {
                    Assert.True(target.InFlight is null, $"{target.Name} save {step} began while save {target.InFlight?.Step} was under way:\n{report}");
                    target.InFlight = new Announced(run, step, int.Parse(words[3], CultureInfo.InvariantCulture), words[4]);
                }
                else
                {
                    Assert.True(target.InFlight?.Step == step, $"{target.Name} save {step} ended, but the save under way was {target.InFlight?.Step}:\n{report}");
                    target.Completed = target.InFlight;
                    target.InFlight = null;
                    completedSaves++;
                }
            }

            if (single.InFlight is not null || chain.InFlight is not null)
                Count("kills that landed inside a save (announced, not returned)");
            foreach (Target target in new[] { single, chain })
                Count(CheckWhatLoads(engine, target, report));
            if (File.Exists(PathOf("chain.0000.cowview")) &&
                Directory.GetFiles(_directory, "chain.*.cowview").Length > CowViewFileChain.FindFiles(PathOf("chain")).Count)
                Count("chain: an older chain's files were still on disk; FindFiles left them out");
        }

        int temporaries = Directory.GetFiles(_directory, ".*.tmp").Length;
        string summary = $"{kills} kills (seed {seed}), {completedSaves} saves completed in all; temporary files left behind: {temporaries}\n" +
                         string.Join("\n", counts.Select(pair => $"  {pair.Value,4}  {pair.Key}"));
        TestContext.Current.TestOutputHelper?.WriteLine(summary);
        // Each save deletes the temporaries that killed saves of its target left, so only the last
        // kill's (one save is under way at a time) and those of targets not saved since can be left.
        Assert.True(temporaries <= 2, $"temporary files of killed saves were not cleaned up:\n{summary}");
    }

    /// <summary>
    /// Loads the target from disk and checks it holds the bytes of the last save that returned or,
    /// if one was under way, of that one; returns how the kill ended for it. The one that loads is
    /// the target's state from then on.
    /// </summary>
    private string CheckWhatLoads(CowMemoryEngine engine, Target target, string report)
    {
        string hash;
        int files = 0;
        try
        {
            using CowView loaded = target.Name == "single"
                ? CowViewFile.Load(engine, PathOf("single.cowview"))
                : CowViewFileChain.LoadLatest(engine, PathOf("chain"));
            hash = Convert.ToHexString(SHA256.HashData(loaded.AsSpan()));
            if (target.Name == "chain")
                files = CowViewFileChain.FindFiles(PathOf("chain")).Count;
        }
        catch (FileNotFoundException) when (target.Completed is null)
        {
            // Killed before the target's first save returned, and before its rename.
            target.InFlight = null;
            return $"{target.Name}: nothing saved yet";
        }
        catch (Exception e)
        {
            Assert.Fail($"{target.Name}: loading what the killed child left threw {e.GetType().Name}: {e.Message}\n" +
                        $"last save that returned: {target.Completed}, save under way: {target.InFlight}\n{report}\n{e}");
            throw;
        }

        bool Matches(Announced? save) => save is not null && save.Hash == hash && (target.Name != "chain" || files == save.Sequence + 1);
        Announced? inFlight = target.InFlight;
        target.InFlight = null;
        string where = inFlight is null ? "killed between saves" : inFlight.Sequence == 0 && target.Name == "chain"
            ? "killed in a full save starting a new chain" : "killed in a save";
        if (Matches(target.Completed))
            return $"{target.Name}: {where}: the previous save loads";
        if (Matches(inFlight))
        {
            target.Completed = inFlight;
            return $"{target.Name}: {where}, after its rename: the new save loads";
        }
        Assert.Fail($"{target.Name}: WRONG BYTES: what loads ({files} files, SHA-256 {hash}) is neither the last save that returned " +
                    $"({target.Completed}) nor the save under way ({inFlight})\n{report}");
        return "";
    }

    /// <summary>
    /// Runs the "torn-saves" child in this test's directory and kills it (SIGKILL) <paramref name="delay"/>
    /// milliseconds after it announced its first save; returns its complete output lines (a line the
    /// kill cut short is dropped).
    /// </summary>
    private async Task<KilledChild> RunAndKillAsync(int childSeed, int delay, string context)
    {
        var startInfo = new ProcessStartInfo(ChildProcess.DotnetHostPath())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.ArgumentList.Add(ChildProcess.ChildAssemblyPath);
        startInfo.ArgumentList.Add("torn-saves");
        startInfo.Environment["DOTNET_DbgEnableMiniDump"] = "0";
        startInfo.Environment["DOTNET_EnableCrashReport"] = "0";
        startInfo.Environment["COWENGINE_TEAR_DIR"] = _directory;
        startInfo.Environment["COWENGINE_TEAR_SEED"] = childSeed.ToString(CultureInfo.InvariantCulture);

        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException("Process.Start returned null");
        var output = new StringBuilder();
        var firstSave = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task reader = Task.Run(async () =>
        {
            var buffer = new char[4096];
            int read;
            while ((read = await process.StandardOutput.ReadAsync(buffer)) > 0)
            {
                lock (output)
                {
                    output.Append(buffer, 0, read);
                    if (!firstSave.Task.IsCompleted && output.ToString().Contains("\nbegin ", StringComparison.Ordinal))
                        firstSave.TrySetResult();
                }
            }
            firstSave.TrySetResult(); // the child ended without a save: the caller reports it
        });
        Task<string> standardError = process.StandardError.ReadToEndAsync();
        try
        {
            await firstSave.Task.WaitAsync(ChildProcess.DefaultTimeout);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            Assert.Fail($"{context}: the child announced no save within {ChildProcess.DefaultTimeout.TotalSeconds} s:\n{output}");
        }
        await Task.Delay(delay);
        bool exitedByItself = process.HasExited;
        if (!exitedByItself)
            process.Kill(); // SIGKILL
        await process.WaitForExitAsync();
        await reader;
        string text = output.ToString();
        string[] pieces = text.Split('\n');
        // The last piece has no newline: empty, or a line the kill cut short.
        return new KilledChild(pieces[..^1], text, await standardError, process.ExitCode, exitedByItself);
    }

    // ---- truncated files ----

    /// <summary>
    /// A full file cut at every 4 KiB boundary below its length (and at odd lengths), or extended,
    /// is refused naming the file and its length; so is the last file of a chain, by
    /// <see cref="CowViewFileChain.FindFiles"/> too (a damaged link is never silently left out),
    /// while the files before it still load to their own save.
    /// </summary>
    [Fact]
    public void Truncation_AtEvery4KiBBoundary_AndOddLengths_IsRefused()
    {
        using CowMemoryEngine engine = NewEngine();
        CowEngineStats before = engine.GetStats();
        int viewPages = Long ? 4096 : 300;
        var (path, _, stored) = SaveSample(engine, "big.cowview", viewPages, seed: 1, everyPage: true);
        Assert.Equal(viewPages, stored.Length);
        int cuts = AssertEveryLengthRefused(path, () => CowViewFile.Load(engine, path));

        var (paths, states, _) = SaveSampleChain(engine, "chain", viewPages: 64);
        using (CowView earlier = CowViewFile.Load(engine, paths[..^1]))
            Assert.True(earlier.AsSpan().SequenceEqual(states[^2]));
        cuts += AssertEveryLengthRefused(paths[^1], () => CowViewFileChain.LoadLatest(engine, PathOf("chain")));
        Assert.Throws<InvalidDataException>(() => CowViewFileChain.FindFiles(PathOf("chain")));
        using (CowView earlier = CowViewFile.Load(engine, paths[..^1]))
            Assert.True(earlier.AsSpan().SequenceEqual(states[^2]), "the files before the truncated one still load to their save");

        CowEngineStats after = engine.GetStats();
        Assert.Equal(before.LiveViews, after.LiveViews);
        Assert.Equal(before.SlotsInUse, after.SlotsInUse);
        TestContext.Current.TestOutputHelper?.WriteLine($"{cuts} truncated or extended files refused ({viewPages}-page file and a chain link)");
    }

    /// <summary>Extends, then cuts <paramref name="path"/> to ever shorter lengths; each load must be refused. Returns the lengths tried.</summary>
    private static int AssertEveryLengthRefused(string path, Func<CowView> load)
    {
        long length = new FileInfo(path).Length;
        Assert.Equal(0, length % 4096);
        var lengths = new SortedSet<long>(Comparer<long>.Create((a, b) => b.CompareTo(a))) { length + 4096, length + 1 };
        for (long cut = 0; cut < length; cut += 4096)
            lengths.Add(cut);
        foreach (long odd in new long[] { 1, 7, 8, 9, 100, 4095, 4097, 8191, 8193, length - 4095, length - 1 })
            lengths.Add(odd);
        var failures = new List<string>();
        using (SafeFileHandleOwner file = new(path))
        {
            foreach (long cut in lengths) // longest first: each cut only shortens
            {
                file.SetLength(cut);
                string? failure = null;
                try
                {
                    using CowView loaded = load();
                    failure = "loaded";
                }
                catch (InvalidDataException e) when (e.Message.Contains(path, StringComparison.Ordinal) &&
                    (e.Message.Contains("truncated", StringComparison.Ordinal) || e.Message.Contains("empty", StringComparison.Ordinal) ||
                     (cut > length && e.Message.Contains("extended", StringComparison.Ordinal))))
                {
                }
                catch (Exception e)
                {
                    failure = $"threw {e.GetType().Name}: {e.Message}";
                }
                if (failure is not null)
                    failures.Add($"{path} at {cut} of {length} bytes: {failure}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {lengths.Count} lengths were not refused as truncated or extended:\n{string.Join("\n", failures.Take(20))}");
        return lengths.Count;
    }

    // ---- single-bit flips ----

    /// <summary>
    /// Every bit of the header flipped in turn (the long form; a sample of the unused bytes in the
    /// normal run): refused, naming the magic, the version or the header checksum.
    /// </summary>
    [Fact]
    public void BitFlips_InTheHeader_AreRefused()
    {
        using CowMemoryEngine engine = NewEngine();
        var (path, bytes, stored) = SaveSample(engine, "flips.cowview", viewPages: 64, seed: 2);
        var random = new Random(2);
        IEnumerable<long> bits = Long
            ? Range(0, HeaderBytes)
            : Range(0, 96).Concat(Range(HeaderBytes - 8, HeaderBytes)).Concat(RandomBits(random, 96, HeaderBytes - 8, 256));
        AssertEveryFlipRefused(path, stored, bits, bytes, () => CowViewFile.Load(engine, path), engine);
    }

    /// <summary>Every bit of the page table block flipped in turn (a sample in the normal run): refused, naming the table or its padding.</summary>
    [Fact]
    public void BitFlips_InThePageTable_AreRefused()
    {
        using CowMemoryEngine engine = NewEngine();
        var (path, bytes, stored) = SaveSample(engine, "flips.cowview", viewPages: 64, seed: 3);
        long tableEnd = HeaderBytes + stored.Length * 16L;
        var random = new Random(3);
        IEnumerable<long> bits = Long
            ? Range(HeaderBytes, HeaderBytes + 4096)
            : Range(HeaderBytes, HeaderBytes + 32).Concat(Range(tableEnd - 16, tableEnd))
                .Concat(RandomBits(random, HeaderBytes + 32, tableEnd - 16, 256)).Concat(RandomBits(random, tableEnd, HeaderBytes + 4096, 64));
        AssertEveryFlipRefused(path, stored, bits, bytes, () => CowViewFile.Load(engine, path), engine);
    }

    /// <summary>Bits of every stored page flipped in turn (its first and last bit and random ones): refused, naming the page and its file offsets.</summary>
    [Fact]
    public void BitFlips_InThePageData_AreRefused()
    {
        using CowMemoryEngine engine = NewEngine();
        var (path, bytes, stored) = SaveSample(engine, "flips.cowview", viewPages: 64, seed: 4);
        AssertEveryFlipRefused(path, stored, DataBits(new Random(4), stored.Length, Long ? 64 : 1), bytes, () => CowViewFile.Load(engine, path), engine);
    }

    /// <summary>
    /// The same in a chain: flips in the header (chain id, sequence and parent checksum included),
    /// the table and the pages of its middle and last changes files make
    /// <see cref="CowViewFileChain.LoadLatest"/> refuse the chain naming the damaged file; never
    /// does it load the bytes of an earlier save instead.
    /// </summary>
    [Fact]
    public void BitFlips_InAChainsChangesFiles_AreRefused()
    {
        using CowMemoryEngine engine = NewEngine();
        var (paths, states, stored) = SaveSampleChain(engine, "chain", viewPages: 64);
        var random = new Random(5);
        foreach (int link in new[] { 1, 2 })
        {
            long tableEnd = HeaderBytes + stored[link].Length * 16L;
            IEnumerable<long> bits = Long
                ? Range(0, HeaderBytes + 4096).Concat(DataBits(random, stored[link].Length, 16))
                : Range(40, 72).Concat(RandomBits(random, 0, HeaderBytes, 128)).Concat(RandomBits(random, HeaderBytes, tableEnd, 64))
                    .Concat(RandomBits(random, tableEnd, HeaderBytes + 4096, 16)).Concat(DataBits(random, stored[link].Length, 0));
            AssertEveryFlipRefused(paths[link], stored[link], bits, states[^1], () => CowViewFileChain.LoadLatest(engine, PathOf("chain")), engine);
        }
    }

    /// <summary>
    /// Flips each bit in turn in <paramref name="path"/>, loads, and flips it back: every load must
    /// throw an <see cref="InvalidDataException"/> naming the file and the part that is damaged,
    /// leave the engine as it was, and never return a view (with the intact bytes or others).
    /// </summary>
    private static void AssertEveryFlipRefused(string path, long[] stored, IEnumerable<long> bits, byte[] intact, Func<CowView> load, CowMemoryEngine engine)
    {
        CowEngineStats before = engine.GetStats();
        long tableEnd = HeaderBytes + stored.Length * 16L;
        long dataOffset = HeaderBytes + (stored.Length * 16L + 4095) / 4096 * 4096;
        var failures = new List<string>();
        var parts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        int flips = 0;
        using (SafeFileHandleOwner file = new(path))
        {
            foreach (long bit in bits.Distinct())
            {
                long offset = bit / 8;
                byte mask = (byte)(1 << (int)(bit % 8));
                byte original = file.ReadByte(offset);
                file.WriteByte(offset, (byte)(original ^ mask));
                flips++;
                (string part, string expected) = offset switch
                {
                    < 8 => ("magic", "magic"),
                    < 12 => ("version", "format version"),
                    < HeaderBytes => ("header", "header checksum"),
                    _ when offset < tableEnd => ("page table", "page table does not match its checksum"),
                    _ when offset < dataOffset => ("page table padding", "padding"),
                    _ => ("page data", $"page {stored[(offset - dataOffset) / PageSize]} does not match its checksum"),
                };
                parts[part] = parts.GetValueOrDefault(part) + 1;
                string? failure = null;
                try
                {
                    using CowView loaded = load();
                    failure = loaded.AsSpan().SequenceEqual(intact)
                        ? "it loaded, with the intact bytes: the flip went unnoticed"
                        : "it loaded WRONG BYTES";
                }
                catch (InvalidDataException e) when (e.Message.Contains(path, StringComparison.Ordinal) && e.Message.Contains(expected, StringComparison.Ordinal))
                {
                }
                catch (Exception e)
                {
                    failure = $"{e.GetType().Name}: {e.Message} (expected an InvalidDataException naming the file and \"{expected}\")";
                }
                if (failure is not null)
                    failures.Add($"bit {bit % 8} of file byte {offset} ({part}): {failure}");
                file.WriteByte(offset, original);
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {flips} single-bit flips in {path} were not refused as they should be:\n{string.Join("\n", failures.Take(20))}");
        using (CowView restored = load())
            Assert.True(restored.AsSpan().SequenceEqual(intact), "every bit flipped back: the file loads as saved");
        CowEngineStats after = engine.GetStats();
        Assert.Equal(before.LiveViews, after.LiveViews);
        Assert.Equal(before.SlotsInUse, after.SlotsInUse);
        string summary = $"{flips} single-bit flips in {Path.GetFileName(path)} refused: " + string.Join(", ", parts.Select(p => $"{p.Key} {p.Value}"));
        TestContext.Current.TestOutputHelper?.WriteLine(summary);
    }

    /// <summary>Every bit of the bytes [<paramref name="from"/>, <paramref name="to"/>), as file bit positions.</summary>
    private static IEnumerable<long> Range(long from, long to)
    {
        for (long bit = from * 8; bit < to * 8; bit++)
            yield return bit;
    }

    /// <summary><paramref name="count"/> random bits of the bytes [<paramref name="from"/>, <paramref name="to"/>).</summary>
    private static IEnumerable<long> RandomBits(Random random, long from, long to, int count)
    {
        var bits = new long[count];
        for (int i = 0; i < count; i++)
            bits[i] = random.NextInt64(from * 8, to * 8);
        return bits;
    }

    /// <summary>For each of a file's <paramref name="pages"/> stored pages: its first and last bit and <paramref name="randomPerPage"/> random ones.</summary>
    private static IEnumerable<long> DataBits(Random random, int pages, int randomPerPage)
    {
        long dataOffset = HeaderBytes + (pages * 16L + 4095) / 4096 * 4096;
        var bits = new List<long>();
        for (int i = 0; i < pages; i++)
        {
            long first = (dataOffset + (long)i * PageSize) * 8;
            bits.Add(first);
            bits.Add(first + PageSize * 8 - 1);
            bits.Add(random.NextInt64(first, first + PageSize * 8));
            for (int r = 0; r < randomPerPage; r++)
                bits.Add(random.NextInt64(first, first + PageSize * 8));
        }
        return bits;
    }

    // ---- sample files ----

    /// <summary>
    /// Saves a view of random pages: every page, or (<paramref name="everyPage"/> false) all but
    /// those with index % 5 == 3 or % 7 == 0, which stay zero and are not stored (runs of several
    /// lengths). Returns the file, the view's bytes and the stored pages in table order.
    /// </summary>
    private (string Path, byte[] Bytes, long[] Stored) SaveSample(CowMemoryEngine engine, string name, int viewPages, int seed, bool everyPage = false)
    {
        using CowView view = engine.CreateRegion((long)viewPages * PageSize);
        var random = new Random(seed);
        var stored = new List<long>();
        for (long page = 0; page < viewPages; page++)
        {
            if (!everyPage && (page % 5 == 3 || page % 7 == 0))
                continue;
            Span<byte> bytes = view.AsSpan(page * PageSize, PageSize);
            random.NextBytes(bytes);
            bytes[0] |= 1;
            stored.Add(page);
        }
        string path = PathOf(name);
        using (CowView snapshot = view.Snapshot())
            CowViewFile.Save(snapshot, path);
        return (path, view.AsSpan().ToArray(), stored.ToArray());
    }

    /// <summary>
    /// A chain of three files under <paramref name="name"/>: the sample view, then changes to a run
    /// of pages and scattered ones, then more. Returns the files, the view's bytes at each save and
    /// each file's stored pages.
    /// </summary>
    private (string[] Paths, byte[][] States, long[][] Stored) SaveSampleChain(CowMemoryEngine engine, string name, int viewPages)
    {
        using CowView view = engine.CreateRegion((long)viewPages * PageSize);
        var random = new Random(6);
        using var chain = new CowViewFileChain(PathOf(name));
        var states = new List<byte[]>();
        var stored = new List<long[]>();
        for (int save = 0; save < 3; save++)
        {
            var pages = new SortedSet<long>();
            if (save == 0)
            {
                for (long page = 0; page < viewPages; page += 2)
                    pages.Add(page);
            }
            else
            {
                for (long page = 10 * save; page < 10 * save + 6; page++)
                    pages.Add(page);
                for (int i = 0; i < 12; i++)
                    pages.Add(random.Next(viewPages));
            }
            foreach (long page in pages)
            {
                Span<byte> bytes = view.AsSpan(page * PageSize, PageSize);
                random.NextBytes(bytes);
                bytes[0] ^= 0x80; // different from any bytes it held before
            }
            CowViewFileHeader header = chain.Save(view);
            Assert.Equal(pages.Count, header.PageCount);
            states.Add(view.AsSpan().ToArray());
            stored.Add(pages.ToArray());
        }
        return (chain.Files.ToArray(), states.ToArray(), stored.ToArray());
    }

    /// <summary>A file opened for reading and writing single bytes and its length.</summary>
    private sealed class SafeFileHandleOwner(string path) : IDisposable
    {
        private readonly Microsoft.Win32.SafeHandles.SafeFileHandle _handle =
            File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);

        private readonly byte[] _one = new byte[1];

        public byte ReadByte(long offset)
        {
            Assert.Equal(1, RandomAccess.Read(_handle, _one, offset));
            return _one[0];
        }

        public void WriteByte(long offset, byte value)
        {
            _one[0] = value;
            RandomAccess.Write(_handle, _one, offset);
        }

        public void SetLength(long length) => RandomAccess.SetLength(_handle, length);

        public void Dispose() => _handle.Dispose();
    }

    private static string Tail(string text) => text.Length <= 6000 ? text : "..." + text[^6000..];
}
