namespace CowEngine.Tests.Support;

/// <summary>The three views of a view's mapping count, which must agree.</summary>
internal static class MappingCounts
{
    /// <summary>
    /// Fails unless the engine's running count (GetStats().Mappings), its recount from the page table
    /// (CountMappings()) and the kernel's VMAs over the view's range in /proc/self/maps agree.
    /// Returns the count.
    /// </summary>
    public static long AssertAgree(CowView view, string when)
    {
        long running = view.GetStats().Mappings;
        long recount = view.CountMappings();
        List<Vma> kernelMappings = ProcMaps.OverlappingStable(view.BaseAddress, view.Length, out bool stable);
        int kernel = kernelMappings.Count;
        TestContext.Current.TestOutputHelper?.WriteLine($"{when}: kernel {kernel}, engine running count {running}, recount {recount}");
        if (kernel != recount || kernel != running)
            Assert.Fail($"{when}: the kernel lists {kernel} mappings over the view ({(stable ? "the same in two consecutive reads" : "reads kept changing")}), " +
                        $"the engine counts {running} (recount {recount})\n" + ProcMaps.Describe(view, kernelMappings));
        return kernel;
    }
}
