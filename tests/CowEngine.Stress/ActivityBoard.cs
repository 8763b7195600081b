using System.IO.MemoryMappedFiles;
using System.Text;

namespace CowEngine.Stress;

/// <summary>
/// Every harness thread's current operation, in a small shared-memory file, so that the watchdog
/// can run in a separate process. It must: a deadlock that involves the garbage collector (a
/// thread stuck inside the SIGSEGV handler cannot be suspended, so a GC waits for it forever)
/// freezes every managed thread of the stressed process, a watchdog thread included.
/// </summary>
/// <remarks>
/// Layout: a 64-byte header (magic, slot count, run state, creator's pid, creator's time origin)
/// and 128-byte slots:
/// <code>
///   0  long  started      Stopwatch timestamp (CLOCK_MONOTONIC ns, comparable across processes); 0 = idle
///   8  long  finished     when the last operation ended
///  16  long  operations   operations done
///  24  int   view id      (-1: none)
///  32  long  detail       (-1: none)
///  40  24 B  thread name  ASCII
///  64  64 B  operation    ASCII, NUL-padded
/// </code>
/// The owning thread writes its slot; readers may see a torn slot, which only garbles a line of
/// diagnostics.
/// </remarks>
internal sealed unsafe class ActivityBoard : IDisposable
{
    public const int RunStateRunning = 0;
    public const int RunStateFinished = 1;

    private const long Magic = 0x53455254_53574F43; // "COWSTRES" in little-endian ASCII: the file is ours
    private const int HeaderSize = 64;
    private const int SlotSize = 128;
    private const int MaxSlots = 64;
    private const int NameOffset = 40, NameLength = 24;
    private const int OperationOffset = 64, OperationLength = 64;

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;

    private ActivityBoard(string path, MemoryMappedFile file)
    {
        Path = path;
        _file = file;
        _view = file.CreateViewAccessor(0, HeaderSize + MaxSlots * SlotSize);
        byte* pointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _base = pointer + _view.PointerOffset;
    }

    public string Path { get; }

    /// <summary>Creates the board of this process (a file under /dev/shm when it exists).</summary>
    public static ActivityBoard Create()
    {
        string directory = Directory.Exists("/dev/shm") ? "/dev/shm" : System.IO.Path.GetTempPath();
        string path = System.IO.Path.Combine(directory, $"cowengine-stress-{Environment.ProcessId}.board");
        var file = MemoryMappedFile.CreateFromFile(path, FileMode.Create, null, HeaderSize + MaxSlots * SlotSize);
        var board = new ActivityBoard(path, file);
        *(long*)board._base = Magic;
        *(int*)(board._base + 16) = Environment.ProcessId;
        *(long*)(board._base + 24) = Report.Origin;
        return board;
    }

    /// <summary>Opens another process's board (the watchdog process does this).</summary>
    public static ActivityBoard Open(string path)
    {
        var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, HeaderSize + MaxSlots * SlotSize);
        var board = new ActivityBoard(path, file);
        if (*(long*)board._base != Magic)
            throw new InvalidDataException($"{path} is not a stress activity board");
        return board;
    }

    /// <summary>The creating process's time origin, so that both processes print the same clock.</summary>
    public long Origin => *(long*)(_base + 24);

    public int SlotCount => Math.Min(Volatile.Read(ref *(int*)(_base + 8)), MaxSlots);

    public int RunState
    {
        get => Volatile.Read(ref *(int*)(_base + 12));
        set => Volatile.Write(ref *(int*)(_base + 12), value);
    }

    /// <summary>Claims a slot for a thread.</summary>
    public byte* AllocateSlot(string threadName)
    {
        int index = Interlocked.Increment(ref *(int*)(_base + 8)) - 1;
        if (index >= MaxSlots)
            throw new InvalidOperationException($"more than {MaxSlots} harness threads");
        byte* slot = Slot(index);
        WriteAscii(slot + NameOffset, NameLength, threadName);
        *(int*)(slot + 24) = -1;
        *(long*)(slot + 32) = -1;
        return slot;
    }

    public byte* Slot(int index) => _base + HeaderSize + index * SlotSize;

    public static void WriteOperation(byte* slot, string operation) => WriteAscii(slot + OperationOffset, OperationLength, operation);

    public static string ReadName(byte* slot) => ReadAscii(slot + NameOffset, NameLength);

    public static string ReadOperation(byte* slot) => ReadAscii(slot + OperationOffset, OperationLength);

    /// <summary>Copies the string without allocating; cuts it at the field's length.</summary>
    private static void WriteAscii(byte* field, int length, string text)
    {
        int count = Math.Min(text.Length, length - 1);
        for (int i = 0; i < count; i++)
            field[i] = text[i] < 128 ? (byte)text[i] : (byte)'?';
        field[count] = 0;
    }

    private static string ReadAscii(byte* field, int length)
    {
        int count = 0;
        while (count < length && field[count] != 0)
            count++;
        return Encoding.ASCII.GetString(field, count);
    }

    public void Dispose()
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }

    /// <summary>Removes the file (the creating process, at the end).</summary>
    public void Delete()
    {
        try
        {
            File.Delete(Path);
        }
        catch (IOException)
        {
        }
    }
}
