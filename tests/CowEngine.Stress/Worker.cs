namespace CowEngine.Stress;

/// <summary>
/// A harness thread: repeats <see cref="Step"/> until the run stops. Each step is one operation,
/// run while holding the pause lock shared (so a checkpoint sees no operation half done) and
/// recorded in <see cref="Activity"/> for the watchdog. An unexpected exception is a failure of the
/// run (an engine call that should have worked threw), reported and survived.
/// </summary>
internal abstract class Worker
{
    private Thread? _thread;

    protected Worker(StressContext context, string name, int index)
    {
        Context = context;
        Name = name;
        Random = context.RandomFor(index);
        Activity = new Activity(context.Board, name);
    }

    public string Name { get; }

    public Activity Activity { get; }

    protected StressContext Context { get; }

    protected Registry Registry => Context.Registry;

    protected Random Random { get; }

    public void Start()
    {
        _thread = new Thread(Run) { Name = Name, IsBackground = true };
        _thread.Start();
    }

    public bool Join(TimeSpan timeout) => _thread is null || _thread.Join(timeout);

    /// <summary>One operation. Call Activity.Begin once it is known what the step does.</summary>
    protected abstract void Step();

    /// <summary>Time between operations (none by default: writers run flat out).</summary>
    protected virtual void Pace()
    {
    }

    private void Run()
    {
        while (!Context.Stopping)
        {
            Context.Pause.EnterReadLock();
            try
            {
                Step();
            }
            catch (Exception exception) when (Injection.IsRefusal(exception))
            {
                // --inject-rate: a call refused by an injected failure, as documented. What it left is
                // checked where the worker still holds its views (and by every checkpoint's audit).
                Injection.Refused(Activity.Operation);
            }
            catch (CowMappingBudgetExceededException exception)
            {
                // The working set is sized so that this cannot happen with the default budget, and
                // with --mapping-budget the engine promises to evict instead of refusing.
                Report.Failure("budget-refused", $"{Activity.Describe()}: {exception.Message}");
            }
            catch (Exception exception)
            {
                Report.Failure("exception", $"{Activity.Describe()}: {exception}");
            }
            finally
            {
                if (Activity.Busy is not null)
                    Activity.End();
                Context.Pause.ExitReadLock();
            }
            Pace();
        }
    }

    /// <summary>Sleeps 0 to <paramref name="maxMilliseconds"/> ms (0 yields).</summary>
    protected void SleepUpTo(int maxMilliseconds)
    {
        int milliseconds = Random.Next(maxMilliseconds + 1);
        if (milliseconds == 0)
            Thread.Yield();
        else
            Thread.Sleep(milliseconds);
    }
}
