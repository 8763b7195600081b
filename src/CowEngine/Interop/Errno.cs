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

    /// <summary>The exception that describes a nonzero <paramref name="error"/>.</summary>
    /// <param name="error">A positive errno value.</param>
    /// <param name="operation">What was being done, for the message ("taking a snapshot").</param>
    /// <param name="engine">
    /// The engine the operation ran on, or null before there is one. With an engine, reaching its
    /// mapping budget or its capacity is logged to its logger, and a budget message carries its
    /// mapping numbers (what the caller needs to size the budget).
    /// </param>
    public static Exception ToException(int error, string operation, CowMemoryEngine? engine = null)
    {
        if (engine is not null)
        {
            if (error == EDQUOT || error == ENOMEM)
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
                $"CowEngine ran out of slot capacity while {operation}: raise CowEngineOptions.CapacityBytes or dispose views you no longer need."),
            EDQUOT => new CowMappingBudgetExceededException(
                $"{operation} would exceed the engine's mapping budget (a share of vm.max_map_count, the kernel's per-process mapping limit); the views were left unchanged."),
            ENOMEM => new CowMappingBudgetExceededException(
                $"The kernel refused a mapping while {operation} (ENOMEM): the process is at vm.max_map_count mappings or out of address space; the views were left unchanged.",
                new CowSystemException(error, operation)),
            _ => new CowSystemException(error, operation),
        };
    }
}
