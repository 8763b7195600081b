// CowEngine demo: a toy simulation that branches and rolls back.
//
// The "world" is an array of 1,048,576 ints (4 MiB, 1,024 pages) in a copy-on-write region. Each
// step of the simulation changes a few cells, like a simulator whose state is large but whose steps
// are local. Every 25 steps we take a snapshot; from one snapshot we branch an alternative future;
// finally we roll the live world back. After each phase the demo prints what every view holds and
// how many of its pages are private (copied) or still shared.
using System.Globalization;
using CowEngine;
using Microsoft.Extensions.Logging;

const int Cells = 1 << 20;
const int StepsPerSnapshot = 25;

using var loggerFactory = LoggerFactory.Create(builder => builder.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));
using var engine = new CowMemoryEngine(new CowEngineOptions { LoggerFactory = loggerFactory });
using var world = new CowArray<int>(engine, Cells);

var snapshots = new List<(string Name, CowArray<int> Array)>();
uint seed = 12345;

Console.WriteLine($"CowEngine demo: a world of {Cells:N0} cells ({world.View.Length / 1024 / 1024} MiB, {world.View.PageCount:N0} pages)");
Console.WriteLine();

// Phase 1: run the main timeline, snapshotting as we go (snapshots of a live view: nested in time).
for (int snapshot = 1; snapshot <= 4; snapshot++)
{
    Run(world, StepsPerSnapshot, ref seed);
    snapshots.Add(($"t={snapshot * StepsPerSnapshot}", world.Snapshot()));
}
Run(world, StepsPerSnapshot, ref seed);
Report("Main timeline ran 125 steps, snapshot every 25", ("live world", world), snapshots);

// Phase 2: branch. A snapshot is itself writable: run a different future from t=50 inside it,
// and snapshot the branch too (a snapshot of a snapshot).
CowArray<int> branch = snapshots[1].Array.Snapshot();
uint branchSeed = 999;
Run(branch, 2 * StepsPerSnapshot, ref branchSeed);
CowArray<int> branchSnapshot = branch.Snapshot();
Run(branch, StepsPerSnapshot, ref branchSeed);
Report("Branched from t=50 and ran 75 other steps", ("branch", branch),
    [("branch@t=100", branchSnapshot), .. snapshots]);

// Phase 3: roll the live world back to t=75 (costs only the pages that differ), and check it.
long before = world.View.GetChangedPages(snapshots[2].Array.View).LongCount;
world.RestoreTo(snapshots[2].Array);
bool identical = world.AsSpan().SequenceEqual(snapshots[2].Array.AsSpan());
Console.WriteLine($"Rolled the live world back to t=75: {before} pages differed, now identical: {identical}");
Console.WriteLine();
Report("After the rollback", ("live world", world), snapshots);

CowEngineStats stats = engine.GetStats();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"Engine: {stats.LiveViews} views, {stats.SlotsInUse:N0} slots in use ({stats.CommittedBytes / 1024.0 / 1024.0:F1} MiB committed) " +
    $"where {stats.LiveViews} full copies would take {stats.LiveViews * world.View.Length / 1024.0 / 1024.0:F0} MiB; " +
    $"{stats.Snapshots} snapshots, {stats.CopyFaults:N0} copy faults, {stats.Mappings:N0} mappings of a budget of {stats.MappingBudget:N0}."));

branch.Dispose();
branchSnapshot.Dispose();
foreach (var (_, array) in snapshots)
    array.Dispose();

// One simulation step: a deterministic xorshift PRNG picks 4 cells and adds to them.
static void Run(CowArray<int> state, int steps, ref uint seed)
{
    for (int step = 0; step < steps; step++)
    {
        for (int touch = 0; touch < 4; touch++)
        {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            state[seed % Cells] += (int)(seed & 0xFF) + 1;
        }
    }
}

static void Report(string title, (string Name, CowArray<int> Array) current, IEnumerable<(string Name, CowArray<int> Array)> others)
{
    Console.WriteLine(title);
    Console.WriteLine($"  {"view",-14} {"checksum",10} {"cells != 0",11} {"private",8} {"shared",8} {"mapped",8}");
    foreach (var (name, array) in others.Prepend(current))
    {
        long checksum = 0, nonZero = 0;
        foreach (int cell in array.AsSpan())
        {
            checksum = checksum * 31 + cell;
            nonZero += cell != 0 ? 1 : 0;
        }
        CowViewStats stats = array.View.GetStats();
        Console.WriteLine($"  {name,-14} {checksum & 0xFFFFFFFF,10:x8} {nonZero,11:N0} {stats.PrivatePages,8:N0} {stats.SharedPages,8:N0} {stats.MappedPages,8:N0}");
    }
    Console.WriteLine("  (pages: private = copied for this view only; shared = still one physical page with another view;");
    Console.WriteLine("   mapped = touched so far: a snapshot maps its pages on first access)");
    Console.WriteLine();
}
