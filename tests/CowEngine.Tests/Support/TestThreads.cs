using System.Collections.Concurrent;

namespace CowEngine.Tests.Support;

/// <summary>
/// The threads a test starts, and what they use (engines, views). <see cref="JoinAll"/> waits for
/// them; if one has not finished by the deadline, the test fails with the names and native stacks
/// of the unfinished threads, and everything the group owns is abandoned: never disposed and never
/// finalized (a static list keeps it reachable), because a thread that is still running may touch
/// it. Disposing a view under a running writer would turn a hang into an access violation that
/// kills the test host, as <c>RuntimeInteropTests</c> once did.
/// </summary>
/// <remarks>
/// Give the group every disposable its threads use (<see cref="Own{T}"/>) instead of declaring it
/// with <c>using</c>: a <c>using</c> would dispose it while the failure propagates. This catches
/// hangs in which the test's own thread can still run; a deadlock between the fault handler and
/// the garbage collector freezes every managed thread, and is caught only by running the test in a
/// child process (<see cref="IsolatedTest"/>), whose parent takes the stacks.
/// </remarks>
internal sealed class TestThreads : IDisposable
{
    /// <summary>Hang detector, not a timing assertion: these threads normally finish in seconds.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    /// <summary>What hung tests left behind; kept reachable for the life of the process.</summary>
    private static readonly ConcurrentBag<object> Abandoned = [];

    private readonly List<IDisposable> _owned = [];
    private readonly List<(Thread Thread, Action Body)> _threads = [];
    private readonly ConcurrentQueue<Exception> _failures = new();
    private bool _abandoned;

    public TestThreads(params IDisposable[] owned) => _owned.AddRange(owned);

    /// <summary>Takes <paramref name="resource"/> into the group: disposed with it, unless a thread hung.</summary>
    public T Own<T>(T resource) where T : IDisposable
    {
        _owned.Add(resource);
        return resource;
    }

    /// <summary>Starts <paramref name="body"/> on a new background thread; its exception fails the test.</summary>
    public void Start(string name, Action body)
    {
        var thread = new Thread(() =>
        {
            try
            {
                body();
            }
            catch (Exception e)
            {
                _failures.Enqueue(e);
            }
        })
        { IsBackground = true, Name = name };
        // The group keeps the delegate (a started Thread drops its own), so nothing the body uses can
        // be collected and finalized while it runs.
        _threads.Add((thread, body));
        thread.Start();
    }

    /// <summary>
    /// Waits for every thread started since the last call, at most <paramref name="timeout"/> in all.
    /// Throws if one did not finish (after abandoning what the group owns) or if a thread failed.
    /// </summary>
    public void JoinAll(TimeSpan? timeout = null)
    {
        TimeSpan limit = timeout ?? DefaultTimeout;
        long deadline = Environment.TickCount64 + (long)limit.TotalMilliseconds;
        var unfinished = new List<Thread>();
        foreach (var (thread, _) in _threads)
            if (!thread.Join(TimeSpan.FromMilliseconds(Math.Max(0, deadline - Environment.TickCount64))))
                unfinished.Add(thread);
        if (unfinished.Count > 0)
        {
            Abandon();
            string[] names = unfinished.Select(thread => thread.Name ?? "(unnamed)").ToArray();
            throw new Xunit.Sdk.XunitException(
                $"{unfinished.Count} of {_threads.Count} threads did not finish within {limit.TotalSeconds} s: {string.Join(", ", names)}. " +
                "What they use was left alive (not disposed), so they cannot crash the test host. Their native stacks " +
                "(and any thread inside the engine's shim):\n" + ThreadStacks.Capture(Environment.ProcessId, names));
        }
        _threads.Clear(); // all finished: a later JoinAll waits only for threads started after this one
        if (!_failures.IsEmpty)
            throw new AggregateException(_failures);
    }

    private void Abandon()
    {
        _abandoned = true;
        Abandoned.Add(_owned.ToArray());
        Abandoned.Add(_threads.ToArray());
    }

    /// <summary>Disposes what the group owns, last taken first, unless a thread is still running.</summary>
    public void Dispose()
    {
        if (_abandoned || _threads.Any(entry => entry.Thread.IsAlive))
        {
            if (!_abandoned)
                Abandon();
            return;
        }
        for (int i = _owned.Count - 1; i >= 0; i--)
            _owned[i].Dispose();
        _owned.Clear();
    }
}
