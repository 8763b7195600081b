using System.Reflection;

namespace CowEngine.Stress;

/// <summary>
/// Two internal diagnostics of CowView the checkpoint audit needs, reached by reflection (the
/// library grants InternalsVisibleTo only to its tests and benchmarks): the slot behind a page,
/// to count the slots the live views really reference, and the view's mapping count recomputed
/// from its page table. If either is renamed, the run fails at start-up with this message rather
/// than silently auditing less.
/// </summary>
internal sealed class EngineInternals
{
    /// <summary>cow_engine.h's COW_NONE: "no slot".</summary>
    public const uint NoSlot = 0xFFFFFFFFu;

    private readonly Func<CowView, long, uint> _slotOf;
    private readonly Func<CowView, long> _countMappings;

    private EngineInternals(Func<CowView, long, uint> slotOf, Func<CowView, long> countMappings)
    {
        _slotOf = slotOf;
        _countMappings = countMappings;
    }

    public static EngineInternals Bind()
    {
        const BindingFlags Flags = BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public;
        MethodInfo slotOf = typeof(CowView).GetMethod("SlotOf", Flags, [typeof(long)])
            ?? throw new MissingMethodException("CowView.SlotOf(long) (internal) is gone: the stress audit of slot use needs it");
        MethodInfo countMappings = typeof(CowView).GetMethod("CountMappings", Flags, Type.EmptyTypes)
            ?? throw new MissingMethodException("CowView.CountMappings() (internal) is gone: the stress audit of mapping counts needs it");
        return new EngineInternals(
            slotOf.CreateDelegate<Func<CowView, long, uint>>(),
            countMappings.CreateDelegate<Func<CowView, long>>());
    }

    public uint SlotOf(CowView view, long page) => _slotOf(view, page);

    public long CountMappings(CowView view) => _countMappings(view);
}
