namespace CowEngine.Stress;

/// <summary>
/// The harness's own lock per view (managed; the engine never sees it), which keeps the model
/// exact. Four modes:
/// <list type="table">
/// <item><term>Write</term><description>field writers and the verifier: any number at once, also
/// alongside a racing Snapshot (that is what the racing snapshots test).</description></item>
/// <item><term>Bulk</term><description>memcpy and pipe writers, whose bytes are arbitrary: any
/// number at once, alongside Write, never alongside Snapshot (a racing snapshot can check only
/// monotonic fields) nor Exclusive.</description></item>
/// <item><term>Snapshot</term><description>a snapshot, or a restore from this view, taken while
/// field writers go on: one at a time.</description></item>
/// <item><term>Exclusive</term><description>snapshot, restore, dispose or TakeDirtyPages with
/// the view quiet, so the model can simply be copied.</description></item>
/// </list>
/// Exclusive and Snapshot requests stop new Write/Bulk entries while they wait, so a stream of
/// writers cannot starve them. Code that needs two gates takes them in view-id order, and nobody
/// waits for a gate while holding a page lock, so the harness's locks cannot deadlock.
/// </summary>
internal sealed class ViewGate
{
    private readonly object _monitor = new();
    private int _writers, _bulk, _exclusiveWaiting, _snapshotWaiting, _waiters;
    private bool _snapshot, _exclusive;

    public void EnterWrite()
    {
        lock (_monitor)
        {
            while (_exclusive || _exclusiveWaiting != 0)
                Wait();
            _writers++;
        }
    }

    public void ExitWrite()
    {
        lock (_monitor)
        {
            _writers--;
            WakeWaiters();
        }
    }

    public void EnterBulk()
    {
        lock (_monitor)
        {
            while (_exclusive || _snapshot || _exclusiveWaiting != 0 || _snapshotWaiting != 0)
                Wait();
            _bulk++;
        }
    }

    public void ExitBulk()
    {
        lock (_monitor)
        {
            _bulk--;
            WakeWaiters();
        }
    }

    public void EnterSnapshot()
    {
        lock (_monitor)
        {
            _snapshotWaiting++;
            try
            {
                while (_exclusive || _snapshot || _bulk != 0 || _exclusiveWaiting != 0)
                    Wait();
            }
            finally
            {
                _snapshotWaiting--;
            }
            _snapshot = true;
            WakeWaiters(); // bulk writers waiting only because we were waiting re-check
        }
    }

    public void ExitSnapshot()
    {
        lock (_monitor)
        {
            _snapshot = false;
            WakeWaiters();
        }
    }

    public void EnterExclusive()
    {
        lock (_monitor)
        {
            _exclusiveWaiting++;
            try
            {
                while (_exclusive || _snapshot || _writers != 0 || _bulk != 0)
                    Wait();
            }
            finally
            {
                _exclusiveWaiting--;
            }
            _exclusive = true;
        }
    }

    public void ExitExclusive()
    {
        lock (_monitor)
        {
            _exclusive = false;
            WakeWaiters();
        }
    }

    private void Wait()
    {
        _waiters++;
        try
        {
            Monitor.Wait(_monitor);
        }
        finally
        {
            _waiters--;
        }
    }

    private void WakeWaiters()
    {
        if (_waiters != 0)
            Monitor.PulseAll(_monitor);
    }
}
