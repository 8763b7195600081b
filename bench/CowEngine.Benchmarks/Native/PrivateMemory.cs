namespace CowEngine.Benchmarks.Native;

/// <summary>
/// Private anonymous memory (mmap MAP_PRIVATE|MAP_ANONYMOUS, no huge pages): the state a process that
/// snapshots itself with fork() would have. Freed on dispose.
/// </summary>
internal sealed unsafe class PrivateMemory : IDisposable
{
    private PrivateMemory(byte* pointer, long length)
    {
        Pointer = pointer;
        Length = length;
    }

    public byte* Pointer { get; private set; }

    public long Length { get; }

    public long PageCount => Length / CowMemoryEngine.PageSize;

    /// <param name="length">Bytes, a multiple of 4096.</param>
    /// <param name="touch">Write every page once so all of it is resident and private.</param>
    public static PrivateMemory Allocate(long length, bool touch)
    {
        ForkBaselineNative.Check(ForkBaselineNative.Alloc((ulong)length, touch ? 1 : 0, out nint address),
            $"allocating {length} bytes of private memory");
        return new PrivateMemory((byte*)address, length);
    }

    public void Dispose()
    {
        if (Pointer == null)
            return;
        ForkBaselineNative.Check(ForkBaselineNative.Free((nint)Pointer, (ulong)Length), "freeing private memory");
        Pointer = null;
    }
}
