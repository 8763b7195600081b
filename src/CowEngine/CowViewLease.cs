using CowEngine.Internal;

namespace CowEngine;

/// <summary>
/// A reference on a view's handle that keeps the view alive while held: <see cref="CowView.Dispose"/>
/// called meanwhile returns at once, and the view is released (its range made inaccessible, its
/// pages returned, IsDisposed true) only when the last lease and API call in flight are gone. The
/// view's own API calls hold the same kind of reference for their duration (the interop
/// marshalling takes it); the types layered over a view (<see cref="CowMemoryManager{T}"/>,
/// <see cref="CowViewStream"/>, <see cref="CowViewFile"/>) hold one while they touch its memory, so
/// a concurrent Dispose cannot unmap it under them.
/// </summary>
internal readonly struct CowViewLease : IDisposable
{
    private readonly ViewHandle? _handle;

    private CowViewLease(ViewHandle handle) => _handle = handle;

    /// <summary>Takes a lease.</summary>
    /// <exception cref="ObjectDisposedException">The view is disposed.</exception>
    public static CowViewLease Acquire(CowView view)
    {
        ViewHandle handle = view.Handle;
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
            // The handle's own message names SafeHandle; name the view instead.
            throw new ObjectDisposedException(nameof(CowView), "The view is disposed.");
        }
        return new CowViewLease(handle);
    }

    /// <summary>Releases the lease; the view is released now if it was disposed meanwhile.</summary>
    public void Dispose() => _handle?.DangerousRelease();

    /// <summary>
    /// Releases a lease taken on <paramref name="view"/> earlier and not kept as a value (a lease is
    /// one reference on the view's handle, the same whichever call took it).
    /// </summary>
    public static void Release(CowView view) => view.Handle.DangerousRelease();
}
