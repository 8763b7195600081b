using Microsoft.Extensions.Logging;

namespace CowEngine.Internal;

/// <summary>The engine's log messages about view lifetime and the address-space limit.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 20, Level = LogLevel.Warning,
        Message = "CowEngine engine disposed with {OpenViews} views still open ({Regions} regions, {Snapshots} snapshots): they were disposed with it. The engine keeps every view alive until it is disposed; dispose views you no longer need, or their memory stays in use until the engine goes")]
    public static partial void EngineDisposedWithOpenViews(ILogger logger, int openViews, int regions, int snapshots);

    [LoggerMessage(EventId = 21, Level = LogLevel.Warning,
        Message = "CowEngine engine was never disposed: it and its {OpenViews} open views became unreachable and were released by the finalizer. Dispose the engine when done")]
    public static partial void EngineFinalized(ILogger logger, int openViews);

    [LoggerMessage(EventId = 22, Level = LogLevel.Warning,
        Message = "CowEngine address space is limited (RLIMIT_AS {Limit}; {Available} available beyond the headroom): slot space {Chunks} chunks of 2 MiB instead of {DesiredChunks}, capacity {CapacityBytes} bytes (asked: {RequestedCapacityBytes})")]
    public static partial void AddressSpaceLimited(ILogger logger, string limit, string available, uint chunks, uint desiredChunks, long capacityBytes, long requestedCapacityBytes);
}
