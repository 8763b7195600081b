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
