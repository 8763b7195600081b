using System.Diagnostics;
using System.Runtime.InteropServices;

namespace CowEngine.Tests.Support;

/// <summary>How a child run ended and what it printed.</summary>
internal sealed record ChildResult(string Scenario, int ExitCode, bool TimedOut, string StandardOutput, string StandardError,
                                   string? HangStacks = null)
{
    public const int SigAbrt = 6;
    public const int SigSegv = 11;

    /// <summary>
    /// The signal that killed the child, if any: .NET reports a child killed by signal n as exit code
    /// 128 + n (the shell's convention), and `dotnet app.dll` runs the app in the host process itself.
    /// </summary>
    public int? TerminatingSignal => ExitCode > 128 && ExitCode <= 128 + 64 ? ExitCode - 128 : null;

    /// <summary>Everything the test needs to explain a failure.</summary>
    public override string ToString() =>
        $"child '{Scenario}': exit code {ExitCode}{(TimedOut ? " (timed out, killed)" : "")}\n" +
        $"--- stdout ---\n{StandardOutput}\n--- stderr ---\n{StandardError}" +
        (HangStacks is null ? "" : $"\n--- native stacks of the child's threads before it was killed ---\n{HangStacks}");
}

/// <summary>
/// Runs CowEngine.TestChild (copied into this test assembly's directory by the project reference)
/// as `dotnet CowEngine.TestChild.dll scenario`, for tests whose subject is a crash of the process.
/// </summary>
internal static class ChildProcess
{
    /// <summary>Generous: a child normally ends within a second. Only a hang reaches it.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    public static string ChildAssemblyPath => Path.Combine(AppContext.BaseDirectory, "CowEngine.TestChild.dll");

    public static async Task<ChildResult> RunAsync(string scenario, TimeSpan? timeout = null)
    {
        Assert.True(File.Exists(ChildAssemblyPath), $"{ChildAssemblyPath} is missing: the test project must reference CowEngine.TestChild");
        return await RunDotnetAsync(scenario, [ChildAssemblyPath, scenario], timeout ?? DefaultTimeout);
    }

    /// <summary>
    /// Runs `dotnet` with the arguments, collects its output, and kills it (with its children) if it
    /// has not exited within the timeout, after taking its threads' native stacks for the report (a
    /// hung child is the one case in which a test learns nothing from the output alone). No crash
    /// dumps or crash reports from deliberate crashes.
    /// </summary>
    public static Task<ChildResult> RunDotnetAsync(string label, IEnumerable<string> arguments, TimeSpan timeout,
                                                   IReadOnlyDictionary<string, string>? environment = null) =>
        RunProgramAsync(label, DotnetHostPath(), arguments, timeout, environment);

    /// <summary>As <see cref="RunDotnetAsync"/>, for any program (e.g. a shell that sets a limit, then
    /// execs `dotnet`).</summary>
    public static async Task<ChildResult> RunProgramAsync(string label, string program, IEnumerable<string> arguments, TimeSpan timeout,
                                                          IReadOnlyDictionary<string, string>? environment = null)
    {
        var startInfo = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
            startInfo.ArgumentList.Add(argument);
        startInfo.Environment["DOTNET_DbgEnableMiniDump"] = "0";
        startInfo.Environment["DOTNET_EnableCrashReport"] = "0";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
            startInfo.Environment[name] = value;

        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException("Process.Start returned null");
        Task<string> standardOutput = process.StandardOutput.ReadToEndAsync();
        Task<string> standardError = process.StandardError.ReadToEndAsync();
        bool timedOut = false;
        string? stacks = null;
        using (var deadline = new CancellationTokenSource(timeout))
        {
            try
            {
                await process.WaitForExitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                timedOut = true;
                stacks = ThreadStacks.Capture(process.Id);
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
        }
        return new ChildResult(label, process.ExitCode, timedOut, await standardOutput, await standardError, stacks);
    }

    /// <summary>
    /// The `dotnet` host: the test host itself may be an apphost, so use the SDK's DOTNET_HOST_PATH,
    /// else the host of the running runtime (shared/Microsoft.NETCore.App/&lt;version&gt;/ is three levels
    /// below it), else whatever `dotnet` is on PATH.
    /// </summary>
    public static string DotnetHostPath()
    {
        string? fromSdk = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(fromSdk) && File.Exists(fromSdk))
            return fromSdk;
        string runtimeDirectory = RuntimeEnvironment.GetRuntimeDirectory();
        string besideRuntime = Path.GetFullPath(Path.Combine(runtimeDirectory, "..", "..", "..", "dotnet"));
        return File.Exists(besideRuntime) ? besideRuntime : "dotnet";
    }
}
