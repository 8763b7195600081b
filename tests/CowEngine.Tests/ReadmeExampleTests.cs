using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// The README's example of <see cref="CowViewGroup"/> and <see cref="CowRewindBuffer"/> is code that
/// compiles and does what its comments say: the code block after the marker comment in README.md must
/// be, line for line (leading and trailing blanks aside), the code between the README markers below,
/// which this test runs and checks.
/// </summary>
public sealed class ReadmeExampleTests
{
    private const string Marker = "<!-- compiled and run by tests/CowEngine.Tests/ReadmeExampleTests.cs -->";

    /// <summary>The README's `Registers`: "any unmanaged struct such as ...".</summary>
    public struct Registers
    {
        public ushort PC;
        public byte A, X, Y;
    }

    [Fact]
    public void GroupAndRewindExample_InTheReadme_IsTheCodeThisTestRuns()
    {
        string root = RepositoryRoot();
        string[] readme = CodeBlockAfter(File.ReadAllLines(Path.Combine(root, "README.md")), Marker);
        string[] here = Between(File.ReadAllLines(Path.Combine(root, "tests", "CowEngine.Tests", "ReadmeExampleTests.cs")),
            "// README: begin", "// README: end");
        Assert.True(readme.Length > 10, $"README.md has no csharp block after {Marker}");
        Assert.Equal(readme, here);
    }

    [Fact]
    public void GroupAndRewindExample_DoesWhatItsCommentsSay()
    {
        using CowMemoryEngine engine = NewEngine();
        // README: begin
        using var ram = new CowArray<byte>(engine, 64 * 1024);          // main RAM, typed
        using var vram = engine.CreateRegion(16 * 1024);                 // video RAM
        var machine = new CowViewGroup(ram.View, vram);                  // views of one engine
        var cpu = new Registers { PC = 0x0100 };

        using (CowGroupSnapshot saved = machine.Snapshot(cpu))           // one cut of both, registers copied
        {
            ram[0x10] = 42;
            cpu.PC = 0x0200;
            Console.WriteLine(machine.GetChangedPages(saved)[0].Count);  // 1: one page of ram differs
            machine.RestoreTo(saved, out cpu);                           // both back, PC = 0x0100 again
        }

        using var rewind = new CowRewindBuffer(machine, capacity: 600);  // the last 600 frames
        for (int frame = 0; frame < 1000; frame++)
        {
            ram[frame % 4096] ^= 1;                                      // ... run one frame ...
            cpu.PC++;
            rewind.Capture(cpu);                                         // once 600 are kept, the oldest goes
        }
        rewind.RewindTo(60, out cpu);                                    // 60 frames back
        Console.WriteLine(rewind.Count);                                 // 540: the 60 after it were dropped
        // README: end

        Assert.Equal(540, rewind.Count);
        Assert.Equal(0x0100 + 940, cpu.PC); // the state after frame 939 (frames 0..999 were run)
        for (int i = 0; i < 4096; i++)
            Assert.Equal(i < 940 ? 1 : 0, ram[i]); // frames 0..939 each flipped their byte once; the 42 was rolled back
    }

    /// <summary>The lines of the ```csharp block that follows <paramref name="marker"/>.</summary>
    private static string[] CodeBlockAfter(string[] lines, string marker)
    {
        int at = Array.FindIndex(lines, line => line.Trim() == marker);
        Assert.True(at >= 0, $"README.md lacks the marker {marker}");
        Assert.Equal("```csharp", lines[at + 1].Trim());
        int end = Array.FindIndex(lines, at + 2, line => line.Trim() == "```");
        return lines[(at + 2)..end].Select(line => line.Trim()).ToArray();
    }

    private static string[] Between(string[] lines, string begin, string end)
    {
        int first = Array.FindIndex(lines, line => line.Trim() == begin);
        int last = Array.FindIndex(lines, first + 1, line => line.Trim() == end);
        return lines[(first + 1)..last].Select(line => line.Trim()).ToArray();
    }

    private static string RepositoryRoot()
    {
        for (DirectoryInfo? directory = new(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
            if (File.Exists(Path.Combine(directory.FullName, "CowEngine.sln")))
                return directory.FullName;
        throw new InvalidOperationException($"No CowEngine.sln above {AppContext.BaseDirectory}");
    }
}
