using System.Diagnostics;

namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>
/// Durations of one kind of call (Stopwatch ticks), every call kept, first one included, for
/// percentiles. Room for <c>capacity</c> samples is allocated up front, so adding one inside a
/// timed loop allocates nothing (past the capacity the array grows, once per doubling).
/// </summary>
internal sealed class LatencySamples(int capacity)
{
    private long[] _ticks = Touched(capacity);

    public int Count { get; private set; }

    public void Add(long ticks)
    {
        if (Count == _ticks.Length)
            Array.Resize(ref _ticks, _ticks.Length * 2);
        _ticks[Count++] = ticks;
    }

    /// <summary>The first call's duration, in microseconds (null when there was none).</summary>
    public double? FirstMicroseconds => Count == 0 ? null : ToMicroseconds(_ticks[0]);

    /// <summary>
    /// The <paramref name="quantile"/> (0.5 = median, 0.99 = p99) of all samples, in microseconds,
    /// interpolated between the two nearest ranks (type 7, as numpy and Excel do); null when empty.
    /// </summary>
    public double? Percentile(double quantile)
    {
        if (Count == 0)
            return null;
        long[] sorted = _ticks[..Count];
        Array.Sort(sorted);
        double position = quantile * (Count - 1);
        int below = (int)Math.Floor(position);
        int above = Math.Min(below + 1, Count - 1);
        double ticks = sorted[below] + (position - below) * (sorted[above] - sorted[below]);
        return ToMicroseconds(ticks);
    }

    public double? MaxMicroseconds => Count == 0 ? null : ToMicroseconds(_ticks[..Count].Max());

    /// <summary>An array whose memory is written once now, so that filling it later in a timed
    /// loop neither faults nor counts as memory growth there.</summary>
    private static long[] Touched(int capacity)
    {
        var ticks = new long[capacity];
        ticks.AsSpan().Fill(-1);
        return ticks;
    }

    private static double ToMicroseconds(double ticks) => ticks * 1e6 / Stopwatch.Frequency;
}
