namespace CowEngine.Stress;

/// <summary>
/// The live views the harness knows, per family, and the page counts the running invariants use.
/// A view is added once it is fully set up (model included) and removed before it is disposed, so
/// a thread that picks a view finds it complete; it must still enter the view's gate and check
/// <see cref="ViewRecord.Dead"/>, because the view may be disposed between the pick and the gate.
/// </summary>
internal sealed class Registry
{
    private readonly Lock _gate = new();
    private readonly List<ViewRecord> _live = new();
    private readonly int[] _perFamily;
    private readonly int[] _pendingPerFamily;
    private int _nextId;
    private long _pagesThatMayHoldSlots;
    private long _abandonedPages;
    private readonly List<WeakReference<CowView>> _abandoned = new();

    public Registry(IReadOnlyList<Family> families, int viewsPerFamily)
    {
        Families = families;
        ViewsPerFamily = viewsPerFamily;
        _perFamily = new int[families.Count];
        _pendingPerFamily = new int[families.Count];
    }

    public IReadOnlyList<Family> Families { get; }

    /// <summary>Most live views a family may have (registered plus being created).</summary>
    public int ViewsPerFamily { get; }

    public int NextId() => Interlocked.Increment(ref _nextId);

    /// <summary>
    /// Pages of every view that exists or may exist at this instant: counted before a view is
    /// created and uncounted only after its Dispose returned. The engine's SlotsInUse can never be
    /// more than this (plus the copies in flight), because a slot is in use only while a page of a
    /// live view references it.
    /// </summary>
    public long PagesThatMayHoldSlots => Interlocked.Read(ref _pagesThatMayHoldSlots) + Interlocked.Read(ref _abandonedPages);

    public int Count
    {
        get
        {
            lock (_gate)
                return _live.Count;
        }
    }

    public int CountIn(Family family)
    {
        lock (_gate)
            return _perFamily[family.Id];
    }

    /// <summary>Claims room for one more view in the family, or returns false when it is full.</summary>
    public bool TryReserve(Family family)
    {
        lock (_gate)
        {
            if (_perFamily[family.Id] + _pendingPerFamily[family.Id] >= ViewsPerFamily)
                return false;
            _pendingPerFamily[family.Id]++;
        }
        Interlocked.Add(ref _pagesThatMayHoldSlots, family.PageCount);
        return true;
    }

    /// <summary>Gives back a reservation whose view could not be made.</summary>
    public void CancelReservation(Family family)
    {
        lock (_gate)
            _pendingPerFamily[family.Id]--;
        Interlocked.Add(ref _pagesThatMayHoldSlots, -family.PageCount);
    }

    public void Add(ViewRecord record)
    {
        lock (_gate)
        {
            _pendingPerFamily[record.Family.Id]--;
            _perFamily[record.Family.Id]++;
            _live.Add(record);
        }
    }

    /// <summary>Unregisters a view about to be disposed; call <see cref="Disposed"/> once Dispose returned.</summary>
    public void Remove(ViewRecord record)
    {
        lock (_gate)
        {
            if (!_live.Remove(record))
                throw new InvalidOperationException($"{record} is not registered");
            _perFamily[record.Family.Id]--;
        }
    }

    public void Disposed(ViewRecord record) => Interlocked.Add(ref _pagesThatMayHoldSlots, -record.Family.PageCount);

    /// <summary>
    /// A snapshot the GC thread is about to drop without disposing: the engine keeps it alive (the
    /// lifetime contract), so its pages count, from before it exists, until the next checkpoint disposes it.
    /// </summary>
    public void Abandoning(Family family) => Interlocked.Add(ref _abandonedPages, family.PageCount);

    /// <summary>The snapshot announced by <see cref="Abandoning"/>, once made, for the checkpoint to check and dispose.</summary>
    public void Abandoned(WeakReference<CowView> snapshot)
    {
        lock (_abandoned)
            _abandoned.Add(snapshot);
    }

    /// <summary>
    /// At a checkpoint, with every thread paused and after the finalizers ran: every abandoned
    /// snapshot must still be alive and undisposed (a view of a live engine never goes to the
    /// garbage collector), and is disposed now; then abandoned snapshots hold nothing any more.
    /// </summary>
    public void DisposeAbandoned(string when)
    {
        List<WeakReference<CowView>> abandoned;
        lock (_abandoned)
        {
            abandoned = new List<WeakReference<CowView>>(_abandoned);
            _abandoned.Clear();
        }
        foreach (WeakReference<CowView> reference in abandoned)
        {
            if (!reference.TryGetTarget(out CowView? snapshot) || snapshot.IsDisposed)
                Report.Failure("abandoned-collected", $"{when}: a snapshot dropped without Dispose was released while its engine lives");
            else
                snapshot.Dispose();
        }
        Interlocked.Exchange(ref _abandonedPages, 0);
    }

    /// <summary>A random live view that matches, or null.</summary>
    public ViewRecord? Pick(Random random, Func<ViewRecord, bool>? filter = null)
    {
        lock (_gate)
        {
            if (_live.Count == 0)
                return null;
            // A few random probes, then a scan from a random start: no allocation on the hot path.
            for (int attempt = 0; attempt < 8; attempt++)
            {
                ViewRecord candidate = _live[random.Next(_live.Count)];
                if (filter is null || filter(candidate))
                    return candidate;
            }
            int start = random.Next(_live.Count);
            for (int i = 0; i < _live.Count; i++)
            {
                ViewRecord candidate = _live[(start + i) % _live.Count];
                if (filter!(candidate))
                    return candidate;
            }
            return null;
        }
    }

    public List<ViewRecord> All()
    {
        lock (_gate)
            return new List<ViewRecord>(_live);
    }
}
