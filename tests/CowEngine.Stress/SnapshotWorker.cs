using System.Runtime.InteropServices;

namespace CowEngine.Stress;

/// <summary>
/// Takes snapshots of random live views (regions, snapshots, frozen or not: so snapshots nest to
/// any depth), in two ways:
/// <list type="bullet">
/// <item>quiet: with the source's gate Exclusive, so the snapshot's model is a copy of the source's
/// and everything is checked exactly: contents, lazy mapping, page sharing, no dirty pages;</item>
/// <item>racing: with field writers still writing the source (gate in Snapshot mode), which is the
/// case the engine's consistent cut is for; checked with <see cref="Model.CheckCut"/>.</item>
/// </list>
/// It also calls TakeDirtyPages (every page the harness wrote since the last freeze must be in it,
/// and a second call right after must be empty) and creates new regions (some with trackWrites)
/// when a family has room.
/// </summary>
internal sealed unsafe class SnapshotWorker : Worker
{
    private readonly byte* _before;
    private readonly byte* _after;
    private readonly byte* _scratch;

    public SnapshotWorker(StressContext context, int index) : base(context, "snapshotter", index)
    {
        _before = (byte*)NativeMemory.Alloc((nuint)context.MaxViewLength);
        _after = (byte*)NativeMemory.Alloc((nuint)context.MaxViewLength);
        _scratch = (byte*)NativeMemory.Alloc((nuint)context.MaxViewLength);
    }

    protected override void Pace() => SleepUpTo(2);

    protected override void Step()
    {
        int choice = Random.Next(100);
        if (choice < 45)
            QuietSnapshot();
        else if (choice < 80)
            RacingSnapshot();
        else if (choice < 93)
            TakeDirtyPages();
        else
            CreateRegion(Registry.Families[Random.Next(Registry.Families.Count)], Context, Random, Activity);
    }

    /// <summary>Creates a region in the family, fills it and its model with random bytes, registers it.</summary>
    public static ViewRecord? CreateRegion(Family family, StressContext context, Random random, Activity activity)
    {
        activity.Begin("create region", -1, family.PageCount);
        if (!context.Registry.TryReserve(family))
            return null;
        bool trackWrites = random.Next(2) == 0;
        CowView view;
        try
        {
            view = context.Engine.CreateRegion(family.Length, trackWrites);
        }
        catch
        {
            context.Registry.CancelReservation(family);
            throw;
        }
        var record = new ViewRecord(context.Registry.NextId(), family, view, null, trackWrites ? "tracked region" : "region", frozen: false);
        activity.Note("fill region", record.Id);
        Model.InitialiseRegion(record, random);
        context.Registry.Add(record);
        return record;
    }

    private void QuietSnapshot()
    {
        Activity.Begin("pick view");
        ViewRecord? source = Registry.Pick(Random);
        if (source is null || !Registry.TryReserve(source.Family))
            return;
        bool registered = false;
        Activity.Note("quiet snapshot", source.Id);
        source.Gate.EnterExclusive();
        try
        {
            if (source.Dead)
                return;
            CowView view;
            try
            {
                view = source.View.Snapshot();
            }
            catch (Exception exception) when (Injection.IsRefusal(exception))
            {
                // Refused (--inject-rate): the source, which no one else touches now, must be as it was.
                Injection.Refused("quiet snapshot");
                Model.CheckWholeView(source, "after a refused Snapshot()");
                return;
            }
            var record = new ViewRecord(Registry.NextId(), source.Family, view, source, "snapshot", frozen: Random.Next(3) == 0);
            Buffer.MemoryCopy(source.Shadow, record.Shadow, record.Length, record.Length);
            Array.Clear(source.DirtySinceFreeze);

            // Lazy snapshots: nothing mapped or writable until touched; every page shared with the source.
            CowViewStats fresh = view.GetStats();
            if (fresh.MappedPages != 0 || fresh.WritablePages != 0 || fresh.PrivatePages != 0)
                Report.Failure("snapshot-state", $"new {record}: {fresh}; expected no mapped, writable or private page");
            CowViewStats sourceStats = source.View.GetStats();
            if (sourceStats.WritablePages != 0 || sourceStats.PrivatePages != 0)
                Report.Failure("snapshot-state", $"source {source} right after Snapshot(): {sourceStats}; expected every page shared and read-only");
            if (Random.Next(4) == 0 && TryTakeDirtyPages(source) is { LongCount: var dirty and not 0 })
                Report.Failure("dirty-pages", $"{source}: TakeDirtyPages right after Snapshot() returned {dirty} pages, expected none");

            // Reading every page maps it, unless the engine evicted meanwhile: it does so below its
            // budget too when the kernel refuses a mapping inside a fault (ENOMEM), which a busy
            // machine can make happen at any time.
            long evictionsBefore = Context.Engine.GetStats().Evictions;
            Model.CheckWholeView(record, "right after Snapshot()");
            Model.CheckChain(record.Family, record.Pointer, "right after Snapshot()", record);
            CowViewStats touched = view.GetStats();
            bool evicted = Context.EvictionExpected || Context.Engine.GetStats().Evictions != evictionsBefore;
            if (touched.MappedPages != record.Family.PageCount && !evicted)
                Report.Failure("snapshot-state", $"{record} after reading every page: {touched}; expected all {record.Family.PageCount} pages mapped");
            if (record.Frozen)
                record.FrozenChecksum = Model.Checksum(record.Pointer, record.Length);
            Registry.Add(record);
            registered = true;
        }
        finally
        {
            source.Gate.ExitExclusive();
            if (!registered)
                Registry.CancelReservation(source.Family);
        }
    }

    private void RacingSnapshot()
    {
        Activity.Begin("pick view");
        ViewRecord? source = Registry.Pick(Random);
        if (source is null || !Registry.TryReserve(source.Family))
            return;
        bool registered = false;
        Activity.Note("racing snapshot", source.Id);
        source.Gate.EnterSnapshot();
        try
        {
            if (source.Dead)
                return;
            Model.CopyShadowLocked(source, _before);
            CowView view = source.View.Snapshot();
            Model.CopyShadowLocked(source, _after);
            var record = new ViewRecord(Registry.NextId(), source.Family, view, source, "racing snapshot", frozen: Random.Next(3) == 0);
            // Read the snapshot only now: a write to the source that leaked into it after the
            // call returned would show up as a field above its "after" value.
            Buffer.MemoryCopy(view.Pointer, record.Shadow, record.Length, record.Length);
            Model.CheckCut(source.Family, _before, _after, record.Shadow, _scratch, $"racing snapshot {record}");
            ClearDirty(source);
            if (record.Frozen)
                record.FrozenChecksum = Model.Checksum(record.Pointer, record.Length);
            Registry.Add(record);
            registered = true;
        }
        finally
        {
            source.Gate.ExitSnapshot();
            if (!registered)
                Registry.CancelReservation(source.Family);
        }
    }

    /// <summary>TakeDirtyPages, or null if an injected failure refused it (--inject-rate; its pages then stay dirty).</summary>
    private static CowPageSet? TryTakeDirtyPages(ViewRecord record)
    {
        try
        {
            return record.View.TakeDirtyPages();
        }
        catch (Exception exception) when (Injection.IsRefusal(exception))
        {
            Injection.Refused("TakeDirtyPages");
            return null;
        }
    }

    /// <summary>
    /// Clears the harness's dirty marks after a freeze that ran while writers wrote (call it after
    /// the engine call returned). Each mark is cleared under its page's lock: a writer holds the lock
    /// from before its store until after its mark, so a write that landed before the cut has set
    /// its mark by the time we get the lock (and it is cleared, as the engine's bit was), and a write
    /// that takes the lock after us lands after the cut (and the engine reports it). Without the lock
    /// a writer descheduled between its store and its mark set a mark for a frozen page (a false
    /// "TakeDirtyPages missed a page" seen in a soak). Marks of writes after the cut may be cleared
    /// too, which only makes the subset check weaker, never wrong.
    /// </summary>
    public static void ClearDirty(ViewRecord record)
    {
        for (int page = 0; page < record.DirtySinceFreeze.Length; page++)
        {
            record.Locks.Lock(page);
            record.DirtySinceFreeze[page] = 0;
            record.Locks.Unlock(page);
        }
    }

    private void TakeDirtyPages()
    {
        Activity.Begin("pick view");
        ViewRecord? record = Registry.Pick(Random);
        if (record is null)
            return;
        Activity.Note("TakeDirtyPages", record.Id);
        record.Gate.EnterExclusive();
        try
        {
            if (record.Dead)
                return;
            CowPageSet dirty = record.View.TakeDirtyPages();
            int missing = 0;
            long firstMissing = -1;
            for (int page = 0; page < record.DirtySinceFreeze.Length; page++)
            {
                if (record.DirtySinceFreeze[page] != 0 && !dirty.Contains(page))
                {
                    if (missing++ == 0)
                        firstMissing = page;
                }
            }
            if (missing != 0)
                Report.Failure("dirty-pages",
                    $"{record}: TakeDirtyPages missed {missing} pages the harness wrote since the last freeze (first: page {firstMissing}); it returned {dirty.LongCount}");
            Array.Clear(record.DirtySinceFreeze);
            CowPageSet again = record.View.TakeDirtyPages();
            if (again.LongCount != 0)
                Report.Failure("dirty-pages", $"{record}: a second TakeDirtyPages with no write in between returned {again.LongCount} pages, first {again.First()}");
            CowViewStats stats = record.View.GetStats();
            if (stats.WritablePages != 0)
                Report.Failure("dirty-pages", $"{record} after TakeDirtyPages: {stats}; expected no writable page");
        }
        finally
        {
            record.Gate.ExitExclusive();
        }
    }
}
