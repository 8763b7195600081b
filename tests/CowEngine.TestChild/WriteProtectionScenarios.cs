using System.Runtime.InteropServices;
using CowEngine;
using Microsoft.Extensions.Logging;

namespace CowEngine.TestChild;

/// <summary>Scenarios about the choice of write protection and the engine's SIGBUS handler.</summary>
internal static unsafe partial class Program
{
    /// <summary>
    /// userfaultfd refused by a seccomp filter (as some container runtimes do): asking for it throws
    /// PlatformNotSupportedException naming the cause; Automatic falls back to mprotect, logs why, and
    /// copy-on-write works.
    /// </summary>
    private static int UserfaultfdRefused()
    {
        int error = Seccomp.RefuseUserfaultfd();
        if (error != 0)
        {
            Progress($"UNEXPECTED: the seccomp filter could not be installed (errno {error})");
            return 3;
        }
        try
        {
            using var refused = new CowMemoryEngine(new CowEngineOptions { WriteProtection = CowWriteProtection.Userfaultfd });
            Progress($"UNEXPECTED: an engine was created with {refused.WriteProtection}");
            return 0;
        }
        catch (PlatformNotSupportedException e)
        {
            Progress($"explicit userfaultfd: {e.GetType().Name}: {e.Message}");
        }
        var log = new LinesLogger();
        using var engine = new CowMemoryEngine(new CowEngineOptions { WriteProtection = CowWriteProtection.Automatic, LoggerFactory = log });
        Progress($"automatic chose: {engine.WriteProtection}");
        foreach (string line in log.Lines)
            Progress($"log: {line}");
        using CowView region = engine.CreateRegion(4 * PageSize);
        region.AsSpan().Fill(1);
        using CowView snapshot = region.Snapshot();
        region.AsSpan().Fill(2);
        Progress($"copy-on-write ok: {AllBytesAre(region, 2) && AllBytesAre(snapshot, 1)}");
        return 0;
    }

    /// <summary>
    /// A SIGBUS that is not the engine's - a read past the end of a truncated file mapping, which
    /// carries the same si_code as a write-protect fault - must reach the runtime exactly as it would
    /// without the engine: `argument` says whether a userfaultfd engine (and its SIGBUS handler)
    /// exists first. The test compares the two runs.
    /// </summary>
    private static int SigbusElsewhere(bool withEngine)
    {
        CowMemoryEngine? engine = null;
        if (withEngine)
        {
            engine = new CowMemoryEngine(new CowEngineOptions { WriteProtection = CowWriteProtection.Userfaultfd });
            using CowView region = engine.CreateRegion(PageSize);
            using CowView snapshot = region.Snapshot();
            region.Pointer[0] = 1; // one write-protect fault through the engine's SIGBUS handler
            Progress($"engine: {engine.WriteProtection}, faults resolved: {engine.GetStats().WriteFaults}");
        }
        string path = Path.GetTempFileName();
        File.WriteAllBytes(path, new byte[2 * PageSize]);
        int fd = Files.Open(path, 2 /* O_RDWR */);
        byte* mapped = (byte*)Files.Mmap(0, 2 * PageSize, 1 /* PROT_READ */, 1 /* MAP_SHARED */, fd, 0);
        Files.Ftruncate(fd, 0);
        File.Delete(path);
        Progress("reading past the end of a truncated file mapping");
        byte value = Volatile.Read(ref mapped[PageSize]);
        Progress($"UNEXPECTED: the read returned {value}");
        GC.KeepAlive(engine);
        return 0;
    }

    /// <summary>Collects what the engine logs.</summary>
    private sealed class LinesLogger : ILoggerFactory, ILogger
    {
        public List<string> Lines { get; } = [];

        public ILogger CreateLogger(string categoryName) => this;

        public void AddProvider(ILoggerProvider provider) { }

        public void Dispose() { }

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (Lines)
                Lines.Add($"{logLevel}: {formatter(state, exception)}");
        }
    }

    private static partial class Seccomp
    {
        private const int PrSetNoNewPrivs = 38, PrSetSeccomp = 22, SeccompModeFilter = 2;
        private const uint AuditArchX8664 = 0xC000003E, SysUserfaultfd = 323;
        private const uint RetErrno = 0x00050000, RetAllow = 0x7FFF0000, Eperm = 1;

        [StructLayout(LayoutKind.Sequential)]
        private struct Instruction(ushort code, byte jumpTrue, byte jumpFalse, uint k)
        {
            public ushort Code = code;
            public byte JumpTrue = jumpTrue;
            public byte JumpFalse = jumpFalse;
            public uint K = k;
        }

        [StructLayout(LayoutKind.Sequential)]
        private struct Program
        {
            public ushort Length;
            public Instruction* Filter;
        }

        [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
        private static partial int Prctl(int option, nint a2, nint a3, nint a4, nint a5);

        /// <summary>This thread's userfaultfd(2) fails with EPERM from now on; 0 or an errno.</summary>
        public static int RefuseUserfaultfd()
        {
            const ushort LoadWordAbsolute = 0x20, JumpIfEqual = 0x15, Return = 0x06;
            Instruction* filter = stackalloc Instruction[]
            {
                new(LoadWordAbsolute, 0, 0, 4),                 // the architecture
                new(JumpIfEqual, 0, 3, AuditArchX8664),         // not x86-64: allow
                new(LoadWordAbsolute, 0, 0, 0),                 // the system call number
                new(JumpIfEqual, 0, 1, SysUserfaultfd),
                new(Return, 0, 0, RetErrno | Eperm),
                new(Return, 0, 0, RetAllow),
            };
            var program = new Program { Length = 6, Filter = filter };
            if (Prctl(PrSetNoNewPrivs, 1, 0, 0, 0) != 0 || Prctl(PrSetSeccomp, SeccompModeFilter, (nint)(&program), 0, 0) != 0)
                return Marshal.GetLastPInvokeError();
            return 0;
        }
    }

    private static partial class Files
    {
        [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8)]
        public static partial int Open(string path, int flags);

        [LibraryImport("libc", EntryPoint = "mmap")]
        public static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

        [LibraryImport("libc", EntryPoint = "ftruncate")]
        public static partial int Ftruncate(int fd, nint length);
    }
}
