using System.Collections.Concurrent;
using System.Diagnostics;

namespace CowEngine.Stress;

/// <summary>
/// Everything the run prints, and the failure count that decides its exit code. Every failure is
/// counted; the first <see cref="PrintedFailureLimit"/> are printed in full (a broken invariant
/// tends to repeat, and the first reports are the ones that explain it).
/// </summary>
internal static class Report
{
    public const int PrintedFailureLimit = 200;

    private static readonly Lock OutputGate = new();
    private static long _origin = Stopwatch.GetTimestamp();
    private static readonly ConcurrentDictionary<string, long> FailuresByCategory = new();
    private static long _failures;

    public static long Failures => Interlocked.Read(ref _failures);

    public static IReadOnlyDictionary<string, long> FailureCategories => FailuresByCategory;

    /// <summary>Seconds since the stressed process started (the watchdog process uses that process's start too).</summary>
    public static double ElapsedSeconds => Stopwatch.GetElapsedTime(Volatile.Read(ref _origin)).TotalSeconds;

    /// <summary>The Stopwatch timestamp times are printed relative to.</summary>
    public static long Origin
    {
        get => Volatile.Read(ref _origin);
        set => Volatile.Write(ref _origin, value);
    }

    /// <summary>A line on stdout, prefixed with the time since start.</summary>
    public static void Line(string text)
    {
        lock (OutputGate)
        {
            Console.Out.WriteLine($"[{ElapsedSeconds,8:F1}s] {text}");
            Console.Out.Flush();
        }
    }

    /// <summary>A mismatch or a violated invariant: fails the run.</summary>
    /// <param name="category">Short stable name (counted per category in the summary).</param>
    /// <param name="detail">What was expected, what was found, and where.</param>
    public static void Failure(string category, string detail)
    {
        long number = Interlocked.Increment(ref _failures);
        FailuresByCategory.AddOrUpdate(category, 1, (_, n) => n + 1);
        if (number <= PrintedFailureLimit)
            Line($"MISMATCH #{number} [{category}] on {Thread.CurrentThread.Name ?? "?"}: {detail}");
        else if (number == PrintedFailureLimit + 1)
            Line($"MISMATCH: more than {PrintedFailureLimit} failures; only counting from now on");
    }
}
