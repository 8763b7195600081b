namespace CowEngine.Stress;

/// <summary>
/// One spin lock per page of a view, the writers' own protocol (as in uffd-stress): a write and its
/// model update happen under the page's lock, and the verifier compares a page under it, so the
/// view and the model always agree for a page whose lock is free. Locks of several pages are taken
/// in ascending page order (and, across two views, lower view id first).
/// </summary>
internal sealed class PageLocks
{
    private readonly int[] _locks;

    public PageLocks(int pageCount) => _locks = new int[pageCount];

    public void Lock(long page)
    {
        ref int word = ref _locks[page];
        if (Interlocked.CompareExchange(ref word, 1, 0) == 0)
            return;
        // The holder may be inside a copy-on-write fault that waits for a snapshot of the view: that
        // takes microseconds to milliseconds, so back off to yielding and then sleeping.
        var spinner = new SpinWait();
        do
            spinner.SpinOnce();
        while (Volatile.Read(ref word) != 0 || Interlocked.CompareExchange(ref word, 1, 0) != 0);
    }

    public void Unlock(long page) => Volatile.Write(ref _locks[page], 0);

    /// <summary>Locks pages [first, last] in ascending order.</summary>
    public void LockRange(long first, long last)
    {
        for (long page = first; page <= last; page++)
            Lock(page);
    }

    public void UnlockRange(long first, long last)
    {
        for (long page = first; page <= last; page++)
            Unlock(page);
    }
}
