namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>
/// Full or quick run. Set once by <see cref="Program"/> before any benchmark is built: the
/// benchmarks run in this process (in-process toolchain), so their [ParamsSource] members and
/// configs read it directly.
/// </summary>
internal static class BenchSettings
{
    /// <summary>Quick job: smallest sizes, one iteration, no warm-up (a smoke check, not a measurement).</summary>
    public static bool Quick { get; set; }

    public const long MiB = 1024 * 1024;

    /// <summary>The region of the steady-state scenarios (2, 4, 6): 1 GiB as issue 3 asks, 64 MiB when quick.</summary>
    public static long SteadyStateRegionBytes => Quick ? 64 * MiB : 1024 * MiB;
}
