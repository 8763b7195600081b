using System.Globalization;
using System.Runtime.InteropServices;
using CowEngine.Internal;

namespace CowEngine.Interop;

/// <summary>The one place where an errno value returned by the shim becomes an exception.</summary>
internal static class Errno
{
    public const int EPERM = 1;
    public const int ENOMEM = 12;
    public const int EBUSY = 16;
    public const int EEXIST = 17;
    public const int EINVAL = 22;
    public const int ENOSPC = 28;
    public const int ENOSYS = 38;
    public const int EOPNOTSUPP = 95;
    public const int EDQUOT = 122;

    /// <summary>The symbolic name of an errno value ("ENOMEM"), or its number.</summary>
    public static string NameOf(int error)
    {
        nint name = CowNative.ErrorName(error);
        return name == 0 ? error.ToString(CultureInfo.InvariantCulture)
                         : Marshal.PtrToStringUTF8(name)!;
    }

    /// <summary>Throws the exception that describes <paramref name="error"/> unless it is 0.</summary>
    /// <param name="error">0 or a positive errno value.</param>
    /// <param name="operation">What was being done, for the message ("taking a snapshot").</param>
    /// <param name="engine">The engine the operation ran on (see <see cref="ToException"/>); null before there is one.</param>
    public static void ThrowIfFailed(int error, string operation, CowMemoryEngine? engine = null)
    {
        if (error != 0)
            throw ToException(error, operation, engine);
    }

    /// <summary>
    /// Throws unless <paramref name="error"/> is 0, for a call that maps <paramref name="bytes"/> of new
    /// address space (a reservation, the pool window, a table): ENOMEM there is told apart into the
    /// address-space limit and the mapping limit.
    /// </summary>
    public static void ThrowIfReservationFailed(int error, ulong bytes, string operation)
    {
        if (error != 0)
            throw ToException(error, operation, engine: null, requestedBytes: bytes);
    }

    /// <summary>The exception that describes a nonzero <paramref name="error"/>.</summary>
    /// <param name="error">A positive errno value.</param>
    /// <param name="operation">What was being done, for the message ("taking a snapshot").</param>
    /// <param name="engine">
    /// The engine the operation ran on, or null before there is one. With an engine, reaching its
    /// mapping budget or its capacity is logged to its logger, and a budget message carries its
    /// mapping numbers (what the caller needs to size the budget).
    /// </param>
    /// <param name="requestedBytes">
    /// New address space the failed call maps (0 for calls that only map inside reservations the
    /// engine already holds, which never grow the address space).
    /// </param>
    public static Exception ToException(int error, string operation, CowMemoryEngine? engine = null, ulong requestedBytes = 0)
    {
        if (error == ENOMEM)
            return Enomem(operation, engine, requestedBytes);
        if (engine is not null)
        {
            if (error == EDQUOT)
            {
                Log.MappingBudgetReached(engine.Logger, operation, engine.MappingBudget, engine.MaxMapCount);
                operation = string.Create(CultureInfo.InvariantCulture,
                    $"{operation} (the engine uses {engine.CurrentMappings()} mappings of its budget of {engine.MappingBudget}; vm.max_map_count is {engine.MaxMapCount})");
            }
            else if (error == ENOSPC)
            {
                Log.CapacityReached(engine.Logger, operation, engine.CapacityBytes);
            }
        }
        return error switch
        {
            ENOSPC => new CowCapacityExceededException(
                $"CowEngine ran out of slot capacity while {operation}: raise CowEngineOptions.CapacityBytes or dispose views you no longer need." +
                (engine?.SlotSpaceNote ?? "")),
            EDQUOT => new CowMappingBudgetExceededException(
                $"{operation} would exceed the engine's mapping budget (a share of vm.max_map_count, the kernel's per-process mapping limit); the views were left unchanged."),
            _ => new CowSystemException(error, operation),
        };
    }

    /// <summary>
    /// A request for <paramref name="requestedBytes"/> of address space that the engine refuses
    /// before asking the kernel, because it would not fit under RLIMIT_AS with the headroom left.
    /// </summary>
    /// <param name="operation">What was being done ("creating a region").</param>
    /// <param name="requestedBytes">What it needed.</param>
    /// <param name="detail">Why it needed that much, or what else was tried; null for nothing.</param>
    public static CowAddressSpaceExhaustedException AddressSpaceExhausted(string operation, ulong requestedBytes, string? detail = null)
    {
        ulong? limit = SystemLimits.AddressSpaceLimit();
        ulong inUse = SystemLimits.AddressSpaceInUse();
        string limitText = limit is ulong l ? SystemLimits.Format(l) : "unlimited";
        string headroom = limit is ulong h ? $", of which CowEngine leaves {SystemLimits.Format(SystemLimits.Headroom(h))} free for the runtime" : "";
        string message =
            $"CowEngine ran out of address space while {operation}: the process's address space is limited (RLIMIT_AS, `ulimit -v`) to {limitText}{headroom}; " +
            $"{SystemLimits.Format(inUse)} are in use and {SystemLimits.Format(requestedBytes)} more were needed." +
            (detail is null ? "" : " " + detail) +
            " Raise the limit (`ulimit -v unlimited`, `prlimit --as=...`), or ask for less: a smaller CapacityBytes, fewer or smaller live views, fewer engines." +
            " Nothing was changed.";
        return new CowAddressSpaceExhaustedException(message, limit is ulong v ? (long)Math.Min(v, long.MaxValue) : null, (long)inUse, (long)requestedBytes);
    }

    /// <summary>
    /// ENOMEM from mmap or mprotect has two causes the caller can act on, told apart
    /// (<see cref="SystemLimits.ClassifyEnomem"/>) from what /proc shows right after the failure: the
    /// address space (RLIMIT_AS) or the mapping count (vm.max_map_count). Neither: the message gives
    /// both sets of numbers.
    /// </summary>
    private static Exception Enomem(string operation, CowMemoryEngine? engine, ulong requestedBytes)
    {
        ulong? limit = SystemLimits.AddressSpaceLimit();
        ulong inUse = SystemLimits.AddressSpaceInUse();
        long mappings = SystemLimits.ProcessMappings();
        int maxMapCount = engine?.MaxMapCount ?? SystemLimits.MaxMapCount();
        EnomemCause cause = SystemLimits.ClassifyEnomem(limit, inUse, requestedBytes, mappings, maxMapCount);
        if (cause == EnomemCause.AddressSpace)
            return AddressSpaceExhausted(operation, requestedBytes, "The kernel refused the mapping (ENOMEM).");

        string counts = engine is null
            ? string.Create(CultureInfo.InvariantCulture, $"the process has {mappings} mappings; vm.max_map_count is {maxMapCount}")
            : string.Create(CultureInfo.InvariantCulture,
                $"the process has {mappings} mappings, the engine uses {engine.CurrentMappings()} of its budget of {engine.MappingBudget}; vm.max_map_count is {maxMapCount}");
        if (cause == EnomemCause.MappingCount)
        {
            if (engine is not null)
                Log.MappingBudgetReached(engine.Logger, operation, engine.MappingBudget, engine.MaxMapCount);
            return new CowMappingBudgetExceededException(
                $"The kernel refused a mapping while {operation} (ENOMEM): the process is at vm.max_map_count, the kernel's per-process mapping limit ({counts}); the views were left unchanged.",
                new CowSystemException(ENOMEM, operation));
        }
        string neither = $"{operation} (neither limit is reached now: {counts}; address space {SystemLimits.Format(inUse)} in use of " +
                         $"{(limit is ulong l ? SystemLimits.Format(l) : "unlimited")} (RLIMIT_AS))";
        // API calls keep their documented exception; their views were left unchanged.
        return engine is not null
            ? new CowMappingBudgetExceededException($"The kernel refused a mapping while {neither} (ENOMEM); the views were left unchanged.",
                new CowSystemException(ENOMEM, operation))
            : new CowSystemException(ENOMEM, neither);
    }
}
