using System.Diagnostics;
using System.Text;
using CowEngine.TestSupport;

namespace CowEngine.Tests.Support;

/// <summary>
/// Native stacks of a process's threads, taken with gdb (`thread apply all bt`), for the report of a
/// test whose threads did not finish. .NET cannot print another thread's managed stack, but the
/// native frames show what matters for a hang here: whether a thread is inside the engine's shim
/// (cow_* functions, libcowengine.so), waiting in the runtime (libcoreclr.so: suspended for a GC),
/// or in a system call.
/// </summary>
internal static class ThreadStacks
{
    private static readonly TimeSpan GdbTimeout = TimeSpan.FromSeconds(45);

    /// <summary>
    /// The stacks of <paramref name="processId"/>'s threads, or a line saying why there are none.
    /// With <paramref name="threadNames"/>, only the threads of those names (as /proc shows them:
    /// the first 15 characters) and any thread inside the engine's shim.
    /// </summary>
    public static string Capture(int processId, IReadOnlyCollection<string>? threadNames = null)
    {
        string? gdb = FindOnPath("gdb");
        if (gdb is null)
            return "(no stacks: gdb is not installed)";
        if (processId == Environment.ProcessId)
            LibC.AllowAnyTracer(); // a child may attach to its parent only if the parent says so (Yama)
        var start = new ProcessStartInfo(gdb)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in new[] { "-nx", "-batch", "-p", processId.ToString(System.Globalization.CultureInfo.InvariantCulture),
                                            "-ex", "set pagination off", "-ex", "thread apply all bt 40" })
            start.ArgumentList.Add(argument);
        try
        {
            using Process process = Process.Start(start) ?? throw new InvalidOperationException("Process.Start returned null");
            Task<string> output = process.StandardOutput.ReadToEndAsync();
            Task<string> errors = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(GdbTimeout))
            {
                process.Kill(entireProcessTree: true);
                return $"(no stacks: gdb did not finish within {GdbTimeout.TotalSeconds} s)";
            }
            string text = output.Result;
            if (!text.Contains("Thread ", StringComparison.Ordinal))
                return $"(no stacks: gdb exited with {process.ExitCode}: {errors.Result.Trim()})";
            return threadNames is null ? text : Select(text, threadNames);
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return $"(no stacks: gdb could not be run: {e.Message})";
        }
    }

    /// <summary>The blocks of gdb's output that belong to the named threads or run inside the shim.</summary>
    private static string Select(string gdbOutput, IReadOnlyCollection<string> threadNames)
    {
        var kept = new StringBuilder();
        StringBuilder? block = null;
        bool keep = false;
        foreach (string line in gdbOutput.Split('\n'))
        {
            if (line.StartsWith("Thread ", StringComparison.Ordinal))
            {
                if (block is not null && keep)
                    kept.Append(block);
                block = new StringBuilder();
                keep = threadNames.Any(name => line.Contains($"\"{ProcName(name)}\"", StringComparison.Ordinal));
            }
            if (block is null)
                continue;
            block.Append(line).Append('\n');
            keep |= line.Contains("cow_", StringComparison.Ordinal) || line.Contains("libcowengine", StringComparison.Ordinal);
        }
        if (block is not null && keep)
            kept.Append(block);
        return kept.Length == 0 ? $"(gdb found none of the threads {string.Join(", ", threadNames)})\n{gdbOutput}" : kept.ToString();
    }

    /// <summary>The kernel keeps a thread's name to 15 bytes.</summary>
    public static string ProcName(string name) => name.Length <= 15 ? name : name[..15];

    private static string? FindOnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin")
        .Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Select(directory => Path.Combine(directory, program))
        .FirstOrDefault(File.Exists);
}
