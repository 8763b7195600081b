// CowEngine demo: a wildfire simulation that explores branches.
//
// The world is an 8192 x 8192 forest (64 MiB, one byte per cell) and the fire front, all in one
// block of 72 MiB. Each round lightning starts a new fire; then a planner saves the world and tries
// five futures from it - no water drop, or one water drop on the fire's north, east, south or west
// edge - runs each for 32 steps, keeps the future that lost the fewest trees and rolls the world
// back from the others. A step touches only the cells along the fire front, so each future writes a
// few MiB of the 72.
//
// The rounds run twice, by the same code (Planner, Forest):
//  1. in a CowEngine region: a save is a snapshot, copy-on-write copies the pages a future writes (a
//     copy fault on each page's first write, paid inside the simulation steps), and a rollback costs
//     what the future wrote. Every round's result is also saved incrementally (a full file, then only
//     the pages that changed; not timed) and loaded back at the end.
//  2. in plain memory: a save is a memcpy of the whole state into a buffer, a rollback a memcpy back.
// Both are timed end to end, simulation steps included, and must end in byte-identical worlds after
// the same decisions. Then a rewind buffer (CowRewindBuffer) keeps a frame per step of a new fire in
// the engine's world; the world rewinds 40 frames and plays them again, which must end in the same
// bytes. Deterministic: the output is the same on every run, except the timings.
//
// While it runs:  dotnet-counters monitor --counters CowEngine -n CowEngine.Demo
using System.Diagnostics;
using System.Globalization;
using CowEngine;
using CowEngine.Demo;
using Microsoft.Extensions.Logging;

const int Rounds = 16;
const double MiB = 1024 * 1024;
string[] plans = Planner.Plans;

CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
bool interactive = !Console.IsOutputRedirected;
using var loggerFactory = LoggerFactory.Create(builder => builder.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));
using var engine = new CowMemoryEngine(new CowEngineOptions { LoggerFactory = loggerFactory });
using var engineRun = new EngineBranching(engine, Forest.Bytes);
var forest = new Forest(engineRun);
string saveDirectory = Directory.CreateTempSubdirectory("cowengine-demo-").FullName;
using var checkpoints = new CowViewFileChain(Path.Combine(saveDirectory, "forest"));
double stateMiB = Forest.Bytes / MiB;

Console.WriteLine($"CowEngine demo: wildfire in an {Forest.Width:N0} x {Forest.Height:N0} forest ({stateMiB:F0} MiB of state, {Forest.Pages:N0} pages).");
Console.WriteLine($"Each round lightning starts a fire. From a snapshot, {plans.Length} futures of {Planner.StepsPerFuture} steps are tried:");
Console.WriteLine("no water drop, or a drop on the fire's north, east, south or west edge. The future that");
Console.WriteLine("loses the fewest trees is kept; the world is rolled back from the others.");
Console.WriteLine();
Console.WriteLine($"  {"round",5}  {"kept",-13}{"trees lost in each future:",-40}  {"burning",8}");
Console.WriteLine($"  {"",5}  {"",-13}{"no drop",8}{"north",8}{"east",8}{"south",8}{"west",8}  {"",8}");

// Run 1: CowEngine.
var plantClock = Stopwatch.StartNew();
forest.Plant();
TimeSpan planting = plantClock.Elapsed;

var enginePlanner = new Planner(forest, engineRun, "CowEngine", interactive);
var results = new RoundResult[Rounds];
long pagesCopied = 0, copyFaults = 0;
var saveTime = new Stopwatch(); // time spent saving checkpoints, outside the rounds' time
for (int round = 1; round <= Rounds; round++)
{
    CowEngineStats before = engine.GetStats();
    RoundResult result = enginePlanner.Play(round, Rounds);
    CowEngineStats after = engine.GetStats();
    pagesCopied += after.PagesCopied - before.PagesCopied;
    copyFaults += after.CopyFaults - before.CopyFaults;
    results[round - 1] = result;

    saveTime.Start();
    checkpoints.Save(engineRun.View);
    saveTime.Stop();

    Console.WriteLine($"  {round,5}  {plans[result.KeptPlan],-13}{string.Concat(result.Losses.Select(l => $"{l,8:N0}"))}  {result.Burning,8:N0}");
}
CowEngineStats end = engine.GetStats();
long burnt = forest.Burnt, wetted = forest.Wetted, burning = forest.Burning;

// Load the saved chain back and compare it with the world.
var loadClock = Stopwatch.StartNew();
bool chainIdentical;
using (CowView loaded = checkpoints.Load(engine))
    chainIdentical = SameBytes(loaded.AsSpan(), engineRun.View.AsSpan());
loadClock.Stop();
long savedBytes = checkpoints.Files.Sum(f => new FileInfo(f).Length);
long fullFileBytes = new FileInfo(checkpoints.Files[0]).Length;

// Run 2: the same rounds with full copies of the state in plain memory.
Console.WriteLine();
Console.WriteLine($"The same {Rounds} rounds again in plain memory, where a snapshot or a rollback is a memcpy of the whole state...");
using var copyRun = new CopyBranching(Forest.Bytes);
var copyForest = new Forest(copyRun);
copyForest.Plant();
var copyPlanner = new Planner(copyForest, copyRun, "full copies", interactive);
int firstDisagreement = 0;
for (int round = 1; round <= Rounds; round++)
{
    RoundResult result = copyPlanner.Play(round, Rounds);
    if (firstDisagreement == 0 && !result.SameAs(results[round - 1]))
        firstDisagreement = round;
}
bool decisionsAgree = firstDisagreement == 0;
bool worldsIdentical = SameBytes(engineRun.AsSpan(), copyRun.AsSpan());
Console.WriteLine(decisionsAgree
    ? $"Same decisions: the same future kept, with the same losses, in all {Rounds} rounds."
    : $"DIFFERENT decisions: round {firstDisagreement} kept another future or lost other trees than with CowEngine.");
Console.WriteLine($"Final forests of the two runs: {(worldsIdentical ? "identical" : "DIFFERENT")}.");

// The comparison.
long fullCopies = copyRun.FullCopies;
double engineSeconds = enginePlanner.Time.TotalSeconds, copySeconds = copyPlanner.Time.TotalSeconds;
Console.WriteLine();
Console.WriteLine($"The fires burnt {burnt:N0} trees; water drops wetted {wetted:N0} cells; {burning:N0} cells still burn.");
Console.WriteLine($"{Rounds * plans.Length * Planner.StepsPerFuture:N0} steps simulated per run (planting the forest {planting.TotalSeconds:F1} s and saving checkpoints {saveTime.Elapsed.TotalSeconds:F1} s, not in the rounds).");
Console.WriteLine();
Console.WriteLine($"  {"",-27} {"CowEngine",18}   {"full copies of the state",28}");
Console.WriteLine($"  {"time of the rounds",-27} {Seconds(enginePlanner.Time),18}   {Seconds(copyPlanner.Time),28}");
Console.WriteLine($"  {"  snapshot+rollback calls",-27} {Seconds(engineRun.Time),18}   {$"{Seconds(copyRun.Time)} of memcpy",28}");
Console.WriteLine($"  {"  the rest (simulation)",-27} {$"{Seconds(enginePlanner.Time - engineRun.Time)} with faults",18}   {Seconds(copyPlanner.Time - copyRun.Time),28}");
Console.WriteLine($"  {"snapshots taken",-27} {engineRun.Snapshots,18:N0}   {copyRun.Snapshots,28:N0}");
Console.WriteLine($"  {"rollbacks",-27} {engineRun.Rollbacks,18:N0}   {copyRun.Rollbacks,28:N0}");
Console.WriteLine($"  {"pages copied",-27} {$"{pagesCopied:N0} ({pagesCopied * CowMemoryEngine.PageSize / MiB:N0} MiB)",18}   {$"{fullCopies} x {Forest.Pages:N0} ({fullCopies * stateMiB / 1024:N1} GiB)",28}");
Console.WriteLine($"  {"copy faults",-27} {copyFaults,18:N0}   {"-",28}");
Console.WriteLine($"  {"peak memory",-27} {$"{engineRun.PeakCommittedBytes / MiB:N0} MiB",18}   {$"{copyRun.Buffers} buffers x {stateMiB:N0} MiB = {copyRun.Buffers * stateMiB:N0} MiB",28}");
Console.WriteLine($"  {"mappings (budget)",-27} {$"{end.Mappings:N0} ({end.MappingBudget:N0})",18}");
Console.WriteLine("  (the rounds are timed end to end: the engine's copy faults are paid in its simulation steps;");
Console.WriteLine($"  its calls are Snapshot, RestoreTo and Dispose; a memcpy of the {stateMiB:N0} MiB state took {copyRun.Time.TotalMilliseconds / Math.Max(fullCopies, 1):F1} ms on average)");
Console.WriteLine();
double ratio = copySeconds / engineSeconds;
string verdict = Math.Round(Math.Max(ratio, 1 / ratio), 1) == 1.0
    ? "about as fast as full copies"
    : ratio > 1 ? $"CowEngine was {ratio:F1}x faster" : $"CowEngine was {1 / ratio:F1}x slower";
Console.WriteLine($"CowEngine took {engineSeconds:F2} s for the rounds, full copies {copySeconds:F2} s (copies / CowEngine = {ratio:F2}): {verdict}.");
Console.WriteLine();
Console.WriteLine($"Saved {checkpoints.Files.Count} checkpoints: one full file of {fullFileBytes / MiB:N0} MiB, then {checkpoints.Files.Count - 1} files of changed");
Console.WriteLine($"pages ({(savedBytes - fullFileBytes) / MiB:N1} MiB in all). Loaded the chain back in {loadClock.ElapsedMilliseconds:N0} ms: {(chainIdentical ? "identical to the world" : "DIFFERENT from the world")}.");

// A rewind buffer on the engine's world: a new fire burns for a while, a frame per step; rewind, replay.
RewindResult rewind = Rewind.Run(engine, engineRun.View, forest, strike: Rounds + 1);
Console.WriteLine();
Console.WriteLine($"Rewind: a new fire burnt for {rewind.Frames} steps, one frame captured per step into a CowRewindBuffer of {rewind.Kept}");
Console.WriteLine($"(the oldest {rewind.Frames - rewind.Kept} dropped; the frame counter kept with each frame as its payload). A step wrote {rewind.PagesCopied / rewind.Frames:N0} pages");
Console.WriteLine($"that a frame shared (each copied on its first write); a capture, which write-protects them again, took {rewind.CaptureTime.TotalMilliseconds / rewind.Frames:N1} ms;");
Console.WriteLine($"the engine's memory grew by {rewind.HeldMiB:N0} MiB (the frames' old copies of those pages). Rewound {Rewind.Back} frames to frame {rewind.RewoundTo}");
Console.WriteLine($"in {rewind.RewindTime.TotalMilliseconds:N1} ms (the {Rewind.Back} frames after it dropped) and played the steps again: the world is {(rewind.Identical ? "identical to the first time" : "DIFFERENT from the first time")}.");

checkpoints.Dispose();
Directory.Delete(saveDirectory, recursive: true);
return chainIdentical && decisionsAgree && worldsIdentical && rewind.Identical ? 0 : 1;

static string Seconds(TimeSpan time) => time.TotalSeconds >= 1 ? $"{time.TotalSeconds:N2} s" : $"{time.TotalMilliseconds:N0} ms";

static bool SameBytes(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b) => a.SequenceEqual(b);
