namespace CowEngine.Tests.Support;

/// <summary>
/// Runs one test of this assembly again, alone, in a child process (`dotnet CowEngine.Tests.dll
/// -method ...`: an xunit.v3 test assembly is an executable), for tests whose failure can be a hang
/// or a crash of the whole process: a thread stuck inside the SIGSEGV handler blocks every garbage
/// collection and so freezes every managed thread, which no in-process timeout can report. The
/// parent kills a child that outlives its timeout, after taking its threads' native stacks.
/// </summary>
/// <example><code>
/// [Fact]
/// public async Task Something()
/// {
///     if (!IsolatedTest.IsChildFor(nameof(Something)))
///     {
///         await IsolatedTest.RunAndAssertPassedAsync(typeof(ThisClass), nameof(Something), TimeSpan.FromSeconds(60));
///         return;
///     }
///     ... the test itself, which now runs in the child ...
/// }
/// </code></example>
internal static class IsolatedTest
{
    /// <summary>Holds the name of the test the child process is to run in-process.</summary>
    private const string Variable = "COWENGINE_ISOLATED_TEST";

    /// <summary>Output kept in a failure report from each stream.</summary>
    private const int TailCharacters = 8_000;

    /// <summary>True in the child process started for <paramref name="method"/>.</summary>
    public static bool IsChildFor(string method) => Environment.GetEnvironmentVariable(Variable) == method;

    /// <summary>True in any child process this runner started.</summary>
    public static bool IsChild => Environment.GetEnvironmentVariable(Variable) is { Length: > 0 };

    /// <summary>
    /// Runs <paramref name="testClass"/>.<paramref name="method"/> in a child process and fails unless
    /// it ran exactly that one test and it passed within <paramref name="timeout"/>.
    /// </summary>
    public static async Task<ChildResult> RunAndAssertPassedAsync(Type testClass, string method, TimeSpan timeout)
    {
        string name = $"{testClass.FullName}.{method}";
        string assembly = testClass.Assembly.Location;
        ChildResult run = await ChildProcess.RunDotnetAsync(name,
            [assembly, "-method", name, "-noColor", "-noLogo", "-parallel", "none"], timeout,
            new Dictionary<string, string> { [Variable] = method });
        string report = $"child run of {name}: exit code {run.ExitCode}\n" +
                        $"--- stdout ---\n{Tail(run.StandardOutput)}\n--- stderr ---\n{Tail(run.StandardError)}" +
                        (run.HangStacks is null ? "" : $"\n--- native stacks of the child's threads ---\n{run.HangStacks}");
        if (run.TimedOut)
            Assert.Fail($"{name} did not finish within {timeout.TotalSeconds} s in its child process and was killed: a hang.\n{report}");
        Assert.True(run.ExitCode == 0, report);
        // The child must really have run the test: a filter that matches nothing also exits with 0.
        Assert.True(run.StandardOutput.Contains("Total: 1,", StringComparison.Ordinal) &&
                    run.StandardOutput.Contains("Failed: 0,", StringComparison.Ordinal),
                    $"the child ran no test, or more than one, or it failed:\n{report}");
        TestContext.Current.TestOutputHelper?.WriteLine(report);
        return run;
    }

    private static string Tail(string text) => text.Length <= TailCharacters ? text : "...\n" + text[^TailCharacters..];
}
