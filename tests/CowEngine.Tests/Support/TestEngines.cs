namespace CowEngine.Tests.Support;

/// <summary>
/// The engines the tests make when the options are not what the test is about: a fixed capacity,
/// so that what a test may allocate does not depend on the machine (the default capacity is its
/// physical memory), and the default mapping budget unless the test gives one.
/// </summary>
/// <remarks>Use with <c>using static CowEngine.Tests.Support.TestEngines;</c>.</remarks>
internal static class TestEngines
{
    /// <summary>The capacity of <see cref="NewEngine"/>: 1 GiB.</summary>
    public const long Capacity = 1L << 30;

    /// <summary>The capacity of <see cref="NewSmallEngine"/>: 256 MiB.</summary>
    public const long SmallCapacity = 256L << 20;

    /// <summary>The capacity of <see cref="NewLargeEngine"/>: 4 GiB, room for a view of more than 2 GiB.</summary>
    public const long LargeCapacity = 4L << 30;

    /// <summary>An engine of 1 GiB.</summary>
    public static CowMemoryEngine NewEngine(int? mappingBudget = null) => New(Capacity, mappingBudget, null);

    /// <summary>An engine of 256 MiB.</summary>
    public static CowMemoryEngine NewSmallEngine(int? mappingBudget = null) => New(SmallCapacity, mappingBudget, null);

    /// <summary>An engine of 4 GiB.</summary>
    public static CowMemoryEngine NewLargeEngine(int? mappingBudget = null) => New(LargeCapacity, mappingBudget, null);

    /// <summary>
    /// An engine of 1 GiB whose write faults resolve one page each (FaultAroundPages = 1), for tests
    /// that count faults or copies page by page, or need the dirty pages of a sequential pass exact:
    /// fault-around, on by default, resolves pages ahead of a sequential run of writes (tested on its
    /// own in FaultAroundTests).
    /// </summary>
    public static CowMemoryEngine NewPageByPageEngine(int? mappingBudget = null) => New(Capacity, mappingBudget, 1);

    /// <summary>
    /// An engine that write-protects with mprotect whatever COWENGINE_WRITE_PROTECTION says, for tests
    /// whose subject is fragmentation and eviction: only with mprotect does making a page writable
    /// split a kernel mapping (with userfaultfd nothing splits, so such a test would have nothing to
    /// evict). The tests run with both mechanisms; these pin the one they are about.
    /// </summary>
    public static CowMemoryEngine NewFragmentingEngine(int? mappingBudget = null, long capacityBytes = Capacity) =>
        new(new CowEngineOptions { CapacityBytes = capacityBytes, MappingBudget = mappingBudget, WriteProtection = CowWriteProtection.Mprotect });

    private static CowMemoryEngine New(long capacityBytes, int? mappingBudget, int? faultAroundPages) =>
        new(new CowEngineOptions { CapacityBytes = capacityBytes, MappingBudget = mappingBudget, FaultAroundPages = faultAroundPages });
}
