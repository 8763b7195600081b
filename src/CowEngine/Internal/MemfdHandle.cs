using CowEngine.Interop;
using Microsoft.Win32.SafeHandles;

namespace CowEngine.Internal;

/// <summary>Owns the engine's memfd file descriptor.</summary>
internal sealed class MemfdHandle : SafeHandleMinusOneIsInvalid
{
    public MemfdHandle() : base(ownsHandle: true) { }

    public static MemfdHandle Create(string name, ulong size)
    {
        Errno.ThrowIfFailed(CowNative.MemfdCreate(name, size, out int fd), "creating the slot pool (memfd_create)");
        var handle = new MemfdHandle();
        handle.SetHandle(fd);
        return handle;
    }

    public int Fd => (int)handle;

    protected override bool ReleaseHandle() => CowNative.Close((int)handle) == 0;
}
