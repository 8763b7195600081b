using System.Runtime.InteropServices;
using CowEngine.Interop;

namespace CowEngine;

/// <summary>A system call made by the engine failed.</summary>
/// <remarks>Carries the errno value and the system's message for it.</remarks>
public sealed class CowSystemException : IOException
{
    /// <summary>Creates the exception for a failed call.</summary>
    /// <param name="errno">The errno value the call failed with.</param>
    /// <param name="operation">What the engine was doing.</param>
    public CowSystemException(int errno, string operation)
        : base($"CowEngine: {operation} failed: {Errno.NameOf(errno)} ({Marshal.GetPInvokeErrorMessage(errno)})")
    {
        ErrorNumber = errno;
        Operation = operation;
        HResult = errno;
    }

    /// <summary>The errno value.</summary>
    public int ErrorNumber { get; }

    /// <summary>The operation that failed.</summary>
    public string Operation { get; }
}

/// <summary>
/// An operation would take the engine past its mapping budget: the share of the kernel's
/// per-process mapping limit (<c>vm.max_map_count</c>) that the engine may use. Nothing was changed.
/// </summary>
public sealed class CowMappingBudgetExceededException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public CowMappingBudgetExceededException(string message) : base(message) { }

    /// <summary>Creates the exception with the system error behind it.</summary>
    public CowMappingBudgetExceededException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>The engine's slot capacity (<see cref="CowEngineOptions.CapacityBytes"/>) is exhausted.</summary>
public sealed class CowCapacityExceededException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public CowCapacityExceededException(string message) : base(message) { }
}

/// <summary>
/// The process's address space is limited (<c>RLIMIT_AS</c>, set by <c>ulimit -v</c> or
/// <c>prlimit --as</c>) and what an operation needed does not fit: creating an engine (its slot pool
/// and tables), or a view (its range of the view arena). Nothing was changed and nothing was kept:
/// the process stays usable, and a smaller request can succeed.
/// </summary>
/// <remarks>
/// Not a mapping-count problem (that is <see cref="CowMappingBudgetExceededException"/>, naming
/// <c>vm.max_map_count</c>) and not the engine's own capacity (<see cref="CowCapacityExceededException"/>).
/// The message and the properties give the numbers: the limit, the address space in use when the
/// request failed, and the bytes the request needed.
/// </remarks>
public sealed class CowAddressSpaceExhaustedException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public CowAddressSpaceExhaustedException(string message) : base(message) { }

    /// <summary>Creates the exception with the numbers behind it.</summary>
    /// <param name="message">The message.</param>
    /// <param name="limitBytes">The process's RLIMIT_AS in bytes, or null if it is unlimited.</param>
    /// <param name="inUseBytes">The address space the process had mapped (VmSize), in bytes.</param>
    /// <param name="requestedBytes">The address space the operation needed, in bytes.</param>
    public CowAddressSpaceExhaustedException(string message, long? limitBytes, long inUseBytes, long requestedBytes)
        : base(message)
    {
        LimitBytes = limitBytes;
        InUseBytes = inUseBytes;
        RequestedBytes = requestedBytes;
    }

    /// <summary>The process's RLIMIT_AS in bytes when the operation failed; null if it is unlimited.</summary>
    public long? LimitBytes { get; }

    /// <summary>The address space the process had mapped (VmSize) when the operation failed, in bytes.</summary>
    public long InUseBytes { get; }

    /// <summary>The address space the operation needed, in bytes.</summary>
    public long RequestedBytes { get; }
}
