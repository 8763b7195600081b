using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Exporters.Csv;
using BenchmarkDotNet.Order;
using BenchmarkDotNet.Reports;
using Perfolizer.Horology;

namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>Exporters, columns and output folder shared by every scenario (each adds its job).</summary>
internal static class GlobalConfig
{
    public static IConfig Create(string artifactsPath) => ManualConfig.CreateMinimumViable()
        .AddColumn(StatisticColumn.Median, StatisticColumn.Min, StatisticColumn.Max, StatisticColumn.Iterations)
        .AddExporter(MarkdownExporter.GitHub)
        // Fixed units and bare numbers in the CSV, so bench/report.py can read it without guessing:
        // times in microseconds, units only in the header.
        .AddExporter(new CsvExporter(CsvSeparator.Comma, new SummaryStyle(
            cultureInfo: CultureInfo.InvariantCulture,
            printUnitsInHeader: true,
            sizeUnit: null,
            timeUnit: TimeUnit.Microsecond,
            printUnitsInContent: false,
            printZeroValuesInContent: true,
            maxParameterColumnWidth: 40)))
        // Every iteration's raw time as well, for anyone who wants more than the median.
        .AddExporter(CsvMeasurementsExporter.Default)
        .AddAnalyser(DefaultConfig.Instance.GetAnalysers().ToArray())
        .AddValidator(DefaultConfig.Instance.GetValidators().ToArray())
        .WithArtifactsPath(artifactsPath)
        .WithOrderer(new DefaultOrderer(SummaryOrderPolicy.Declared))
        .WithOptions(ConfigOptions.DisableLogFile);
}
