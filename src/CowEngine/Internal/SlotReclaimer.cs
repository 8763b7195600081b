using CowEngine.Interop;
using Microsoft.Extensions.Logging;

namespace CowEngine.Internal;

/// <summary>
/// Gives freed memory back to the kernel off the caller's path. Dispose and RestoreTo queue the
/// runs of slots they free (native reclaim queue); this background thread punches their holes
/// (fallocate), which costs a few microseconds per run, so that disposing a snapshot does not pay
/// for it. The engine reclaims synchronously whenever it needs slots, and
/// <see cref="CowMemoryEngine.GetStats"/> drains the queue first, so no caller ever sees memory
/// that is merely waiting.
/// </summary>
/// <remarks>
/// <para>A hole punch that fails leaves its run queued and its slots in use (a slot must read zero
/// when a new region takes it, which only the punch makes sure of), so SlotsInUse and CommittedBytes
/// stay exact. The failure is logged (the first, then at every power of two) and the thread tries
/// again after a delay that doubles from 10 ms up to 1 s while the failures last.</para>
/// <para>Thread-safe. The thread holds a reference on the engine handle only during a drain.</para>
/// </remarks>
internal sealed class SlotReclaimer : IDisposable
{
    private const int FirstRetryMilliseconds = 10;
    private const int LastRetryMilliseconds = 1000;

    private readonly EngineHandle _engine;
    private readonly ILogger _logger;
    private readonly AutoResetEvent _work = new(false);
    private readonly Thread _thread;
    private volatile bool _stopping;
    private long _failures;

    public SlotReclaimer(EngineHandle engine, ILogger logger)
    {
        _engine = engine;
        _logger = logger;
        _thread = new Thread(Run) { IsBackground = true, Name = "CowEngine slot reclaimer" };
        _thread.Start();
    }

    /// <summary>Drains that found a hole punch failing (each left its run queued for a retry).</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Tells the thread that runs may be queued: wakes it only when some are, because a wake-up
    /// for nothing costs a context switch on every RestoreTo of a hot loop (a few microseconds on 2
    /// cores). Called after the native call that may have queued them has returned; a run queued by
    /// another thread meanwhile is that thread's to signal.</summary>
    public void Signal()
    {
        if (_stopping || !_engine.HasQueuedReclaim())
            return;
        try
        {
            _work.Set();
        }
        catch (ObjectDisposedException)
        {
            // Stopped meanwhile: the engine is being disposed, its memory goes with its memfd.
        }
    }

    /// <summary>Reclaims everything queued, on the calling thread.</summary>
    /// <returns>0, or the errno of the first hole punch that failed (its run stays queued).</returns>
    public int Drain()
    {
        int error;
        try
        {
            error = CowNative.EngineReclaim(_engine, out _);
        }
        catch (ObjectDisposedException)
        {
            return 0; // the engine's memory is gone with its memfd: nothing left to give back
        }
        if (error != 0)
        {
            long failures = Interlocked.Increment(ref _failures);
            if ((failures & (failures - 1)) == 0)
                Log.ReclaimFailed(_logger, Errno.NameOf(error), failures);
        }
        return error;
    }

    private void Run()
    {
        int retryMilliseconds = Timeout.Infinite;
        while (!_stopping)
        {
            bool signalled = _work.WaitOne(retryMilliseconds);
            if (_stopping)
                break;
            if (!signalled && !_engine.HasQueuedReclaim())
            {
                retryMilliseconds = Timeout.Infinite; // someone else drained meanwhile
                continue;
            }
            retryMilliseconds = Drain() == 0 ? Timeout.Infinite
                : retryMilliseconds == Timeout.Infinite ? FirstRetryMilliseconds
                : Math.Min(2 * retryMilliseconds, LastRetryMilliseconds);
        }
    }

    /// <summary>Stops the thread (after a last drain) and waits for it.</summary>
    public void Dispose()
    {
        if (_stopping)
            return;
        _stopping = true;
        _work.Set();
        _thread.Join();
        Drain();
        _work.Dispose();
    }
}
