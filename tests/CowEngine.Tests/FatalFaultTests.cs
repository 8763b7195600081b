using CowEngine.Tests.Support;

namespace CowEngine.Tests;

/// <summary>
/// Faults the engine cannot or must not resolve. Each ends the process, so each runs in a child
/// process (CowEngine.TestChild) and the test reads its exit status and output. What must never
/// happen: a hang (the handler looping on a fault it cannot fix), a silent exit 0, or a fault that
/// is not ours being swallowed instead of reaching the runtime.
/// </summary>
public sealed class FatalFaultTests
{
    [Fact]
    public async Task HarnessControl_ChildThatDoesNotCrash_ExitsWithZero()
    {
        // Without this, a broken harness (child not found, not started) could make every crash test
        // below pass or fail for the wrong reason.
        ChildResult result = await ChildProcess.RunAsync("clean-exit");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("copy-on-write ok: True", result.StandardOutput);
    }

    [Fact]
    public async Task WriteFault_WithNoSlotLeftUnderCapacity_AbortsNamingCapacityBytes()
    {
        ChildResult result = await ChildProcess.RunAsync("capacity-exhausted");

        AssertAborted(result);
        Assert.Contains("writing a shared page", result.StandardOutput);
        Assert.Contains("CowEngine: fatal", result.StandardError);
        Assert.Contains("CapacityBytes", result.StandardError);
        Assert.DoesNotContain("UNEXPECTED", result.StandardOutput);
    }

    [Fact]
    public async Task WriteFault_WhenTheKernelRefusesTheMapping_AbortsNamingMaxMapCount()
    {
        ChildResult result = await ChildProcess.RunAsync("mapping-limit");

        AssertAborted(result);
        Assert.Contains("mappings exhausted after", result.StandardOutput);
        Assert.Contains("CowEngine: fatal", result.StandardError);
        Assert.Contains("vm.max_map_count", result.StandardError);
        Assert.DoesNotContain("UNEXPECTED", result.StandardOutput);
    }

    [Fact]
    public async Task WriteThroughStalePointer_AfterDispose_IsAnAccessViolationAndLeavesNewerViewIntact()
    {
        ChildResult result = await ChildProcess.RunAsync("stale-pointer-write");

        Assert.Contains("second view intact: True", result.StandardOutput);
        Assert.Contains("writing through the stale pointer", result.StandardOutput);
        Assert.Contains("after the view was disposed", result.StandardError); // the handler names the cause
        AssertDiedOfAccessViolation(result);
    }

    [Fact]
    public async Task DisposeWhileOtherThreadsWrite_LaterWritesFaultAndNoOtherViewOrCountIsAffected()
    {
        ChildResult result = await ChildProcess.RunAsync("dispose-while-writing");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.DoesNotContain("UNEXPECTED", result.StandardOutput);
        Assert.Contains("stray writes passed on: True, scratch mappings failed: 0", result.StandardOutput);
        Assert.Contains("other view intact: True", result.StandardOutput);
        Assert.Contains("snapshots intact: True", result.StandardOutput);
        Assert.Contains("live views: 3, slots in use: 160 (expected 160)", result.StandardOutput);
        Assert.Contains("a new region is zero-filled: True", result.StandardOutput);
        Assert.Contains("after the view was disposed", result.StandardError);
    }

    [Fact]
    public async Task ManagedStackOverflow_WithEngineInstalled_IsStillReportedByTheRuntime()
    {
        ChildResult result = await ChildProcess.RunAsync("stack-overflow");

        Assert.Contains("copy-on-write fault resolved: True", result.StandardOutput);
        Assert.Contains("recursing", result.StandardOutput);
        Assert.False(result.TimedOut, result.ToString());
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("Stack overflow", result.StandardError);
        Assert.DoesNotContain("UNEXPECTED", result.StandardOutput);
    }

    [Theory]
    [InlineData("read-past-view-end", "reading the first byte past the view")]
    [InlineData("write-past-view-end", "writing the first byte past the view")]
    public async Task FaultInProtNoneRestOfViewSegment_IsPassedOnToTheRuntime(string scenario, string lastStep)
    {
        ChildResult result = await ChildProcess.RunAsync(scenario);

        Assert.Contains(lastStep, result.StandardOutput);
        AssertDiedOfAccessViolation(result);
        Assert.DoesNotContain("CowEngine: fatal", result.StandardError);
    }

    [Fact]
    public async Task InstructionFetchFromAView_IsPassedOnToTheRuntime()
    {
        ChildResult result = await ChildProcess.RunAsync("execute-in-view");

        Assert.Contains("snapshot holds the code bytes: True", result.StandardOutput);
        Assert.Contains("calling into the view", result.StandardOutput);
        AssertDiedOfAccessViolation(result);
        Assert.DoesNotContain("CowEngine: fatal", result.StandardError);
    }

    [Fact]
    public async Task SlotPoolThatCannotGrow_UnderATinyRlimitFsize_ThrowsCowSystemExceptionNamingEfbig()
    {
        ChildResult result = await ChildProcess.RunAsync("memfd-growth-refused");

        Assert.False(result.TimedOut, result.ToString());
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("refused: errno 27", result.StandardOutput); // EFBIG
        Assert.Contains("EFBIG", result.StandardOutput);
    }

    [Fact]
    public async Task AnotherLibrarysSigsegvHandlerInstalledAfterOurs_ChainsBothWays()
    {
        ChildResult result = await ChildProcess.RunAsync("foreign-handler");

        Assert.False(result.TimedOut, result.ToString());
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("copy-on-write through the foreign handler: True", result.StandardOutput);
        Assert.Contains("null references caught: 100", result.StandardOutput);
    }

    /// <summary>The engine's fatal path: abort(), i.e. SIGABRT (exit code 134).</summary>
    private static void AssertAborted(ChildResult result)
    {
        Assert.False(result.TimedOut, result.ToString());
        Assert.True(result.TerminatingSignal == ChildResult.SigAbrt, "expected death by SIGABRT\n" + result);
    }

    /// <summary>
    /// The fault reached the runtime's handler: it either reports an AccessViolationException and
    /// aborts (what .NET does for a bad access in managed code that is not near null), or the process
    /// dies of the SIGSEGV itself. Never exit 0, never a hang.
    /// </summary>
    private static void AssertDiedOfAccessViolation(ChildResult result)
    {
        Assert.False(result.TimedOut, result.ToString());
        Assert.DoesNotContain("UNEXPECTED", result.StandardOutput);
        bool reportedByRuntime = result.TerminatingSignal == ChildResult.SigAbrt
            && result.StandardError.Contains("AccessViolationException", StringComparison.Ordinal);
        bool killedBySegv = result.TerminatingSignal == ChildResult.SigSegv;
        Assert.True(reportedByRuntime || killedBySegv, "expected an access violation\n" + result);
    }
}
