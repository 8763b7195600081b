using System.Diagnostics;
using System.Globalization;
using CowEngine.TestSupport;

namespace CowEngine.Stress;

/// <summary>
/// Fails the run when it stops making progress: when one operation has been running longer than
/// the timeout (a deadlock, or a thread stuck in the engine), or when no operation at all has
/// finished for that long. It then prints every harness thread's last operation and its age, the
/// native stacks of every thread of the stressed process (gdb, when installed), and ends the run.
/// </summary>
/// <remarks>
/// The watchdog is a separate process (this same program, started with --watchdog-for), reading
/// the stressed process's <see cref="ActivityBoard"/>. A thread inside the fault handler cannot be
/// suspended by the garbage collector, so an engine deadlock can stop a GC halfway, and with it
/// every managed thread of the process: a watchdog thread in that process would be frozen too.
/// Ending the run: the watchdog asks the stressed process to exit with code 3 (its monitor loop
/// checks every second) and kills it with SIGKILL (exit status 137) if it has not exited 5 s later.
/// </remarks>
internal static class Watchdog
{
    public const int ExitCode = 3;
    public const int RunStateDeadlock = 2;
    public const string Option = "--watchdog-for";

    /// <summary>Starts the watchdog process for this process.</summary>
    public static Process? Launch(ActivityBoard board, TimeSpan timeout)
    {
        // Yama (kernel.yama.ptrace_scope = 1) lets a process be traced only by its ancestors unless
        // it names a tracer: allow the watchdog's gdb to attach. Without Yama this fails harmlessly.
        LibC.AllowAnyTracer();
        string host = Environment.ProcessPath ?? "dotnet";
        var start = new ProcessStartInfo(host) { UseShellExecute = false }; // inherits stdout and stderr
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
            start.ArgumentList.Add(typeof(Watchdog).Assembly.Location);
        start.ArgumentList.Add(Option);
        start.ArgumentList.Add(Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        start.ArgumentList.Add(board.Path);
        start.ArgumentList.Add(timeout.TotalSeconds.ToString(CultureInfo.InvariantCulture));
        try
        {
            return Process.Start(start);
        }
        catch (System.ComponentModel.Win32Exception exception)
        {
            Report.Failure("harness", $"the watchdog process could not be started: {exception.Message}");
            return null;
        }
    }

    /// <summary>The watchdog process's main loop: `--watchdog-for pid board-path timeout-seconds`.</summary>
    public static unsafe int Watch(string[] args)
    {
        int parentId = int.Parse(args[1], CultureInfo.InvariantCulture);
        TimeSpan timeout = TimeSpan.FromSeconds(double.Parse(args[3], CultureInfo.InvariantCulture));
        using Process parent = Process.GetProcessById(parentId);
        using ActivityBoard board = ActivityBoard.Open(args[2]);
        Report.Origin = board.Origin;
        long lastTotal = -1;
        var sinceProgress = Stopwatch.StartNew();
        while (true)
        {
            Thread.Sleep(1000);
            if (parent.HasExited || board.RunState == ActivityBoard.RunStateFinished)
                return 0;
            var activities = new List<Activity>();
            for (int i = 0; i < board.SlotCount; i++)
                activities.Add(new Activity(board.Slot(i)));
            long total = activities.Sum(a => a.Operations);
            if (total != lastTotal)
            {
                lastTotal = total;
                sinceProgress.Restart();
            }
            Activity? stuck = activities.FirstOrDefault(a => a.Busy > timeout);
            string? reason = stuck is not null
                ? $"{stuck.ThreadName} has been in one operation ({stuck.Operation}) for more than {timeout.TotalSeconds:F0} s"
                : sinceProgress.Elapsed > timeout ? $"no operation finished for {sinceProgress.Elapsed.TotalSeconds:F0} s" : null;
            if (reason is null)
                continue;

            Report.Line($"WATCHDOG: {reason}. Harness threads of process {parentId}:");
            foreach (Activity activity in activities)
                Report.Line($"WATCHDOG:   {activity.Describe()}");
            DumpNativeStacks(parentId);
            Report.Line($"RESULT status=DEADLOCK (watchdog: {reason})");
            board.RunState = RunStateDeadlock;
            if (!parent.WaitForExit(5000))
            {
                Report.Line($"WATCHDOG: process {parentId} did not exit by itself (its managed threads are frozen?); killing it");
                parent.Kill();
                parent.WaitForExit(5000);
            }
            board.Delete(); // a process that ends with _exit or SIGKILL cannot remove its board itself
            return ExitCode;
        }
    }

    /// <summary>Every thread's native stack: a thread spinning in cow_*_lock or blocked in the kernel shows where.</summary>
    private static void DumpNativeStacks(int processId)
    {
        try
        {
            var start = new ProcessStartInfo("gdb")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (string argument in new[]
            {
                "-p", processId.ToString(CultureInfo.InvariantCulture), "-batch", "-nx",
                "-ex", "set pagination off",
                // The engine works by SIGSEGV, the runtime suspends threads with signal 34: never stop on them.
                "-ex", "handle SIGSEGV nostop noprint pass",
                "-ex", "handle SIG34 nostop noprint pass",
                "-ex", "thread apply all bt 30",
            })
                start.ArgumentList.Add(argument);
            using Process? gdb = Process.Start(start);
            if (gdb is null)
                return;
            Task<string> output = gdb.StandardOutput.ReadToEndAsync();
            Task<string> errors = gdb.StandardError.ReadToEndAsync();
            if (!gdb.WaitForExit(60_000))
            {
                gdb.Kill();
                Report.Line("WATCHDOG: gdb did not finish within 60 s");
            }
            Report.Line($"WATCHDOG: native stacks of process {processId} (gdb):\n" + output.Result + errors.Result);
        }
        catch (System.ComponentModel.Win32Exception exception)
        {
            Report.Line($"WATCHDOG: no native stacks: gdb could not be started ({exception.Message}); install gdb to get them");
        }
    }
}
