using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>
/// The job every scenario runs with. These benchmarks are not BenchmarkDotNet's usual
/// nanosecond loops: each iteration needs fresh state (a fully written region, a forked child)
/// built in [IterationSetup], so one invocation per iteration (InvocationCount = UnrollFactor = 1),
/// no pilot or overhead stage (RunStrategy.Monitoring), and a modest number of iterations. The
/// operations take tens of microseconds to seconds, far above the clock's resolution.
/// In-process toolchain: no per-benchmark project build, and <see cref="ReportedMetrics"/> can pass
/// values from the benchmarks to the summary columns. A benchmark that could crash the process (the
/// engine aborts when a fault cannot be resolved) only loses its own scenario: the suite runs each
/// scenario in a process of its own (<see cref="SuiteRunner"/>). Every scenario also gets the
/// <see cref="WriteProtectionColumn"/>.
/// </summary>
internal abstract class ScenarioConfig : ManualConfig
{
    protected ScenarioConfig(int iterations, int warmups, params IColumn[] columns)
    {
        AddJob(Job.Default
            .WithToolchain(InProcessEmitToolchain.Instance)
            .WithStrategy(RunStrategy.Monitoring)
            .WithLaunchCount(1)
            .WithWarmupCount(BenchSettings.Quick ? 0 : warmups)
            .WithIterationCount(BenchSettings.Quick ? 1 : iterations)
            .WithInvocationCount(1)
            .WithUnrollFactor(1)
            .WithId(BenchSettings.Quick ? "Quick" : "Full"));
        AddColumn(columns);
        AddColumn(WriteProtectionColumn.Instance);
    }
}
