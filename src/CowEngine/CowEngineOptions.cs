using Microsoft.Extensions.Logging;

namespace CowEngine;

/// <summary>Settings for a <see cref="CowMemoryEngine"/>.</summary>
public sealed class CowEngineOptions
{
    /// <summary>
    /// The most memory the engine's pages may occupy at once, in bytes (a multiple of 4 KiB). Every
    /// page of every region counts from creation; a snapshot counts only the pages later copied.
    /// Default: the machine's physical memory.
    /// </summary>
    public long? CapacityBytes { get; set; }

    /// <summary>
    /// The most kernel mappings (VMAs) the engine may use. The kernel allows a process
    /// <c>vm.max_map_count</c> mappings (65,530 by default) and refuses mmap and mprotect beyond
    /// that. Past the budget the engine unmaps cold 2 MiB stretches of its views (mapped again on
    /// their next touch); <c>CreateRegion</c>, <c>Snapshot</c> and <c>RestoreTo</c> throw
    /// <see cref="CowMappingBudgetExceededException"/>, changing nothing, only when that cannot make
    /// room. Pages pinned by <c>PrepareForWrite</c>/<c>PrepareForRead</c> are never unmapped, so
    /// pinning many scattered pages can hold the engine above its budget until the view's next
    /// snapshot. While a fault is being resolved the engine can be up to two mappings over the
    /// budget per fault in flight (a fault evicts before it maps, and again after it has mapped);
    /// the other half of the process's limit is the headroom for that. Default: half of the
    /// process's limit, read from /proc/sys/vm/max_map_count.
    /// </summary>
    public int? MappingBudget { get; set; }

    /// <summary>Where the engine logs its lifecycle and every limit it reaches. Default: none.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }
}
