namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>
/// Full or quick run, and the write protection asked for. Set once by <see cref="Program"/> before
/// any benchmark is built: the benchmarks run in this process (in-process toolchain), so their
/// [ParamsSource] members and configs read it directly.
/// </summary>
internal static class BenchSettings
{
    /// <summary>Quick job: smallest sizes, one iteration, no warm-up (a smoke check, not a measurement).</summary>
    public static bool Quick { get; set; }

    public const long MiB = 1024 * 1024;

    /// <summary>The region of the steady-state scenarios (2, 4, 6): 1 GiB as issue 3 asks, 64 MiB when quick.</summary>
    public static long SteadyStateRegionBytes => Quick ? 64 * MiB : 1024 * MiB;

    /// <summary>The environment variable the engines read when no option chooses their write
    /// protection (the benchmarks set none, so it chooses for the whole run).</summary>
    public const string WriteProtectionVariable = "COWENGINE_WRITE_PROTECTION";

    /// <summary>What <see cref="WriteProtectionVariable"/> asks for; null when it is unset or empty
    /// (mprotect, the engine's default).</summary>
    public static CowWriteProtection? RequestedWriteProtection { get; private set; }

    /// <summary>The mechanism's name as the folders and machine.json spell it: mprotect, userfaultfd, automatic.</summary>
    public static string RequestedWriteProtectionName =>
        (RequestedWriteProtection ?? CowWriteProtection.Mprotect).ToString().ToLowerInvariant();

    /// <summary>
    /// Where the results of this run go below BenchmarkDotNet.Artifacts (or .../quick): nothing
    /// for mprotect (unset or named), else a folder named by the mechanism asked for
    /// (userfaultfd/, automatic/), so a run of another mechanism never replaces mprotect's results.
    /// </summary>
    public static string ArtifactsSubfolder =>
        RequestedWriteProtection is null or CowWriteProtection.Mprotect ? "" : RequestedWriteProtectionName;

    /// <summary>Reads <see cref="WriteProtectionVariable"/> as the engine does (a name in any case);
    /// returns an error message if it holds anything else, where the engine would throw.</summary>
    public static string? ReadWriteProtection()
    {
        string? value = Environment.GetEnvironmentVariable(WriteProtectionVariable);
        if (string.IsNullOrWhiteSpace(value))
        {
            RequestedWriteProtection = null;
            return null;
        }
        if (Enum.TryParse(value.Trim(), ignoreCase: true, out CowWriteProtection parsed) && Enum.IsDefined(parsed))
        {
            RequestedWriteProtection = parsed;
            return null;
        }
        return $"{WriteProtectionVariable} is '{value}'; it must be mprotect, userfaultfd or automatic.";
    }
}
