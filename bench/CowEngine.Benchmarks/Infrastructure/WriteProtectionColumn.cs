using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>
/// A summary column on every scenario (<see cref="ScenarioConfig"/>, <see cref="LoopScenarioConfig"/>):
/// the write protection the engine of each engine row ran with (<see cref="CowMemoryEngine.WriteProtection"/>,
/// recorded by the benchmark with <see cref="Record"/>), so bench/report.py can check which mechanism
/// a results folder measured instead of assuming it; "-" on the baselines' rows. Both names, joined
/// by "+", if a case's engines ran with different ones.
/// </summary>
internal sealed class WriteProtectionColumn : IColumn
{
    public const string Metric = "WriteProtection";

    public static readonly WriteProtectionColumn Instance = new();

    /// <summary>Records the mechanism of <paramref name="engine"/> for the case (<typeparamref name="TBenchmark"/>,
    /// <paramref name="method"/>, the current parameters).</summary>
    public static void Record<TBenchmark>(TBenchmark benchmark, string method, CowMemoryEngine engine) where TBenchmark : class =>
        ReportedMetrics.Record(benchmark, method, Metric, (double)engine.WriteProtection);

    public string Id => nameof(WriteProtectionColumn);
    public string ColumnName => Metric;
    public string Legend => "Engine: the write protection its engine used (CowMemoryEngine.WriteProtection: Mprotect or Userfaultfd)";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 2;
    public bool IsNumeric => false;
    public UnitType UnitType => UnitType.Dimensionless;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase)
    {
        double[]? values = ReportedMetrics.All(benchmarkCase, Metric);
        return values is null
            ? "-"
            : string.Join("+", values.Distinct().Order().Select(v => ((CowWriteProtection)(int)v).ToString()));
    }

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public bool IsAvailable(Summary summary) => true;
}
