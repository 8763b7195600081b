using CowEngine.Interop;

namespace CowEngine.Internal;

/// <summary>
/// Gives freed memory back to the kernel off the caller's path. Dispose and RestoreTo queue the
/// runs of slots they free (native reclaim queue); this background thread punches their holes
/// (fallocate), which costs a few microseconds per run, so that disposing a snapshot does not pay
/// for it. The engine reclaims synchronously whenever it needs slots, and
/// <see cref="CowMemoryEngine.GetStats"/> drains the queue first, so no caller ever sees memory
/// that is merely waiting.
/// </summary>
/// <remarks>Thread-safe. The thread holds a reference on the engine handle only during a drain.</remarks>
internal sealed class SlotReclaimer : IDisposable
{
    private readonly EngineHandle _engine;
    private readonly AutoResetEvent _work = new(false);
    private readonly Thread _thread;
    private volatile bool _stopping;

    public SlotReclaimer(EngineHandle engine)
    {
        _engine = engine;
        _thread = new Thread(Run) { IsBackground = true, Name = "CowEngine slot reclaimer" };
        _thread.Start();
    }

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
    public void Drain()
    {
        try
        {
            CowNative.EngineReclaim(_engine);
        }
        catch (ObjectDisposedException)
        {
            // The engine's memory is gone with its memfd: nothing left to give back.
        }
    }

    private void Run()
    {
        while (!_stopping)
        {
            _work.WaitOne();
            if (!_stopping)
                Drain();
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
