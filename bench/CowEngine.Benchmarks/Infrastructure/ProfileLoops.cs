using System.Diagnostics;
using System.Globalization;

namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>
/// The engine's hot loops of scenarios 2 and 3, alone in a process, for profilers:
/// <code>
///   CowEngine.Benchmarks profile snapshot K ITERATIONS      1 GiB region; loop { write K random pages; snapshot; dispose previous }
///   CowEngine.Benchmarks profile first-write ORDER PAGES     256 MiB region, snapshot, then write PAGES pages (Sequential|Random)
///   CowEngine.Benchmarks profile hot-loop STATE_KIB K TURNS  region + snapshot; loop { write K random pages; region.RestoreTo(snapshot) } (scenario 8)
///   CowEngine.Benchmarks profile rewind STATE_KIB M TICKS     scenario 9's engine loop: write M pages, snapshot, keep 600; every 100th tick RestoreTo 50 back
/// </code>
/// e.g. <c>strace -f -c -o counts.txt CowEngine.Benchmarks profile snapshot 256 200</c> or
/// <c>perf record -g -- CowEngine.Benchmarks profile first-write Random 16384</c>. Each prints
/// the time of its measured part, so runs with and without a profiler can be compared; setup (the
/// region's first fill) is in the profile too, and is the same for every K, so diff two runs.
/// </summary>
internal static unsafe class ProfileLoops
{
    public static int Run(string[] args)
    {
        try
        {
            return args switch
            {
                ["snapshot", var k, var iterations] => SnapshotLoop(int.Parse(k, CultureInfo.InvariantCulture), int.Parse(iterations, CultureInfo.InvariantCulture)),
                ["first-write", var order, var pages] => FirstWrite(order, int.Parse(pages, CultureInfo.InvariantCulture)),
                ["hot-loop", var stateKiB, var k, var turns] => HotLoop(long.Parse(stateKiB, CultureInfo.InvariantCulture),
                    int.Parse(k, CultureInfo.InvariantCulture), int.Parse(turns, CultureInfo.InvariantCulture)),
                ["rewind", var stateKiB, var m, var ticks] => Rewind(long.Parse(stateKiB, CultureInfo.InvariantCulture),
                    int.Parse(m, CultureInfo.InvariantCulture), int.Parse(ticks, CultureInfo.InvariantCulture)),
                _ => Usage(),
            };
        }
        catch (FormatException)
        {
            return Usage();
        }
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: CowEngine.Benchmarks profile snapshot K ITERATIONS | profile first-write Sequential|Random PAGES | profile hot-loop STATE_KIB K TURNS | profile rewind STATE_KIB M TICKS");
        return 2;
    }

    private static int SnapshotLoop(int k, int iterations)
    {
        using var engine = new CowMemoryEngine();
        CowView region = engine.CreateRegion(1024 * BenchSettings.MiB);
        Pages.WriteRange(region.Pointer, 0, region.PageCount, 1);
        CowView previous = region.Snapshot();
        var random = new RandomPageSource(region.PageCount, seed: 2);
        double snapshotTicks = 0, writeTicks = 0;
        for (int i = 0; i < iterations; i++)
        {
            long start = Stopwatch.GetTimestamp();
            Pages.Write(region.Pointer, random.Next(k), (byte)(i + 2));
            long written = Stopwatch.GetTimestamp();
            CowView snapshot = region.Snapshot();
            previous.Dispose();
            previous = snapshot;
            snapshotTicks += Stopwatch.GetTimestamp() - written;
            writeTicks += written - start;
        }
        double us = 1e6 / Stopwatch.Frequency / iterations;
        Console.WriteLine($"k={k}: snapshot + dispose previous {snapshotTicks * us:F1} us, writing k pages {writeTicks * us:F1} us, " +
            $"mappings {engine.GetStats().Mappings} (mean of {iterations} iterations)");
        return 0;
    }

    private static int FirstWrite(string order, int pages)
    {
        using var engine = new CowMemoryEngine();
        CowView region = engine.CreateRegion(256 * BenchSettings.MiB);
        Pages.WriteRange(region.Pointer, 0, region.PageCount, 1);
        using CowView snapshot = region.Snapshot();
        uint[] list = order switch
        {
            "Sequential" => Pages.Sequential(pages),
            "Random" => Pages.Random(region.PageCount, pages, seed: 3),
            _ => throw new FormatException(),
        };
        long start = Stopwatch.GetTimestamp();
        Pages.Write(region.Pointer, list, 2);
        double us = Stopwatch.GetElapsedTime(start).TotalMicroseconds / pages;
        Console.WriteLine($"{order}: {us:F2} us per page over {pages} pages, mappings {engine.GetStats().Mappings}");
        return 0;
    }

    private static int HotLoop(long stateKiB, int k, int turns)
    {
        using var engine = new CowMemoryEngine();
        CowView region = engine.CreateRegion(stateKiB * 1024);
        if (k > region.PageCount)
            return Usage();
        Pages.WriteRange(region.Pointer, 0, region.PageCount, 1);
        using CowView snapshot = region.Snapshot();
        var random = new RandomPageSource(region.PageCount, seed: 13);
        var pages = new uint[k];
        CowEngineStats before = engine.GetStats();
        double writeTicks = 0, restoreTicks = 0;
        for (int i = 0; i < turns; i++)
        {
            random.Next(pages);
            long start = Stopwatch.GetTimestamp();
            Pages.Write(region.Pointer, pages, (byte)(i + 2));
            long written = Stopwatch.GetTimestamp();
            region.RestoreTo(snapshot);
            restoreTicks += Stopwatch.GetTimestamp() - written;
            writeTicks += written - start;
        }
        CowEngineStats after = engine.GetStats();
        double us = 1e6 / Stopwatch.Frequency / turns;
        Console.WriteLine($"{stateKiB} KiB, k={k}: writes {writeTicks * us:F1} us + RestoreTo {restoreTicks * us:F1} us per turn " +
            $"(mean of {turns}); per page written: {(double)(after.WriteFaults - before.WriteFaults) / turns / k:F3} faults, " +
            $"{(double)(after.PagesCopied - before.PagesCopied) / turns / k:F3} copies, " +
            $"{(double)(after.PagesRestoredByCopy - before.PagesRestoredByCopy) / turns / k:F3} restored by copy");
        return 0;
    }

    private static int Rewind(long stateKiB, int m, int ticks)
    {
        const int Kept = 600, Every = 100, Distance = 50;
        using var engine = new CowMemoryEngine();
        CowView region = engine.CreateRegion(stateKiB * 1024);
        if (m > region.PageCount)
            return Usage();
        Pages.WriteRange(region.Pointer, 0, region.PageCount, 1);
        var random = new RandomPageSource(region.PageCount, seed: 9);
        var pages = new uint[m];
        var ring = new List<CowView>();
        CowEngineStats before = engine.GetStats();
        double snapshotTicks = 0, disposeTicks = 0, restoreTicks = 0, writeTicks = 0;
        long snapshots = 0, disposes = 0, restores = 0;
        for (int tick = 1; tick <= ticks; tick++)
        {
            random.Next(pages);
            long start = Stopwatch.GetTimestamp();
            Pages.Write(region.Pointer, pages, (byte)tick);
            long t1 = Stopwatch.GetTimestamp();
            ring.Add(region.Snapshot());
            long t2 = Stopwatch.GetTimestamp();
            writeTicks += t1 - start;
            snapshotTicks += t2 - t1;
            snapshots++;
            if (ring.Count > Kept)
            {
                ring[0].Dispose();
                ring.RemoveAt(0);
                disposeTicks += Stopwatch.GetTimestamp() - t2;
                disposes++;
            }
            if (tick % Every == Every / 2 && ring.Count > Distance)
            {
                long t3 = Stopwatch.GetTimestamp();
                region.RestoreTo(ring[ring.Count - 1 - Distance]);
                long t4 = Stopwatch.GetTimestamp();
                restoreTicks += t4 - t3;
                restores++;
                for (int i = 0; i < Distance; i++)
                {
                    ring[^1].Dispose();
                    ring.RemoveAt(ring.Count - 1);
                }
                disposeTicks += Stopwatch.GetTimestamp() - t4;
                disposes += Distance;
            }
        }
        CowEngineStats after = engine.GetStats();
        double us = 1e6 / Stopwatch.Frequency;
        Console.WriteLine($"{stateKiB} KiB, m={m}: writes {writeTicks * us / ticks:F1} us per tick, Snapshot {snapshotTicks * us / snapshots:F1} us, " +
            $"Dispose {disposeTicks * us / Math.Max(1, disposes):F1} us, RestoreTo {restoreTicks * us / Math.Max(1, restores):F1} us ({restores} rewinds); " +
            $"per page written: {(double)(after.PagesCopied - before.PagesCopied) / ticks / m:F3} copies, " +
            $"{(double)(after.ReverseCopies - before.ReverseCopies) / ticks / m:F3} of them reverse");
        foreach (CowView view in ring)
            view.Dispose();
        return 0;
    }
}
