using System.Runtime.InteropServices;

namespace CowEngine.Interop;

/// <summary>The one place where an errno value returned by the shim becomes an exception.</summary>
internal static class Errno
{
    public const int ENOMEM = 12;
    public const int EBUSY = 16;
    public const int EINVAL = 22;
    public const int ENOSPC = 28;
    public const int EDQUOT = 122;

    /// <summary>The symbolic name of an errno value ("ENOMEM"), or its number.</summary>
    public static string NameOf(int error)
    {
        nint name = CowNative.ErrorName(error);
        return name == 0 ? error.ToString(System.Globalization.CultureInfo.InvariantCulture)
                         : Marshal.PtrToStringUTF8(name)!;
    }

    /// <summary>Throws the exception that describes <paramref name="error"/> unless it is 0.</summary>
    /// <param name="error">0 or a positive errno value.</param>
    /// <param name="operation">What was being done, for the message ("taking a snapshot").</param>
    public static void ThrowIfFailed(int error, string operation)
    {
        if (error != 0)
            throw ToException(error, operation);
    }

    public static Exception ToException(int error, string operation) => error switch
    {
        ENOSPC => new CowCapacityExceededException(
            $"CowEngine ran out of slot capacity while {operation}: raise CowEngineOptions.CapacityBytes or dispose views you no longer need."),
        EDQUOT => new MappingBudgetExceededException(
            $"{operation} would exceed the engine's mapping budget (a share of vm.max_map_count, the kernel's per-process mapping limit); the views were left unchanged."),
        ENOMEM => new MappingBudgetExceededException(
            $"The kernel refused a mapping while {operation} (ENOMEM): the process is at vm.max_map_count mappings or out of address space; the views were left unchanged.",
            new CowSystemException(error, operation)),
        _ => new CowSystemException(error, operation),
    };
}
