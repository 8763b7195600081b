namespace CowEngine.Tests.Support;

/// <summary>Saving a view to a file with a system call, as a user saves a snapshot.</summary>
internal static class FileWrites
{
    /// <summary>
    /// Writes the whole of <paramref name="view"/>, which the caller has prepared for reading, to a
    /// temporary file with write(2) (RandomAccess.Write: the kernel reads the view's memory itself
    /// and raises no fault the engine could resolve), and fails unless the call succeeds and the
    /// file holds <paramref name="expected"/>.
    /// </summary>
    public static void AssertSavedByWrite(CowView view, ReadOnlySpan<byte> expected)
    {
        string path = Path.GetTempFileName();
        try
        {
            using (var file = File.OpenHandle(path, FileMode.Create, FileAccess.Write))
            {
                try
                {
                    RandomAccess.Write(file, (ReadOnlySpan<byte>)view.AsSpan(), 0);
                }
                catch (IOException e)
                {
                    CowViewStats stats = view.GetStats();
                    Assert.Fail($"write(2) from a {(view.IsSnapshot ? "snapshot" : "region")} prepared for reading, with {stats.MappedPages} of {view.PageCount} pages mapped, failed: {e.Message}");
                }
            }
            Assert.True(File.ReadAllBytes(path).AsSpan().SequenceEqual(expected), "the file differs from the view");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
