using System.Runtime.InteropServices;

namespace CowEngine.Stress;

/// <summary>
/// Restores random live views to other views of their family (a snapshot of them, an ancestor, a
/// sibling, a descendant: any view of the same size), in two ways:
/// <list type="bullet">
/// <item>quiet (both gates Exclusive): first GetChangedPages in both directions must name every
/// page whose model differs and agree with each other; after RestoreTo the target's model is a copy
/// of the source's, the target holds exactly it, GetChangedPages is empty and nothing is writable;</item>
/// <item>racing (target Exclusive, source in Snapshot mode, field writers still writing the
/// source): the target must hold a consistent cut of the source (<see cref="Model.CheckCut"/>).</item>
/// </list>
/// Frozen views are never targets (they must never change) but are often sources.
/// </summary>
internal sealed unsafe class RestoreWorker : Worker
{
    private readonly byte* _before;
    private readonly byte* _after;
    private readonly byte* _scratch;

    public RestoreWorker(StressContext context, int index) : base(context, "restorer", index)
    {
        _before = (byte*)NativeMemory.Alloc((nuint)context.MaxViewLength);
        _after = (byte*)NativeMemory.Alloc((nuint)context.MaxViewLength);
        _scratch = (byte*)NativeMemory.Alloc((nuint)context.MaxViewLength);
    }

    protected override void Pace() => SleepUpTo(3);

    protected override void Step()
    {
        Activity.Begin("pick views");
        ViewRecord? target = Registry.Pick(Random, static record => !record.Frozen);
        if (target is null)
            return;
        ViewRecord? source = Registry.Pick(Random, record => record.Family == target.Family && !ReferenceEquals(record, target));
        if (source is null)
            return;
        bool racing = Random.Next(100) < 40;
        Activity.Note(racing ? $"racing restore from #{source.Id}" : $"quiet restore from #{source.Id}", target.Id);

        // Gates in view-id order.
        if (source.Id < target.Id)
            EnterSource(source, racing);
        target.Gate.EnterExclusive();
        if (source.Id > target.Id)
            EnterSource(source, racing);
        try
        {
            if (source.Dead || target.Dead)
                return;
            if (racing)
                RacingRestore(target, source);
            else
                QuietRestore(target, source);
        }
        finally
        {
            target.Gate.ExitExclusive();
            if (racing)
                source.Gate.ExitSnapshot();
            else
                source.Gate.ExitExclusive();
        }
    }

    private static void EnterSource(ViewRecord source, bool racing)
    {
        if (racing)
            source.Gate.EnterSnapshot();
        else
            source.Gate.EnterExclusive();
    }

    /// <summary>
    /// RestoreTo, or false if an injected failure refused it (--inject-rate): then the target, which
    /// no one else touches now, must hold exactly what it held.
    /// </summary>
    private static bool TryRestore(ViewRecord target, ViewRecord source, string what)
    {
        try
        {
            target.View.RestoreTo(source.View);
            return true;
        }
        catch (Exception exception) when (Injection.IsRefusal(exception))
        {
            Injection.Refused(what);
            Model.CheckWholeView(target, $"after a refused RestoreTo(#{source.Id})");
            return false;
        }
    }

    private static void QuietRestore(ViewRecord target, ViewRecord source)
    {
        Family family = target.Family;
        CowPageSet changed = target.View.GetChangedPages(source.View);
        CowPageSet changedBack = source.View.GetChangedPages(target.View);
        int missed = 0;
        long firstMissed = -1;
        for (long page = 0; page < family.PageCount; page++)
        {
            bool differs = !target.ShadowPage(page).SequenceEqual(source.ShadowPage(page));
            if (differs && !changed.Contains(page) && missed++ == 0)
                firstMissed = page;
            if (changed.Contains(page) != changedBack.Contains(page))
            {
                Report.Failure("changed-pages",
                    $"{target}.GetChangedPages({source}) and the reverse call disagree on page {page} ({changed.Contains(page)} vs {changedBack.Contains(page)})");
                break;
            }
        }
        if (missed != 0)
            Report.Failure("changed-pages",
                $"{target}.GetChangedPages({source}) missed {missed} pages whose contents differ (first: page {firstMissed}); it returned {changed.LongCount}");

        if (!TryRestore(target, source, "quiet restore"))
        {
            Model.CheckWholeView(source, $"after a refused {target}.RestoreTo({source})");
            return;
        }
        Buffer.MemoryCopy(source.Shadow, target.Shadow, target.Length, target.Length);
        Array.Clear(target.DirtySinceFreeze);
        Array.Clear(source.DirtySinceFreeze);

        CowPageSet after = target.View.GetChangedPages(source.View);
        if (after.LongCount != 0)
            Report.Failure("changed-pages", $"after {target}.RestoreTo({source}), GetChangedPages still reports {after.LongCount} pages (first {after.First()}); they should share every page");
        CowViewStats stats = target.View.GetStats();
        if (stats.WritablePages != 0)
            Report.Failure("restore-state", $"{target} right after RestoreTo: {stats}; expected no writable page");
        Model.CheckWholeView(target, $"right after RestoreTo(#{source.Id})");
        Model.CheckChain(family, target.Pointer, "right after RestoreTo", target);
    }

    private void RacingRestore(ViewRecord target, ViewRecord source)
    {
        Model.CopyShadowLocked(source, _before);
        if (!TryRestore(target, source, "racing restore"))
            return;
        Model.CopyShadowLocked(source, _after);
        // Only the target's own contents are read after the call: it must be a cut of the source.
        Buffer.MemoryCopy(target.Pointer, target.Shadow, target.Length, target.Length);
        Model.CheckCut(target.Family, _before, _after, target.Shadow, _scratch, $"racing restore of {target} from {source}");
        Array.Clear(target.DirtySinceFreeze);
        SnapshotWorker.ClearDirty(source);
    }
}
