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
    /// that; operations that would take the engine past this budget throw
    /// <see cref="MappingBudgetExceededException"/> and change nothing.
    /// Default: half of the process's limit, read from /proc/sys/vm/max_map_count.
    /// </summary>
    public int? MappingBudget { get; set; }

    /// <summary>Where the engine logs its lifecycle and every limit it reaches. Default: none.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }
}
