using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>A summary column showing the median (or the sum) of a <see cref="ReportedMetrics"/>
/// value ("-" where the benchmark does not report it).</summary>
internal sealed class ReportedMetricColumn(string metric, string legend, bool sum = false, string format = "0.###") : IColumn
{
    public string Id => $"{nameof(ReportedMetricColumn)}.{metric}";
    public string ColumnName => metric;
    public string Legend => legend;
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) =>
        (sum ? ReportedMetrics.Sum(benchmarkCase, metric) : ReportedMetrics.Median(benchmarkCase, metric))
            ?.ToString(format, CultureInfo.InvariantCulture) ?? "-";

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public bool IsAvailable(Summary summary) => true;
}
