namespace CowEngine.Stress;

/// <summary>
/// Disposes random views - mostly snapshots, sometimes a region while snapshots of it live on -
/// keeping each family between one view and its cap. A disposed view's pages that no other view
/// shares go back to the pool; every other view must be unaffected (the verifier and the
/// checkpoints check that), and the disposed view must refuse further use.
/// </summary>
internal sealed class DisposeWorker : Worker
{
    public DisposeWorker(StressContext context, int index) : base(context, "disposer", index)
    {
    }

    protected override void Pace() => SleepUpTo(3);

    protected override void Step()
    {
        Activity.Begin("pick view");
        Family family = Registry.Families[Random.Next(Registry.Families.Count)];
        int count = Registry.CountIn(family);
        int cap = Registry.ViewsPerFamily;
        // Always when nearly full, often above half, rarely below: the families keep churning.
        int percent = count >= cap - 1 ? 100 : count > cap / 2 ? 50 : 10;
        if (count < 2 || Random.Next(100) >= percent)
            return;
        bool preferSnapshot = Random.Next(5) != 0;
        ViewRecord? victim = Registry.Pick(Random, record => record.Family == family && (!preferSnapshot || record.View.IsSnapshot))
            ?? Registry.Pick(Random, record => record.Family == family);
        if (victim is null)
            return;
        Activity.Note("dispose", victim.Id);
        Dispose(victim, Registry);

        if (Random.Next(10) == 0)
        {
            Activity.Note("use after dispose", victim.Id);
            try
            {
                victim.View.Snapshot().Dispose();
                Report.Failure("api-contract", $"Snapshot() of disposed {victim} did not throw ObjectDisposedException");
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    /// <summary>
    /// Marks the view dead under its Exclusive gate (so no harness thread is inside it or will
    /// enter it), unregisters and disposes it, then frees its model.
    /// </summary>
    public static void Dispose(ViewRecord victim, Registry registry)
    {
        victim.Gate.EnterExclusive();
        try
        {
            if (victim.Dead)
                return;
            victim.Dead = true;
            registry.Remove(victim);
            victim.View.Dispose();
        }
        finally
        {
            victim.Gate.ExitExclusive();
        }
        registry.Disposed(victim);
        if (!victim.View.IsDisposed)
            Report.Failure("api-contract", $"{victim}: IsDisposed is false after Dispose()");
        victim.View.Dispose(); // idempotent by contract
        victim.FreeShadow();
    }
}
