using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// The simulator's use of the engine: a deterministic step function over a <see cref="CowArray{T}"/>
/// whose whole state - random number generator included - lives in the array, so a snapshot
/// captures everything that decides the future. Rolling back and re-running must give the same
/// bits, and branches from one snapshot must evolve exactly as if each ran alone in plain memory.
/// </summary>
public sealed class SimulatorRollbackTests
{
    private const int WarmUpSteps = 40;
    private const int FutureSteps = 60;

    [Fact]
    public void RunSnapshotRunRollBackRun_GivesBitIdenticalStates_EveryTime()
    {
        using CowMemoryEngine engine = NewEngine();
        using var simulation = new CowArray<ulong>(engine, Simulation.StateLength);
        Simulation.Seed(simulation.AsSpan(), seed: 12345);
        Simulation.Run(simulation.AsSpan(), WarmUpSteps);
        ulong[] atSnapshot = simulation.AsSpan().ToArray();
        using CowArray<ulong> snapshot = simulation.Snapshot();

        Simulation.Run(simulation.AsSpan(), FutureSteps);
        ulong[] future = simulation.AsSpan().ToArray();
        ulong futureHash = Simulation.Hash(future);
        long changedPages = simulation.View.GetChangedPages(snapshot.View).LongCount;
        Assert.InRange(changedPages, 1, simulation.View.PageCount - 1); // the future rewrites part of the state, not all of it

        for (int rollback = 0; rollback < 3; rollback++)
        {
            simulation.RestoreTo(snapshot);
            Assert.True(simulation.AsSpan().SequenceEqual(atSnapshot), $"rollback {rollback}: the state is not the snapshot's");
            Assert.Equal(Simulation.Hash(atSnapshot), Simulation.Hash(simulation.AsSpan()));

            Simulation.Run(simulation.AsSpan(), FutureSteps);

            Assert.Equal(futureHash, Simulation.Hash(simulation.AsSpan()));
            AssertSameState(future, simulation.AsSpan(), $"rollback {rollback}: the re-run");
        }
        Assert.True(snapshot.AsSpan().SequenceEqual(atSnapshot), "the snapshot changed");

        // The same simulation in plain memory: the engine's memory behaves like ordinary memory.
        ulong[] plain = new ulong[Simulation.StateLength];
        Simulation.Seed(plain, seed: 12345);
        Simulation.Run(plain, WarmUpSteps + FutureSteps);
        AssertSameState(plain, future, "the run in plain memory");
    }

    /// <summary>
    /// Branching with live siblings: several snapshots of one state evolve side by side, each with its
    /// own perturbation; the best is kept (the simulation is restored to it) and the rest disposed.
    /// </summary>
    [Fact]
    public void Branches_FromOneSnapshot_EvolveIndependently_AndTheBestIsKept()
    {
        const int Branches = 5;
        using CowMemoryEngine engine = NewEngine();
        using var simulation = new CowArray<ulong>(engine, Simulation.StateLength);
        Simulation.Seed(simulation.AsSpan(), seed: 777);
        Simulation.Run(simulation.AsSpan(), WarmUpSteps);
        ulong[] atBranchPoint = simulation.AsSpan().ToArray();
        CowArray<ulong> root = simulation.Snapshot();

        var branches = new CowArray<ulong>[Branches];
        for (int b = 0; b < Branches; b++)
        {
            branches[b] = root.Snapshot();
            Simulation.Perturb(branches[b].AsSpan(), b);
        }
        for (int step = 0; step < FutureSteps; step++) // interleaved: siblings write while the others do
            foreach (CowArray<ulong> branch in branches)
                Simulation.Step(branch.AsSpan());

        ulong[][] expected = Enumerable.Range(0, Branches).Select(b => PlainFuture(atBranchPoint, b)).ToArray();
        for (int b = 0; b < Branches; b++)
            AssertSameState(expected[b], branches[b].AsSpan(), $"branch {b}");
        AssertSameState(atBranchPoint, root.AsSpan(), "the branch point");
        AssertSameState(atBranchPoint, simulation.AsSpan(), "the simulation before it chose");
        Assert.True(expected.Select(Simulation.Hash).Distinct().Count() == Branches, "the perturbations did not lead to different futures");

        int best = Enumerable.Range(0, Branches).MaxBy(b => Simulation.Score(branches[b].AsSpan()));
        simulation.RestoreTo(branches[best]);
        root.Dispose();
        foreach (CowArray<ulong> branch in branches)
            branch.Dispose();

        AssertSameState(expected[best], simulation.AsSpan(), $"the simulation after keeping branch {best}");
        Simulation.Step(simulation.AsSpan()); // and it goes on from there
        // Nothing of the discarded futures is left: only the simulation's own pages are in use.
        Assert.Equal(simulation.View.PageCount, engine.GetStats().SlotsInUse);
        Assert.Equal(1, engine.GetStats().LiveViews);
    }

    /// <summary>
    /// Branching with one working state: for each candidate, roll back to the branch point, perturb,
    /// run, and keep a snapshot of the best so far; finally restore the best.
    /// </summary>
    [Fact]
    public void Branches_TriedOneAfterAnotherByRollingBack_KeepTheBest()
    {
        const int Branches = 4;
        using CowMemoryEngine engine = NewEngine();
        using var simulation = new CowArray<ulong>(engine, Simulation.StateLength);
        Simulation.Seed(simulation.AsSpan(), seed: 31337);
        Simulation.Run(simulation.AsSpan(), WarmUpSteps);
        ulong[] atBranchPoint = simulation.AsSpan().ToArray();
        using CowArray<ulong> branchPoint = simulation.Snapshot();

        CowArray<ulong>? bestSoFar = null;
        long bestScore = long.MinValue;
        int bestBranch = -1;
        for (int b = 0; b < Branches; b++)
        {
            simulation.RestoreTo(branchPoint);
            Simulation.Perturb(simulation.AsSpan(), b);
            Simulation.Run(simulation.AsSpan(), FutureSteps);
            AssertSameState(PlainFuture(atBranchPoint, b), simulation.AsSpan(), $"branch {b}");
            long score = Simulation.Score(simulation.AsSpan());
            if (score > bestScore)
            {
                bestSoFar?.Dispose();
                bestSoFar = simulation.Snapshot();
                (bestScore, bestBranch) = (score, b);
            }
        }
        Assert.NotNull(bestSoFar);
        simulation.RestoreTo(bestSoFar);
        bestSoFar.Dispose();

        AssertSameState(PlainFuture(atBranchPoint, bestBranch), simulation.AsSpan(), $"the kept branch {bestBranch}");
        AssertSameState(atBranchPoint, branchPoint.AsSpan(), "the branch point");
        Assert.Equal(2, engine.GetStats().LiveViews);
    }

    // ---- helpers ----

    private static ulong[] PlainFuture(ulong[] start, int perturbation)
    {
        ulong[] state = (ulong[])start.Clone();
        Simulation.Perturb(state, perturbation);
        Simulation.Run(state, FutureSteps);
        return state;
    }

    private static void AssertSameState(ReadOnlySpan<ulong> expected, ReadOnlySpan<ulong> actual, string what)
    {
        if (!actual.SequenceEqual(expected))
        {
            int at = actual.CommonPrefixLength(expected);
            Assert.Fail($"{what}: word {at} (page {at * sizeof(ulong) / CowMemoryEngine.PageSize}) is 0x{actual[at]:x}, expected 0x{expected[at]:x}");
        }
    }
}

/// <summary>
/// A small deterministic simulation over one span of ulongs: word 0 is the random number generator's
/// state, word 1 the step counter, the rest a 1024 x 1024 torus of cells (8 MiB, one row per page).
/// Each step updates a few random cells from their neighbours and sweeps one row, so it rewrites
/// part of the state, like a simulator's tick.
/// </summary>
file static class Simulation
{
    private const int Header = 2;
    private const int Width = 1024;
    private const int Height = 1024;
    private const int RandomUpdatesPerStep = 12;

    public const long StateLength = Header + (long)Width * Height;

    public static void Seed(Span<ulong> state, ulong seed)
    {
        state.Clear();
        state[0] = seed | 1;
        Span<ulong> cells = state[Header..];
        for (int i = 0; i < cells.Length; i += 97)
            cells[i] = (ulong)i * 0x9E3779B97F4A7C15UL;
    }

    public static void Run(Span<ulong> state, int steps)
    {
        for (int i = 0; i < steps; i++)
            Step(state);
    }

    public static void Step(Span<ulong> state)
    {
        ulong random = state[0];
        ulong step = state[1];
        Span<ulong> cells = state[Header..];
        for (int i = 0; i < RandomUpdatesPerStep; i++)
        {
            ulong r = Next(ref random);
            int x = (int)(r % Width), y = (int)((r >> 20) % Height);
            ulong neighbours = cells[Index(x - 1, y)] + cells[Index(x + 1, y)] + cells[Index(x, y - 1)] + cells[Index(x, y + 1)];
            cells[Index(x, y)] = Mix(cells[Index(x, y)] ^ neighbours ^ r);
        }
        int row = (int)(step * 7 % Height), above = (row + Height - 1) % Height;
        for (int x = 0; x < Width; x++)
            cells[Index(x, row)] = Mix(cells[Index(x, row)] + (cells[Index(x, above)] >> 1));
        state[0] = random;
        state[1] = step + 1;
    }

    /// <summary>Changes the future: stirs the generator and one cell, both chosen by <paramref name="branch"/>.</summary>
    public static void Perturb(Span<ulong> state, int branch)
    {
        state[0] ^= 0xD1B54A32D192ED03UL * (ulong)(branch + 1);
        state[Header + branch * 4_099 % (Width * Height)] += (ulong)branch + 1;
    }

    /// <summary>What the search maximises: how many cells have their top bit set.</summary>
    public static long Score(ReadOnlySpan<ulong> state)
    {
        long score = 0;
        foreach (ulong cell in state[Header..])
            score += (long)(cell >> 63);
        return score;
    }

    public static ulong Hash(ReadOnlySpan<ulong> state)
    {
        ulong hash = 0xCBF29CE484222325UL;
        foreach (ulong word in state)
            hash = (hash ^ word) * 0x100000001B3UL;
        return hash;
    }

    public static ulong Hash(ulong[] state) => Hash((ReadOnlySpan<ulong>)state);

    private static int Index(int x, int y) => ((y + Height) % Height) * Width + (x + Width) % Width;

    /// <summary>xorshift64*: an integer generator whose whole state is one word of the array.</summary>
    private static ulong Next(ref ulong state)
    {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return state * 0x2545F4914F6CDD1DUL;
    }

    private static ulong Mix(ulong value)
    {
        value ^= value >> 33;
        value *= 0xFF51AFD7ED558CCDUL;
        value ^= value >> 33;
        return value;
    }
}
