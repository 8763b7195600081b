using System.Collections.Concurrent;
using System.Globalization;
using System.Reflection;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;

namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>
/// Values a benchmark measures itself - what BenchmarkDotNet's clock cannot see: time measured
/// inside a forked child, bytes of memory. Benchmarks record them per iteration; a
/// <see cref="ReportedMetricColumn"/> prints their median in the summary and the CSV. This works
/// because the benchmarks run in this process (in-process toolchain).
/// </summary>
internal static class ReportedMetrics
{
    private static readonly ConcurrentDictionary<string, ConcurrentQueue<double>> Values = new();

    /// <summary>Records one value of <paramref name="metric"/> for the benchmark case
    /// (<typeparamref name="TBenchmark"/>, <paramref name="method"/>, the benchmark's current
    /// parameters). The class is taken from the static type: at run time the object is an instance
    /// of a class BenchmarkDotNet emitted, derived from it.</summary>
    public static void Record<TBenchmark>(TBenchmark benchmark, string method, string metric, double value) where TBenchmark : class =>
        Values.GetOrAdd(Key(typeof(TBenchmark).Name, method, ParametersOf(typeof(TBenchmark), benchmark), metric), _ => new()).Enqueue(value);

    /// <summary>Median of the recorded values, or null if none were recorded.</summary>
    public static double? Median(BenchmarkCase benchmarkCase, string metric)
    {
        double[]? values = Get(benchmarkCase, metric);
        if (values is null)
            return null;
        double[] sorted = values.Order().ToArray();
        int middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    /// <summary>Sum of the recorded values (e.g. events counted per iteration), or null if none were recorded.</summary>
    public static double? Sum(BenchmarkCase benchmarkCase, string metric) => Get(benchmarkCase, metric)?.Sum();

    /// <summary>Every recorded value, in the order recorded, or null if none were recorded.</summary>
    public static double[]? All(BenchmarkCase benchmarkCase, string metric) => Get(benchmarkCase, metric);

    private static double[]? Get(BenchmarkCase benchmarkCase, string metric)
    {
        string parameters = Format(benchmarkCase.Parameters.Items.Select(p => (p.Name, (object?)p.Value)));
        string key = Key(benchmarkCase.Descriptor.Type.Name, benchmarkCase.Descriptor.WorkloadMethod.Name, parameters, metric);
        return Values.TryGetValue(key, out ConcurrentQueue<double>? queue) && !queue.IsEmpty ? queue.ToArray() : null;
    }

    private static string Key(string type, string method, string parameters, string metric) =>
        $"{type}.{method}({parameters})#{metric}";

    /// <summary>The [Params]/[ParamsSource] members of a benchmark and their current values.</summary>
    private static string ParametersOf(Type type, object benchmark)
    {
        const BindingFlags flags = BindingFlags.Public | BindingFlags.Instance;
        IEnumerable<(string, object?)> fields = type.GetFields(flags)
            .Where(IsParameter)
            .Select(f => (f.Name, f.GetValue(benchmark)));
        IEnumerable<(string, object?)> properties = type.GetProperties(flags)
            .Where(IsParameter)
            .Select(p => (p.Name, p.GetValue(benchmark)));
        return Format(fields.Concat(properties));
    }

    private static bool IsParameter(MemberInfo member) =>
        member.IsDefined(typeof(ParamsAttribute)) || member.IsDefined(typeof(ParamsSourceAttribute));

    private static string Format(IEnumerable<(string Name, object? Value)> parameters) =>
        string.Join(",", parameters
            .OrderBy(p => p.Name, StringComparer.Ordinal)
            .Select(p => $"{p.Name}={Convert.ToString(p.Value, CultureInfo.InvariantCulture)}"));
}
