// CowEngine demo: a wildfire simulation that explores branches.
//
// The world is an 8192 x 8192 forest (64 MiB, one byte per cell) and the fire front, all in one
// copy-on-write region of 72 MiB. Each round lightning starts a new fire; then a planner takes a
// snapshot and tries five futures from it - no water drop, or one water drop on the fire's north,
// east, south or west edge - runs each for 32 steps, keeps the future that lost the fewest trees
// and rolls the world back from the others. A step touches only
// the cells along the fire front, so each future writes a few MiB of the 72: copy-on-write copies
// just those pages, and a rollback costs what the future wrote. Every round's result is also saved
// incrementally (a full file, then only the pages that changed) and loaded back at the end.
// Deterministic: the output is the same on every run, except the timings.
//
// While it runs:  dotnet-counters monitor --counters CowEngine -n CowEngine.Demo
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using CowEngine;
using CowEngine.Demo;
using Microsoft.Extensions.Logging;

const int Rounds = 16;
const int StepsPerFuture = 32;
const double MiB = 1024 * 1024;
string[] plans = ["no water drop", "drop north", "drop east", "drop south", "drop west"];

CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
bool interactive = !Console.IsOutputRedirected;
using var loggerFactory = LoggerFactory.Create(builder => builder.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));
using var engine = new CowMemoryEngine(new CowEngineOptions { LoggerFactory = loggerFactory });
using var forest = new Forest(engine);
string saveDirectory = Directory.CreateTempSubdirectory("cowengine-demo-").FullName;
using var checkpoints = new CowViewFileChain(Path.Combine(saveDirectory, "forest"));

Console.WriteLine($"CowEngine demo: wildfire in an {Forest.Width:N0} x {Forest.Height:N0} forest ({forest.View.Length / MiB:F0} MiB of state, {forest.View.PageCount:N0} pages).");
Console.WriteLine($"Each round lightning starts a fire. From a snapshot, {plans.Length} futures of {StepsPerFuture} steps are tried:");
Console.WriteLine("no water drop, or a drop on the fire's north, east, south or west edge. The future that");
Console.WriteLine("loses the fewest trees is kept; the world is rolled back from the others.");
Console.WriteLine();
Console.WriteLine($"  {"round",5}  {"kept",-13}{"trees lost in each future:",-40}  {"burning",8}");
Console.WriteLine($"  {"",5}  {"",-13}{"no drop",8}{"north",8}{"east",8}{"south",8}{"west",8}  {"",8}");

var clock = Stopwatch.StartNew();
forest.Plant();
TimeSpan planting = clock.Elapsed;
double fullCopyMilliseconds = MeasureOneFullCopy(forest.View);

long snapshots = 0, rollbacks = 0, peakCommitted = 0, peakViews = 0;
var engineTime = new Stopwatch(); // time spent inside Snapshot and RestoreTo
var saveTime = new Stopwatch();   // time spent saving checkpoints
var progress = Stopwatch.StartNew();

for (int round = 1; round <= Rounds; round++)
{
    forest.Strike(round);
    CowView root = Timed(() => forest.View.Snapshot());
    snapshots++;
    long burntAtRoot = forest.Burnt;
    CowView? best = null;
    int bestPlan = -1;
    long bestLoss = long.MaxValue;
    var losses = new long[plans.Length];

    for (int plan = 0; plan < plans.Length; plan++)
    {
        if (plan > 0)
        {
            Time(() => forest.View.RestoreTo(root)); // roll back the previous future
            rollbacks++;
        }
        forest.DropWater(plan);
        for (int step = 0; step < StepsPerFuture; step++)
        {
            forest.Step();
            if (interactive && progress.ElapsedMilliseconds >= 100)
            {
                progress.Restart();
                CowEngineStats live = engine.GetStats();
                Console.Write($"\r  round {round,2}/{Rounds}  future {plan + 1}/{plans.Length}  step {step + 1,2}/{StepsPerFuture}  burning {forest.Burning,6:N0}  pages copied {live.PagesCopied,8:N0} ");
            }
        }
        losses[plan] = forest.Burnt - burntAtRoot;
        if (losses[plan] < bestLoss)
        {
            best?.Dispose();
            best = Timed(() => forest.View.Snapshot()); // keep this future
            snapshots++;
            bestLoss = losses[plan];
            bestPlan = plan;
        }
        CowEngineStats stats = engine.GetStats();
        peakCommitted = Math.Max(peakCommitted, stats.CommittedBytes);
        peakViews = Math.Max(peakViews, stats.LiveViews);
    }

    if (bestPlan != plans.Length - 1)
    {
        Time(() => forest.View.RestoreTo(best!)); // continue from the best future
        rollbacks++;
    }
    best!.Dispose();
    root.Dispose();
    saveTime.Start();
    checkpoints.Save(forest.View);
    saveTime.Stop();

    if (interactive)
        Console.Write($"\r{new string(' ', 79)}\r");
    Console.WriteLine($"  {round,5}  {plans[bestPlan],-13}{string.Concat(losses.Select(l => $"{l,8:N0}"))}  {forest.Burning,8:N0}");
}

CowEngineStats end = engine.GetStats();
TimeSpan simulated = clock.Elapsed;

// Load the saved chain back and compare it with the world.
var loadClock = Stopwatch.StartNew();
bool identical;
using (CowView loaded = checkpoints.Load(engine))
    identical = SameBytes(loaded, forest.View);
loadClock.Stop();
long savedBytes = checkpoints.Files.Sum(f => new FileInfo(f).Length);
long fullFileBytes = new FileInfo(checkpoints.Files[0]).Length;

double stateMiB = forest.View.Length / MiB;
long statePages = forest.View.PageCount;
long fullCopies = snapshots + rollbacks;
Console.WriteLine();
Console.WriteLine($"The fires burnt {forest.Burnt:N0} trees; water drops wetted {forest.Wetted:N0} cells; {forest.Burning:N0} cells still burn.");
Console.WriteLine($"{Rounds * plans.Length * StepsPerFuture:N0} steps simulated in {simulated.TotalSeconds:F1} s (planting the forest {planting.TotalSeconds:F1} s, saving checkpoints {saveTime.Elapsed.TotalSeconds:F1} s).");
Console.WriteLine();
Console.WriteLine($"  {"",-27} {"CowEngine",18}   {"full copies of the state",28}");
Console.WriteLine($"  {"snapshots taken",-27} {snapshots,18:N0}   {snapshots,28:N0}");
Console.WriteLine($"  {"rollbacks",-27} {rollbacks,18:N0}   {rollbacks,28:N0}");
Console.WriteLine($"  {"pages copied",-27} {$"{end.PagesCopied:N0} ({end.PagesCopied * 4096 / MiB:N0} MiB)",18}   {$"{fullCopies} x {statePages:N0} ({fullCopies * stateMiB / 1024:N1} GiB)",28}");
Console.WriteLine($"  {"peak memory",-27} {$"{peakCommitted / MiB:N0} MiB",18}   {$"{peakViews} views x {stateMiB:N0} MiB = {peakViews * stateMiB:N0} MiB",28}");
Console.WriteLine($"  {"time snapshotting+restoring",-27} {$"{engineTime.Elapsed.TotalMilliseconds:N0} ms",18}   {$"~{fullCopies * fullCopyMilliseconds / 1000:N1} s of memcpy",28}");
Console.WriteLine($"  {"copy faults",-27} {end.CopyFaults,18:N0}");
Console.WriteLine($"  {"mappings (budget)",-27} {$"{end.Mappings:N0} ({end.MappingBudget:N0})",18}");
Console.WriteLine($"  (memcpy of the {stateMiB:N0} MiB state, measured here: {fullCopyMilliseconds:F1} ms per copy)");
Console.WriteLine();
Console.WriteLine($"Saved {checkpoints.Files.Count} checkpoints: one full file of {fullFileBytes / MiB:N0} MiB, then {checkpoints.Files.Count - 1} files of changed");
Console.WriteLine($"pages ({(savedBytes - fullFileBytes) / MiB:N1} MiB in all). Loaded the chain back in {loadClock.ElapsedMilliseconds:N0} ms: {(identical ? "identical to the world" : "DIFFERENT from the world")}.");

checkpoints.Dispose();
Directory.Delete(saveDirectory, recursive: true);
return identical ? 0 : 1;

T Timed<T>(Func<T> operation)
{
    engineTime.Start();
    try
    {
        return operation();
    }
    finally
    {
        engineTime.Stop();
    }
}

void Time(Action operation) => Timed(() => { operation(); return 0; });

// What one full copy of the state costs here: the price a copy-based snapshot or rollback pays.
static unsafe double MeasureOneFullCopy(CowView view)
{
    nuint bytes = (nuint)view.Length;
    void* target = NativeMemory.Alloc(bytes);
    try
    {
        Buffer.MemoryCopy(view.Pointer, target, bytes, bytes); // first pass: the kernel's first touch of target
        var watch = Stopwatch.StartNew();
        Buffer.MemoryCopy(view.Pointer, target, bytes, bytes);
        return watch.Elapsed.TotalMilliseconds;
    }
    finally
    {
        NativeMemory.Free(target);
    }
}

static bool SameBytes(CowView a, CowView b)
{
    const int Chunk = 1 << 30;
    for (long offset = 0; offset < a.Length; offset += Chunk)
    {
        int length = (int)Math.Min(Chunk, a.Length - offset);
        if (!a.AsSpan(offset, length).SequenceEqual(b.AsSpan(offset, length)))
            return false;
    }
    return a.Length == b.Length;
}
