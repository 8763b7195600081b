using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace CowEngine.TestSupport;

/// <summary>
/// The shim's test-only failure injection (native/include/cow_test_inject.h): makes the system calls
/// of native/src/cow_os.c fail on demand - the nth call of a kind, or a seeded rate - with a chosen
/// errno, inside the fault handler, outside it, or both, and counts what it injected.
/// </summary>
/// <remarks>
/// The setting is process-wide (one libcowengine.so per process): a test that arms it must run
/// where no other test's engine works at the same time (a child process, or a test collection of its
/// own), and must <see cref="Reset"/> afterwards. Thread-safe.
/// </remarks>
public static partial class FailureInjection
{
    private const string Library = "cowengine";

    public const int EPERM = 1;
    public const int EINTR = 4;
    public const int EIO = 5;
    public const int EAGAIN = 11;
    public const int ENOMEM = 12;
    public const int ENOSPC = 28;

    /// <summary>A rate of <see cref="Million"/> per million: every call.</summary>
    public const uint Million = 1_000_000;

    /// <summary>The kinds of call, one per system call of cow_os.c (cow_test_inject.h's COW_INJECT_*).</summary>
    public enum Kind : uint
    {
        MemfdCreate = 0,
        Ftruncate = 1,
        Close = 2,
        Reserve = 3,
        AllocateTable = 4,
        Release = 5,
        MapPool = 6,
        Fstat = 7,
        MapSlots = 8,
        Protect = 9,
        ReserveFixed = 10,
        Punch = 11,
        Mincore = 12,
        Userfaultfd = 13,
        UffdApi = 14,
        UffdRegister = 15,
        UffdWriteprotect = 16,
        MapZero = 17,
        SeekData = 18,
    }

    /// <summary>Where a call is made: inside the engine's fault handler, or anywhere else.</summary>
    [Flags]
    public enum Context : uint
    {
        None = 0,
        Api = 1,
        Fault = 2,
        Anywhere = Api | Fault,
    }

    public static IReadOnlyList<Kind> AllKinds { get; } = Enum.GetValues<Kind>();

    /// <summary>
    /// Makes calls of <paramref name="kind"/> in <paramref name="contexts"/> fail with
    /// <paramref name="errno"/>: with <paramref name="nth"/> 0, each with probability
    /// <paramref name="ratePerMillion"/>/1,000,000; with <paramref name="nth"/> N, none before the Nth,
    /// the Nth, and each later one with that probability. Draws come from <paramref name="seed"/> and
    /// the call's number. Resets the kind's counts.
    /// </summary>
    public static void Configure(Kind kind, Context contexts, ulong nth, uint ratePerMillion, int errno, ulong seed = 0)
    {
        int error = NativeConfigure((uint)kind, (uint)contexts, nth, ratePerMillion, errno, seed);
        if (error != 0)
            throw new ArgumentException($"cow_test_inject_configure({kind}, {contexts}, {nth}, {ratePerMillion}, {errno}) refused with errno {error}");
    }

    /// <summary>Fails only the <paramref name="nth"/> call (1: the next one).</summary>
    public static void FailNth(Kind kind, Context contexts, ulong nth, int errno) => Configure(kind, contexts, nth, 0, errno);

    /// <summary>Fails every call from now on.</summary>
    public static void FailEvery(Kind kind, Context contexts, int errno) => Configure(kind, contexts, 0, Million, errno);

    public static void Disarm(Kind kind) => NativeConfigure((uint)kind, 0, 0, 0, 0, 0);

    /// <summary>Disarms every kind and zeroes every count.</summary>
    public static void Reset() => NativeReset();

    /// <summary>
    /// No call fails (and none is counted) until the returned scope is disposed: for checks between
    /// operations (statistics, drains, kernel mapping counts) that must see the engine's real state.
    /// </summary>
    public static IDisposable Suspend()
    {
        NativeSuspend(1);
        return new Resumer();
    }

    public static ulong Injected(Kind kind, Context context) => NativeCount((uint)kind, (uint)context);

    public static ulong Calls(Kind kind, Context context) => NativeCalls((uint)kind, (uint)context);

    public static string Name(Kind kind) => Marshal.PtrToStringUTF8(NativeKindName((uint)kind)) ?? kind.ToString();

    /// <summary>One line per kind and context with calls seen: "map_slots in api: 1234 calls, 61 failed".</summary>
    public static string Describe()
    {
        var text = new StringBuilder();
        foreach (Kind kind in AllKinds)
        {
            foreach (Context context in new[] { Context.Api, Context.Fault })
            {
                ulong calls = Calls(kind, context);
                if (calls != 0)
                    text.AppendLine(CultureInfo.InvariantCulture, $"{Name(kind)} in {(context == Context.Api ? "api" : "fault")}: {calls} calls, {Injected(kind, context)} failed");
            }
        }
        return text.Length == 0 ? "no call was seen while armed" : text.ToString().TrimEnd();
    }

    private sealed class Resumer : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed)
                return;
            _disposed = true;
            NativeSuspend(0);
        }
    }

    [LibraryImport(Library, EntryPoint = "cow_test_inject_configure")]
    private static partial int NativeConfigure(uint kind, uint contexts, ulong nth, uint ratePerMillion, int error, ulong seed);

    [LibraryImport(Library, EntryPoint = "cow_test_inject_reset")]
    private static partial void NativeReset();

    [LibraryImport(Library, EntryPoint = "cow_test_inject_suspend")]
    private static partial void NativeSuspend(int suspended);

    [LibraryImport(Library, EntryPoint = "cow_test_inject_count")]
    private static partial ulong NativeCount(uint kind, uint context);

    [LibraryImport(Library, EntryPoint = "cow_test_inject_calls")]
    private static partial ulong NativeCalls(uint kind, uint context);

    [LibraryImport(Library, EntryPoint = "cow_test_inject_kind_name")]
    private static partial nint NativeKindName(uint kind);
}
