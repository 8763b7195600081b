using System.Diagnostics;

namespace CowEngine.Demo;

/// <summary>What a round decided: the future it kept, the trees each future lost, the cells left burning.</summary>
internal sealed record RoundResult(int KeptPlan, long[] Losses, int Burning)
{
    public bool SameAs(RoundResult other) =>
        KeptPlan == other.KeptPlan && Burning == other.Burning && Losses.AsSpan().SequenceEqual(other.Losses);
}

/// <summary>
/// Plays the demo's rounds on a forest, saving and rolling back through a <see cref="Branching"/>:
/// the same code, and so the same rounds, whichever way the state is saved.
/// </summary>
internal sealed class Planner(Forest forest, Branching branching, string name, bool showProgress)
{
    public const int StepsPerFuture = 32;

    public static readonly string[] Plans = ["no water drop", "drop north", "drop east", "drop south", "drop west"];

    private readonly Stopwatch _time = new();
    private readonly Stopwatch _progress = Stopwatch.StartNew();

    /// <summary>Time spent in <see cref="Play"/>: the whole rounds, simulation steps included.</summary>
    public TimeSpan Time => _time.Elapsed;

    /// <summary>
    /// One round: lightning strikes; from a save of the world, each plan's future runs for
    /// <see cref="StepsPerFuture"/> steps (rolling back before the next); the world continues from
    /// the future that lost the fewest trees.
    /// </summary>
    public RoundResult Play(int round, int rounds)
    {
        _time.Start();
        try
        {
            forest.Strike(round);
            branching.Save(Saved.Root);
            long burntAtRoot = forest.Burnt;
            int bestPlan = -1;
            long bestLoss = long.MaxValue;
            var losses = new long[Plans.Length];

            for (int plan = 0; plan < Plans.Length; plan++)
            {
                if (plan > 0)
                    branching.RollBack(Saved.Root); // roll back the previous future
                forest.DropWater(plan);
                for (int step = 0; step < StepsPerFuture; step++)
                {
                    forest.Step();
                    if (showProgress && _progress.ElapsedMilliseconds >= 100)
                    {
                        _time.Stop(); // what only watches the run is not timed
                        ShowProgress(round, rounds, plan, step);
                        _time.Start();
                    }
                }
                losses[plan] = forest.Burnt - burntAtRoot;
                if (losses[plan] < bestLoss)
                {
                    branching.Save(Saved.Best); // keep this future
                    bestLoss = losses[plan];
                    bestPlan = plan;
                }
                _time.Stop();
                branching.AfterFuture();
                _time.Start();
            }

            if (bestPlan != Plans.Length - 1)
                branching.RollBack(Saved.Best); // continue from the best future
            branching.Release(Saved.Best);
            branching.Release(Saved.Root);
            return new RoundResult(bestPlan, losses, forest.Burning);
        }
        finally
        {
            _time.Stop();
            if (showProgress)
                Console.Write($"\r{new string(' ', 100)}\r");
        }
    }

    private void ShowProgress(int round, int rounds, int plan, int step)
    {
        _progress.Restart();
        Console.Write($"\r  {name}: round {round,2}/{rounds}  future {plan + 1}/{Plans.Length}  step {step + 1,2}/{StepsPerFuture}  burning {forest.Burning,6:N0}  {branching.Status} ");
    }
}
