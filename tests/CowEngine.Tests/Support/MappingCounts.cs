using System.Globalization;
using System.Text;
using CowEngine.TestSupport;

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
                        $"the engine counts {running} (recount {recount})\n" + Describe(view, kernelMappings));
        return kernel;
    }

    /// <summary>
    /// The kernel's mappings over a view next to the engine's page table (runs of file-contiguous
    /// slots), page by page, to explain a disagreement about the view's mappings.
    /// </summary>
    public static string Describe(CowView view, IEnumerable<Vma> kernelMappings)
    {
        const int pageSize = CowMemoryEngine.PageSize;
        var text = new StringBuilder("kernel mappings (pages relative to the view; slot = file offset / 4096):\n");
        long start = view.BaseAddress;
        foreach (Vma vma in kernelMappings)
        {
            long first = ((long)vma.Start - start) / pageSize, end = ((long)vma.End - start) / pageSize;
            string what = vma.Inode == 0 ? $"anonymous '{vma.Path}'" : $"slot {vma.Offset / pageSize}";
            text.Append(CultureInfo.InvariantCulture, $"  pages [{first}, {end}) {vma.Permissions} {what}\n");
        }
        CowViewStats stats = view.GetStats();
        text.Append(CultureInfo.InvariantCulture,
            $"engine: {stats.Mappings} mappings, {stats.MappedPages} pages mapped, {stats.WritablePages} writable; runs of file-contiguous slots:\n");
        long runStart = 0;
        for (long page = 1; page <= view.PageCount; page++)
        {
            if (page < view.PageCount && view.SlotOf(page) == view.SlotOf(page - 1) + 1)
                continue;
            text.Append(CultureInfo.InvariantCulture, $"  pages [{runStart}, {page}) slot {view.SlotOf(runStart)}\n");
            runStart = page;
        }
        return text.ToString();
    }
}
