using System.Globalization;
using System.Security.Cryptography;
using CowEngine;

namespace CowEngine.TestChild;

/// <summary>
/// The scenario tests/CowEngine.Tests/TornFileTests.cs kills with SIGKILL at a random moment: it saves
/// a view again and again, each save either a full file replacing one path or the next file of a
/// chain, and says on stdout what it is about to save and when each save has returned.
/// </summary>
internal static partial class Program
{
    /// <summary>The view's pages: 1 MiB, so a full save writes up to 1 MiB and two fsyncs.</summary>
    private const int TornSavePages = 256;

    /// <summary>
    /// Saves until killed. Environment: COWENGINE_TEAR_DIR (the directory of the files, shared by the
    /// children one after another: each one starts from what the one before left) and
    /// COWENGINE_TEAR_SEED (the writes). Before each save a line
    /// <c>begin {single|chain} {step} {sequence} {sha256}</c> (sequence: the chain file's number; 0
    /// for the single file), after it <c>end {target} {step}</c>. The SHA-256 is of every byte of the
    /// view as saved; the parent loads the files after the kill and compares.
    /// </summary>
    /// <remarks>
    /// Each run starts a new chain under the same base path (its first save replaces the previous
    /// run's full file, then deletes that chain's changes files), and one chain save in ten starts a
    /// new chain again; one save in three replaces the single file instead.
    /// </remarks>
    private static int TornSaves()
    {
        string? directory = Environment.GetEnvironmentVariable("COWENGINE_TEAR_DIR");
        string? seedText = Environment.GetEnvironmentVariable("COWENGINE_TEAR_SEED");
        if (directory is null || !int.TryParse(seedText, NumberStyles.Integer, CultureInfo.InvariantCulture, out int seed))
        {
            Progress("setup failed: set COWENGINE_TEAR_DIR and COWENGINE_TEAR_SEED");
            return 3;
        }
        var random = new Random(seed);
        using var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 64L << 20 });
        using CowView view = engine.CreateRegion(TornSavePages * PageSize);
        for (int page = 0; page < TornSavePages; page += 2)
            random.NextBytes(view.AsSpan(page * (long)PageSize, PageSize));
        string single = Path.Combine(directory, "single.cowview");
        string chainBase = Path.Combine(directory, "chain");
        var chain = new CowViewFileChain(chainBase);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        try
        {
            for (int step = 1; DateTime.UtcNow < deadline; step++)
            {
                if (step > 1)
                    MutateForTornSave(view, random);
                bool toSingle = random.Next(3) == 0;
                if (!toSingle && chain.Files.Count > 0 && random.Next(10) == 0)
                {
                    chain.Dispose();
                    chain = new CowViewFileChain(chainBase);
                }
                string hash = Convert.ToHexString(SHA256.HashData(view.AsSpan()));
                if (toSingle)
                {
                    Progress($"begin single {step} 0 {hash}");
                    using CowView snapshot = view.Snapshot();
                    CowViewFile.Save(snapshot, single);
                    Progress($"end single {step}");
                }
                else
                {
                    Progress($"begin chain {step} {chain.Files.Count} {hash}");
                    chain.Save(view);
                    Progress($"end chain {step}");
                }
            }
        }
        finally
        {
            chain.Dispose();
        }
        Progress("UNEXPECTED: not killed within 60 s");
        return 0;
    }

    /// <summary>A step's writes: a few pages, now and then many; new bytes, a few bytes, zeros.</summary>
    private static void MutateForTornSave(CowView view, Random random)
    {
        int pages = random.Next(8) == 0 ? random.Next(64, TornSavePages) : random.Next(1, 12);
        Span<byte> few = stackalloc byte[64];
        for (int i = 0; i < pages; i++)
        {
            long page = random.Next(TornSavePages);
            Span<byte> target = view.AsSpan(page * PageSize, PageSize);
            switch (random.Next(4))
            {
                case 0:
                    random.NextBytes(target);
                    break;
                case 1:
                    random.NextBytes(few);
                    few.CopyTo(target[random.Next(PageSize - few.Length)..]);
                    break;
                case 2:
                    target.Clear(); // a page back to zero: a full save leaves it out
                    break;
                default:
                    target[random.Next(PageSize)] ^= (byte)random.Next(1, 256);
                    break;
            }
        }
    }
}
