using System.Runtime.CompilerServices;

namespace CowEngine.Stress;

/// <summary>
/// Keeps the garbage collector busy: allocates garbage and calls GC.Collect (every generation,
/// blocking or not, compacting or not) in a loop, so that GCs suspend threads in the middle of
/// copy-on-write faults and of engine calls. Now and then it also drops a snapshot without
/// disposing it: the engine must keep it alive through every collection (the lifetime contract),
/// which the next checkpoint's audit checks before it disposes it.
/// </summary>
internal sealed class GcWorker : Worker
{
    private readonly List<object> _survivors = new();

    public GcWorker(StressContext context, int index) : base(context, "gc", index)
    {
    }

    protected override void Pace() => SleepUpTo(10);

    protected override void Step()
    {
        int choice = Random.Next(100);
        if (choice < 70)
        {
            Activity.Begin("allocate and GC.Collect");
            MakeGarbage();
            int generation = Random.Next(GC.MaxGeneration + 1);
            GCCollectionMode mode = Random.Next(2) == 0 ? GCCollectionMode.Forced : GCCollectionMode.Optimized;
            bool blocking = Random.Next(2) == 0;
            // Never non-blocking and compacting together: on .NET 10.0.12 that combination made one
            // GC.Collect(2) take 7-35 s on this 2-core VM even in a program without the engine
            // (measured while writing this harness), which would only test the watchdog.
            bool compacting = blocking && Random.Next(2) == 0;
            GC.Collect(generation, mode, blocking, compacting);
        }
        else if (choice < 85)
        {
            Activity.Begin("GC.Collect + finalizers");
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        else
        {
            AbandonSnapshot();
        }
    }

    private void MakeGarbage()
    {
        for (int i = 0; i < 64; i++)
        {
            object garbage = Random.Next(4) switch
            {
                0 => new byte[Random.Next(1, 100_000)],
                1 => new long[Random.Next(1, 1_000)],
                2 => Enumerable.Range(0, Random.Next(1, 200)).Select(n => n.ToString()).ToList(),
                _ => new byte[Random.Next(85_000, 400_000)], // large object heap
            };
            // A few survive for a while, so that collections have something to promote and compact.
            if (Random.Next(8) == 0)
                _survivors.Add(garbage);
        }
        if (_survivors.Count > 256)
            _survivors.RemoveRange(0, 128);
    }

    /// <summary>
    /// A snapshot nobody references but its engine (the audit disposes it). Taken in the source's Snapshot mode,
    /// which keeps pipe reads off the source (the freeze would undo their PrepareForWrite).
    /// </summary>
    private void AbandonSnapshot()
    {
        Activity.Begin("pick view");
        // Not too many at once: each keeps its pages until the next checkpoint disposes it.
        if (Context.Engine.GetStats().LiveViews - Registry.Count > 4)
            return;
        ViewRecord? source = Registry.Pick(Random);
        if (source is null)
            return;
        Activity.Note("abandon a snapshot", source.Id);
        source.Gate.EnterSnapshot();
        try
        {
            if (source.Dead)
                return;
            Registry.Abandoning(source.Family);
            Registry.Abandoned(SnapshotAndDrop(source.View, Random.Next(source.Family.PageCount)));
            SnapshotWorker.ClearDirty(source);
        }
        finally
        {
            source.Gate.ExitSnapshot();
        }
    }

    /// <summary>Not inlined, so no reference to the snapshot outlives this frame.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe WeakReference<CowView> SnapshotAndDrop(CowView source, int pageToTouch)
    {
        CowView snapshot = source.Snapshot();
        // Map one page (a lazy first touch) so the dispose has mappings to undo, too.
        _ = Volatile.Read(ref snapshot.Pointer[(long)pageToTouch * PageLayout.PageSize]);
        return new WeakReference<CowView>(snapshot);
    }
}
