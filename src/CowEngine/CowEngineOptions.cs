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

    /// <summary>
    /// The most pages one write fault resolves: a write fault that continues a sequential run of first
    /// writes in a 2 MiB segment also makes the pages after it private and writable, the window
    /// doubling (2, 4, 8, ...) up to this many while the run holds, so a sequential pass pays one
    /// signal per many pages. Pages resolved ahead but never written cost a copy each and count as
    /// written (<see cref="CowView.TakeDirtyPages"/> reports them): at most this many minus one at the end of
    /// each run. Strided and random writes resolve one page per fault, and so does every write to a
    /// region created with <c>trackWrites</c> (its dirty pages stay exact). 1 turns it off. Default: 32.
    /// </summary>
    public int? FaultAroundPages { get; set; }

    /// <summary>
    /// How shared pages are write-protected: <see cref="CowWriteProtection.Mprotect"/> (the default),
    /// <see cref="CowWriteProtection.Userfaultfd"/> or <see cref="CowWriteProtection.Automatic"/>. When
    /// not set here, the environment variable <c>COWENGINE_WRITE_PROTECTION</c> (<c>mprotect</c>,
    /// <c>userfaultfd</c> or <c>automatic</c>) chooses, so a deployment can switch without a rebuild.
    /// </summary>
    public CowWriteProtection? WriteProtection { get; set; }

    /// <summary>Where the engine logs its lifecycle and every limit it reaches. Default: none.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }
}
