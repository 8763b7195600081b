using System.Diagnostics;

namespace CowEngine.Stress;

/// <summary>
/// What one harness thread is doing: its slot of the <see cref="ActivityBoard"/>, written by the
/// owning thread and read by the progress lines and by the watchdog process. Recording an
/// operation copies its name into the slot and allocates nothing.
/// </summary>
internal sealed unsafe class Activity
{
    private readonly byte* _slot;

    public Activity(ActivityBoard board, string threadName)
    {
        ThreadName = threadName;
        _slot = board.AllocateSlot(threadName);
        Volatile.Write(ref *(long*)(_slot + 8), Stopwatch.GetTimestamp());
        ActivityBoard.WriteOperation(_slot, "starting");
    }

    /// <summary>Reads another process's slot.</summary>
    public Activity(byte* slot)
    {
        _slot = slot;
        ThreadName = ActivityBoard.ReadName(slot);
    }

    public string ThreadName { get; }

    public long Operations => Volatile.Read(ref *(long*)(_slot + 16));

    public string Operation => ActivityBoard.ReadOperation(_slot);

    public void Begin(string operation, int viewId = -1, long detail = -1)
    {
        Note(operation, viewId, detail);
        Volatile.Write(ref *(long*)_slot, Stopwatch.GetTimestamp());
    }

    /// <summary>Refines the operation in progress (e.g. once its view is chosen).</summary>
    public void Note(string operation, int viewId = -1, long detail = -1)
    {
        ActivityBoard.WriteOperation(_slot, operation);
        *(int*)(_slot + 24) = viewId;
        *(long*)(_slot + 32) = detail;
    }

    public void End()
    {
        Volatile.Write(ref *(long*)(_slot + 8), Stopwatch.GetTimestamp());
        Volatile.Write(ref *(long*)_slot, 0);
        Volatile.Write(ref *(long*)(_slot + 16), Operations + 1);
    }

    /// <summary>How long the operation in progress has been running, or null when idle.</summary>
    public TimeSpan? Busy
    {
        get
        {
            long started = Volatile.Read(ref *(long*)_slot);
            return started == 0 ? null : Stopwatch.GetElapsedTime(started);
        }
    }

    public TimeSpan SinceLastFinished => Stopwatch.GetElapsedTime(Volatile.Read(ref *(long*)(_slot + 8)));

    public string Describe()
    {
        int viewId = *(int*)(_slot + 24);
        long detail = *(long*)(_slot + 32);
        TimeSpan? busy = Busy;
        string where = viewId >= 0 ? $" view #{viewId}" + (detail >= 0 ? $" ({detail})" : "") : "";
        return busy is { } running
            ? $"{ThreadName,-12} IN {Operation}{where} for {running.TotalSeconds:F1}s; {Operations} operations done"
            : $"{ThreadName,-12} idle for {SinceLastFinished.TotalSeconds:F1}s after {Operation}{where}; {Operations} operations done";
    }
}
