namespace CowEngine.Benchmarks.Native;

/// <summary>The one-call fork round trip of the shim.</summary>
internal static unsafe class Fork
{
    /// <summary>fork(), the child _exits at once, waitpid. Returns (fork() call, whole round trip) in microseconds.</summary>
    public static (double ForkCall, double RoundTrip) ExitAndWait()
    {
        ulong fork, total;
        ForkBaselineNative.Check(ForkBaselineNative.ForkExitWait(&fork, &total), "fork + exit + wait");
        return (fork / 1000.0, total / 1000.0);
    }
}
