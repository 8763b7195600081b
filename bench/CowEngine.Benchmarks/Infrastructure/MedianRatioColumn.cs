using System.Globalization;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>
/// A summary column: on the rows of method <paramref name="numerator"/>, the median of that row
/// divided by the median of method <paramref name="denominator"/> with the same parameters in the
/// same run ("-" on the other rows, or where either has no result). BenchmarkDotNet's own Ratio
/// column divides means; the tables of docs/benchmarks.md quote medians.
/// </summary>
internal sealed class MedianRatioColumn(string name, string legend, string numerator, string denominator, string format = "0.##")
    : NumericSummaryColumn($"{nameof(MedianRatioColumn)}.{name}", name, legend)
{
    public override string GetValue(Summary summary, BenchmarkCase benchmarkCase)
    {
        if (benchmarkCase.Descriptor.WorkloadMethod.Name != numerator)
            return "-";
        string parameters = ParametersOf(benchmarkCase);
        BenchmarkCase? other = summary.BenchmarksCases.FirstOrDefault(c =>
            c.Descriptor.Type == benchmarkCase.Descriptor.Type
            && c.Descriptor.WorkloadMethod.Name == denominator
            && c.Job.Id == benchmarkCase.Job.Id
            && ParametersOf(c) == parameters);
        double? top = summary[benchmarkCase]?.ResultStatistics?.Median;
        double? bottom = other is null ? null : summary[other]?.ResultStatistics?.Median;
        return top is null || bottom is null or 0 ? "-" : (top.Value / bottom.Value).ToString(format, CultureInfo.InvariantCulture);
    }

    private static string ParametersOf(BenchmarkCase benchmarkCase) =>
        string.Join(",", benchmarkCase.Parameters.Items.Select(p => $"{p.Name}={Convert.ToString(p.Value, CultureInfo.InvariantCulture)}"));
}
