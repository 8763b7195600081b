using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;

namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>
/// The job of a scenario whose benchmark method is one turn of a loop that leaves the state as it
/// found it (write k pages, roll back), so it needs no [IterationSetup] and can be called many
/// times in a row. Unlike <see cref="ScenarioConfig"/> (one invocation per iteration), each
/// iteration runs a batch of invocations: BenchmarkDotNet's pilot stage doubles the batch until
/// an iteration lasts about <paramref name="iterationMilliseconds"/>, so a 1 us turn is measured
/// over ~100,000 turns and a 150 ms turn (a memcpy of 1 GiB) once or twice, and Mean is per turn.
/// No overhead stage (an empty call is ~1 ns against turns of 0.3 us and more) and no unrolling,
/// so a batch can be as small as one turn. Such a benchmark must have no [IterationSetup] or
/// [IterationCleanup]: with either, BenchmarkDotNet falls back to one invocation per iteration.
/// In-process toolchain, as for every scenario (<see cref="ReportedMetrics"/>), and the
/// <see cref="WriteProtectionColumn"/>.
/// </summary>
internal abstract class LoopScenarioConfig : ManualConfig
{
    protected LoopScenarioConfig(int iterations, int warmups, int iterationMilliseconds, params IColumn[] columns)
    {
        AddJob(Job.Default
            .WithToolchain(InProcessEmitToolchain.Instance)
            .WithStrategy(RunStrategy.Throughput)
            .WithLaunchCount(1)
            .WithWarmupCount(BenchSettings.Quick ? 0 : warmups)
            .WithIterationCount(BenchSettings.Quick ? 1 : iterations)
            .WithIterationTime(TimeInterval.FromMilliseconds(BenchSettings.Quick ? Math.Min(50, iterationMilliseconds) : iterationMilliseconds))
            .WithUnrollFactor(1)
            .WithMinInvokeCount(1)
            .WithEvaluateOverhead(false)
            .WithId(BenchSettings.Quick ? "Quick" : "Full"));
        AddColumn(columns);
        AddColumn(WriteProtectionColumn.Instance);
    }
}
