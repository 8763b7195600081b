using CowEngine.TestSupport;

namespace CowEngine.Stress;

/// <summary>
/// The checks that need the whole engine at rest: run at each checkpoint, with every harness
/// thread paused between operations (the pause lock held exclusively) and the finalizers run.
/// <list type="number">
/// <item>Every live view equals its model byte for byte; chains are consistent; frozen snapshots
/// match their checksums.</item>
/// <item>LiveViews equals the views the harness holds (abandoned snapshots are still alive, kept by
/// their engine, and are disposed first).</item>
/// <item>Slots: every page of every view has a slot, at position page % 512 of its chunk; the
/// number of distinct slots the views reference equals SlotsInUse (nothing leaked, nothing freed
/// twice); and each view's PrivatePages equals its pages whose slot no other page references
/// (so every slot's and leaf's reference count matches the views that use it).</item>
/// <item>Mappings: each view's count equals the count recomputed from its page table and the
/// number of kernel mappings /proc/self/maps shows over its range; the engine's total equals their
/// sum plus one gap per view plus the pool window; the total is within the budget.</item>
/// <item>CommittedBytes (memory the pool file really holds) is at most SlotsInUse pages.</item>
/// </list>
/// </summary>
internal static unsafe class Audit
{
    public static void Run(StressContext context, string when)
    {
        // With --inject-rate: the audit's own calls (statistics and their drain) see the real state.
        using IDisposable? suspended = Injection.Suspend();
        Registry registry = context.Registry;
        CowMemoryEngine engine = context.Engine;

        // Abandoned snapshots must have survived the collections (the engine holds every live view);
        // dispose them, after letting any finalizer that would wrongly release one run first.
        for (int i = 0; i < 2; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        registry.DisposeAbandoned(when);
        List<ViewRecord> views = registry.All();

        foreach (ViewRecord record in views)
        {
            Model.CheckWholeView(record, when);
            Model.CheckChain(record.Family, record.Pointer, when, record);
            if (record.Frozen)
                VerifierWorker.CheckFrozen(record, when);
        }

        CowEngineStats stats = engine.GetStats();
        if (stats.LiveViews != views.Count)
            Report.Failure("live-views", $"{when}: the engine reports {stats.LiveViews} live views, the harness holds {views.Count}");

        // Slots.
        var references = new Dictionary<uint, int>();
        var slotsOfView = new Dictionary<ViewRecord, uint[]>();
        foreach (ViewRecord record in views)
        {
            var slots = new uint[record.Family.PageCount];
            for (int page = 0; page < slots.Length; page++)
            {
                uint slot = context.Internals.SlotOf(record.View, page);
                slots[page] = slot;
                if (slot == EngineInternals.NoSlot || slot % 512 != page % 512)
                {
                    Report.Failure("slot-placement", $"{when}: {record} page {page} is backed by slot {slot}, expected a slot at position {page % 512} of a chunk");
                    continue;
                }
                references[slot] = references.GetValueOrDefault(slot) + 1;
            }
            slotsOfView[record] = slots;
        }
        if (references.Count != stats.SlotsInUse)
            Report.Failure("slots-in-use", $"{when}: the views reference {references.Count} distinct slots, the engine counts {stats.SlotsInUse} in use " +
                (stats.SlotsInUse > references.Count ? "(leaked slots)" : "(slots in use that it does not count: a later double free)"));

        // Per-view sharing and mappings.
        List<Vma> kernelMappings = ProcMaps.ReadAll();
        long viewMappings = 0;
        foreach (ViewRecord record in views)
        {
            CowViewStats viewStats = record.View.GetStats();
            uint[] slots = slotsOfView[record];
            long privatePages = slots.Count(slot => references.GetValueOrDefault(slot) == 1);
            if (viewStats.PrivatePages != privatePages || viewStats.SharedPages != slots.Length - privatePages)
                Report.Failure("reference-counts",
                    $"{when}: {record}: {viewStats.PrivatePages} private / {viewStats.SharedPages} shared pages, but {privatePages} of its " +
                    $"{slots.Length} pages have a slot that no other page references");
            if (viewStats.WritablePages > viewStats.PrivatePages || viewStats.WritablePages > viewStats.MappedPages || viewStats.MappedPages > slots.Length)
                Report.Failure("page-state", $"{when}: {record}: {viewStats} (a writable page must be private and mapped)");

            long recounted = context.Internals.CountMappings(record.View);
            int kernel = ProcMaps.CountOverlapping(kernelMappings, record.View.BaseAddress, record.Length);
            if (viewStats.Mappings != recounted || viewStats.Mappings != kernel)
                Report.Failure("mapping-count",
                    $"{when}: {record}: the engine counts {viewStats.Mappings} mappings, its page table gives {recounted}, /proc/self/maps shows {kernel}");
            viewMappings += viewStats.Mappings;
        }
        long expectedTotal = viewMappings + views.Count + 1;
        if (stats.Mappings != expectedTotal)
            Report.Failure("mapping-count", $"{when}: the engine counts {stats.Mappings} mappings, its views' counts give {expectedTotal} (sum {viewMappings} + one gap per view + the pool window)");
        if (stats.Mappings > stats.MappingBudget)
            Report.Failure("mapping-budget", $"{when}: {stats.Mappings} mappings exceed the budget of {stats.MappingBudget}");
        if (stats.CommittedBytes > stats.SlotsInUse * PageLayout.PageSize)
            Report.Failure("committed-bytes", $"{when}: the pool holds {stats.CommittedBytes} bytes for {stats.SlotsInUse} slots in use");

        Report.Line($"checkpoint ({when}): {views.Count} views, {references.Count} slots referenced = SlotsInUse {stats.SlotsInUse}, " +
                    $"{stats.Mappings} mappings (views {viewMappings}), committed {stats.CommittedBytes >> 20} MiB, deepest snapshot {views.Select(v => v.Depth).DefaultIfEmpty().Max()}, " +
                    $"failures so far {Report.Failures}");
    }
}
