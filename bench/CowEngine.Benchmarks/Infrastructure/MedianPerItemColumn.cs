using System.Globalization;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>
/// A summary column: a row's median time in nanoseconds divided by the number of items (pages, say)
/// its invocation handled, which <paramref name="items"/> reads from the case (its parameters);
/// "-" where it has no result or no count. For a scenario whose totals differ by size, where
/// OperationsPerInvoke would make Mean per item but leave the report CSV's microseconds too coarse.
/// </summary>
internal sealed class MedianPerItemColumn(string name, string legend, Func<BenchmarkCase, double?> items, string format = "0.##")
    : NumericSummaryColumn($"{nameof(MedianPerItemColumn)}.{name}", name, legend)
{
    public override string GetValue(Summary summary, BenchmarkCase benchmarkCase)
    {
        double? median = summary[benchmarkCase]?.ResultStatistics?.Median;
        double? count = items(benchmarkCase);
        return median is null || count is null or <= 0 ? "-" : (median.Value / count.Value).ToString(format, CultureInfo.InvariantCulture);
    }
}
