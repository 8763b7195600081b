using CowEngine.Tests.Support;
using CowEngine.TestSupport;

namespace CowEngine.Tests;

/// <summary>
/// Choosing the write protection (<see cref="CowWriteProtection"/>): what each choice gives, the
/// errors when the kernel refuses userfaultfd, and the engine's handlers passing on every SIGSEGV and
/// SIGBUS that is not its own (a truncated file mapping, a signal sent with tgkill). (Everything else runs with both mechanisms: ./build.sh test runs the whole
/// suite once per mechanism, with COWENGINE_WRITE_PROTECTION set.)
/// </summary>
public sealed class WriteProtectionTests
{
    private const int PageSize = CowMemoryEngine.PageSize;

    [Fact]
    public void Mprotect_IsWhatItSays_AndCopyOnWriteWorks()
    {
        using var engine = new CowMemoryEngine(new CowEngineOptions { WriteProtection = CowWriteProtection.Mprotect });
        Assert.Equal(CowWriteProtection.Mprotect, engine.WriteProtection);
        AssertCopyOnWriteWorks(engine);
    }

    [Fact]
    public void Automatic_ChoosesOneOfTheTwo_AndCopyOnWriteWorks()
    {
        using var engine = new CowMemoryEngine(new CowEngineOptions { WriteProtection = CowWriteProtection.Automatic });
        Assert.NotEqual(CowWriteProtection.Automatic, engine.WriteProtection);
        AssertCopyOnWriteWorks(engine);
    }

    [Fact]
    public unsafe void Userfaultfd_WhereTheKernelOffersIt_SplitsNoMappingOnWrites()
    {
        SkipUnlessUserfaultfdIsAvailable(); // skips only when the kernel refuses userfaultfd to this process (checked there)
        using var engine = new CowMemoryEngine(new CowEngineOptions { WriteProtection = CowWriteProtection.Userfaultfd });
        Assert.Equal(CowWriteProtection.Userfaultfd, engine.WriteProtection);
        const int Pages = 1024;
        using CowView region = engine.CreateRegion(Pages * PageSize);
        region.AsSpan().Fill(1);
        using CowView snapshot = region.Snapshot();
        for (int page = 0; page < Pages; page += 2)
            region.Pointer[(long)page * PageSize] = 2; // every other page: with mprotect, 512 splits

        Assert.Equal(1, region.GetStats().Mappings);
        Assert.Equal(1, ProcMaps.CountOverlapping(region.BaseAddress, region.Length));
        Assert.Equal(Pages / 2, engine.GetStats().ReverseCopies);
        Assert.Equal(0, engine.GetStats().Evictions);
        for (int page = 0; page < Pages; page++)
        {
            Assert.Equal(page % 2 == 0 ? 2 : 1, region.Pointer[(long)page * PageSize]);
            Assert.Equal(1, snapshot.Pointer[(long)page * PageSize]);
        }
    }

    [Fact]
    public void Options_OverrideTheEnvironmentVariable()
    {
        // The suite runs with COWENGINE_WRITE_PROTECTION set to either value: an explicit option wins.
        using var engine = new CowMemoryEngine(new CowEngineOptions { WriteProtection = CowWriteProtection.Mprotect });
        Assert.Equal(CowWriteProtection.Mprotect, engine.WriteProtection);
    }

    [Fact]
    public async Task Userfaultfd_RefusedByTheKernel_ThrowsNamingTheCause_AndAutomaticFallsBackToMprotect()
    {
        // The child installs a seccomp filter that makes userfaultfd(2) fail with EPERM, as some
        // container runtimes' profiles do.
        ChildResult result = await ChildProcess.RunAsync("userfaultfd-refused");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.DoesNotContain("UNEXPECTED", result.StandardOutput);
        Assert.Contains("explicit userfaultfd: PlatformNotSupportedException", result.StandardOutput);
        Assert.Contains("EPERM", result.StandardOutput);
        Assert.Contains("seccomp", result.StandardOutput);
        Assert.Contains("automatic chose: Mprotect", result.StandardOutput);
        Assert.Contains("userfaultfd is not available here", result.StandardOutput); // logged once, with the reason
        Assert.Contains("copy-on-write ok: True", result.StandardOutput);
    }

    [Fact]
    public async Task ASigbusThatIsNotTheEngines_ReachesTheRuntimeAsWithoutTheEngine()
    {
        // A read past the end of a truncated file mapping raises SIGBUS with the same si_code as a
        // userfaultfd write-protect fault. With the engine's SIGBUS handler installed, the runtime
        // must report it exactly as it does alone (not, e.g., as a stack overflow).
        SkipUnlessUserfaultfdIsAvailable(); // skips only when the kernel refuses userfaultfd to this process (checked there)
        ChildResult alone = await ChildProcess.RunAsync("sigbus-elsewhere");
        ChildResult withEngine = await ChildProcess.RunAsync("sigbus-elsewhere-with-engine");

        Assert.Contains("reading past the end of a truncated file mapping", alone.StandardOutput);
        Assert.Contains("engine: Userfaultfd, faults resolved: 1", withEngine.StandardOutput);
        Assert.DoesNotContain("UNEXPECTED", alone.StandardOutput + withEngine.StandardOutput);
        Assert.True(alone.ExitCode != 0, alone.ToString());
        Assert.True(alone.ExitCode == withEngine.ExitCode, $"alone:\n{alone}\nwith the engine:\n{withEngine}");
        Assert.Equal(FirstLineOf(alone.StandardError, "Exception"), FirstLineOf(withEngine.StandardError, "Exception"));
        Assert.DoesNotContain("Stack overflow", withEngine.StandardError);
    }

    [Theory]
    [InlineData("sigsegv", "mprotect")]
    [InlineData("sigsegv", "userfaultfd")]
    [InlineData("sigbus", "mprotect")]
    [InlineData("sigbus", "userfaultfd")]
    public async Task ASignalSentWithTgkill_WhileFaultsAreResolved_ReachesTheRuntimeAsWithoutTheEngine(string signal, string mechanism)
    {
        // tgkill gives si_code SI_TKILL: not a fault, whatever the signal. The engine must pass it on
        // to the runtime's handler as it arrived, never take it for one of its own faults, so the
        // process ends (or goes on) exactly as it does when the same writers store into plain memory.
        if (mechanism == "userfaultfd")
            SkipUnlessUserfaultfdIsAvailable(); // skips only when the kernel refuses userfaultfd to this process (checked there)
        ChildResult alone = await ChildProcess.RunAsync($"tgkill-{signal}-alone");
        ChildResult withEngine = await ChildProcess.RunAsync($"tgkill-{signal}-{mechanism}");

        Assert.Contains("sending signal", alone.StandardOutput);
        Assert.Matches(@"mode \w+: \d+ stores, [1-9]\d{3,} faults resolved", withEngine.StandardOutput);
        Assert.DoesNotContain("UNEXPECTED", alone.StandardOutput + withEngine.StandardOutput);
        Assert.True(alone.ExitCode == withEngine.ExitCode, $"alone:\n{alone}\nwith the engine:\n{withEngine}");
        Assert.Equal(alone.StandardOutput.Contains("survived the signal"), withEngine.StandardOutput.Contains("survived the signal"));
        Assert.Equal(FirstLineOf(alone.StandardError, "Exception"), FirstLineOf(withEngine.StandardError, "Exception"));
        Assert.DoesNotContain("CowEngine:", withEngine.StandardError); // no diagnostic: it was never taken for a fault of a view
    }

    /// <summary>
    /// The one reason these tests may skip, checked rather than assumed: the kernel refuses userfaultfd
    /// write protection to this process. The skip happens only when asking for it explicitly throws the
    /// engine's PlatformNotSupportedException, and the skip message is that exception's message (the
    /// errno and its cause: ENOSYS, EPERM from seccomp or an old kernel, EOPNOTSUPP). Any other
    /// failure fails the test. Where the kernel refuses, the refusal path itself is tested regardless
    /// (Userfaultfd_RefusedByTheKernel_..., in a child process under a seccomp filter).
    /// </summary>
    private static void SkipUnlessUserfaultfdIsAvailable()
    {
        string? refusal = null;
        try
        {
            using var engine = new CowMemoryEngine(new CowEngineOptions { WriteProtection = CowWriteProtection.Userfaultfd });
            Assert.Equal(CowWriteProtection.Userfaultfd, engine.WriteProtection);
        }
        catch (PlatformNotSupportedException e)
        {
            refusal = e.Message;
        }
        Assert.SkipWhen(refusal is not null, $"the kernel refuses userfaultfd write protection to this process (checked): {refusal}");
    }

    private static string? FirstLineOf(string text, string containing) =>
        text.Split('\n').FirstOrDefault(line => line.Contains(containing, StringComparison.Ordinal))?.Trim();

    private static void AssertCopyOnWriteWorks(CowMemoryEngine engine)
    {
        using CowView region = engine.CreateRegion(8 * PageSize);
        region.AsSpan().Fill(1);
        using CowView snapshot = region.Snapshot();
        region.AsSpan().Fill(2);
        Assert.True(region.AsSpan().IndexOfAnyExcept((byte)2) < 0);
        Assert.True(snapshot.AsSpan().IndexOfAnyExcept((byte)1) < 0);
    }
}
