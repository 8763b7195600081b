using Microsoft.Extensions.Logging;

namespace CowEngine.Internal;

/// <summary>The engine's log messages.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information,
        Message = "CowEngine engine created: capacity {CapacityBytes} bytes, {ChunkCapacity} chunks of 2 MiB, mapping budget {MappingBudget} of vm.max_map_count {MaxMapCount}, write protection {WriteProtection}")]
    public static partial void EngineCreated(ILogger logger, long capacityBytes, uint chunkCapacity, int mappingBudget, int maxMapCount, CowWriteProtection writeProtection);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information,
        Message = "CowEngine engine disposed ({LiveViews} views still live were disposed with it)")]
    public static partial void EngineDisposed(ILogger logger, int liveViews);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning,
        Message = "CowEngine mapping budget reached: {Operation} needs more than the {MappingBudget} mappings the engine may use (vm.max_map_count {MaxMapCount})")]
    public static partial void MappingBudgetReached(ILogger logger, string operation, int mappingBudget, int maxMapCount);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning,
        Message = "CowEngine capacity reached: {Operation} needs more than the {CapacityBytes} bytes the engine may use")]
    public static partial void CapacityReached(ILogger logger, string operation, long capacityBytes);

    [LoggerMessage(EventId = 5, Level = LogLevel.Error,
        Message = "CowEngine could not unmap a disposed view ({Error}); its pages stay allocated and its address range is never reused")]
    public static partial void ViewDisposeFailed(ILogger logger, string error);

    [LoggerMessage(EventId = 8, Level = LogLevel.Error,
        Message = "CowEngine could not unmap a region whose creation failed ({Error}); its pages stay allocated and its address range is never reused")]
    public static partial void RegionUndoFailed(ILogger logger, string error);

    [LoggerMessage(EventId = 9, Level = LogLevel.Warning,
        Message = "CowEngine could not give freed memory back to the kernel (fallocate PUNCH_HOLE failed with {Error}, {Failures} failures so far); the slots stay in use and are tried again")]
    public static partial void ReclaimFailed(ILogger logger, string error, long failures);

    [LoggerMessage(EventId = 7, Level = LogLevel.Information,
        Message = "CowEngine write protection: userfaultfd is not available here ({Reason}); using mprotect")]
    public static partial void UserfaultfdUnavailable(ILogger logger, string reason);

    [LoggerMessage(EventId = 6, Level = LogLevel.Debug,
        Message = "CowEngine view created: {Bytes} bytes at 0x{BaseAddress:x} ({Kind})")]
    public static partial void ViewCreated(ILogger logger, long bytes, ulong baseAddress, string kind);
}
