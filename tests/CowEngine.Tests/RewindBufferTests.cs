using System.Runtime.InteropServices;
using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// <see cref="CowRewindBuffer"/>: 600 frames of a state in two parts and its registers, rewound
/// frame by frame and checked bit for bit against a managed copy of every frame; a replay after a
/// rewind that ends where the first pass ended; and capacity, eviction, the future dropped by a
/// rewind, and the errors.
/// </summary>
public sealed unsafe class RewindBufferTests
{
    private const int PageSize = CowMemoryEngine.PageSize;
    private const int Frames = 600;

    [StructLayout(LayoutKind.Sequential)]
    public struct Cpu
    {
        public uint PC;
        public byte A;
        public long Cycles;
    }

    /// <summary>One frame of the model: a managed copy of both members and of the registers.</summary>
    private sealed record Frame(byte[] Ram, byte[] Vram, Cpu Cpu);

    /// <summary>
    /// A frame of a toy machine: a few hundred steps, each reading and writing memory where the
    /// registers point; the frame's bytes depend on everything before it, so a rewind that restored
    /// a wrong byte (or wrong registers) shows in every later frame.
    /// </summary>
    private static void RunFrame(Span<byte> ram, Span<byte> vram, ref Cpu cpu, int steps)
    {
        for (int i = 0; i < steps; i++)
        {
            cpu.PC = cpu.PC * 1_664_525u + 1_013_904_223u;
            int at = (int)(cpu.PC >> 8) % ram.Length;
            cpu.A = (byte)(cpu.A + ram[at] + 1);
            ram[at] = cpu.A;
            if ((cpu.PC & 15) == 0)
                vram[(int)(cpu.PC >> 12) % vram.Length] ^= cpu.A;
            cpu.Cycles += 3;
        }
    }

    [Fact]
    public void Rewind_OverEveryOneOf600Frames_IsBitIdenticalToACopyOfThatFrame()
    {
        using CowMemoryEngine engine = NewEngine();
        using var ram = new CowArray<byte>(engine, 64 * 1024);
        using CowView vram = engine.CreateRegion(4 * PageSize);
        using var buffer = new CowRewindBuffer(new CowViewGroup(ram.View, vram), Frames);
        var model = new List<Frame>(); // the last Frames frames, oldest first
        var cpu = new Cpu { PC = 1 };

        void Capture()
        {
            buffer.Capture(cpu);
            model.Add(new Frame(ram.AsSpan().ToArray(), vram.AsSpan().ToArray(), cpu));
            if (model.Count > Frames)
                model.RemoveAt(0);
        }

        void Rewind(int framesBack)
        {
            buffer.RewindTo(framesBack, out cpu);
            model.RemoveRange(model.Count - framesBack, framesBack);
            Check(model[^1], $"after RewindTo({framesBack}), {buffer.Count} frames kept");
        }

        void Check(Frame frame, string when)
        {
            Assert.Equal(frame.Cpu, cpu);
            AssertSameBytes(frame.Ram, ram.AsSpan(), $"ram {when}");
            AssertSameBytes(frame.Vram, vram.AsSpan(), $"vram {when}");
        }

        // 900 frames with two rewinds on the way (the frames after each are dropped and played again
        // differently: the machine's registers differ), so the buffer has wrapped around and evicted.
        var random = new Random(14);
        for (int f = 0; f < 900; f++)
        {
            RunFrame(ram.AsSpan(), vram.AsSpan(), ref cpu, steps: 200);
            Capture();
            if (f == 400 || f == 700)
            {
                Rewind(random.Next(1, 100));
                cpu.A ^= 0x5A; // a different future from here
            }
        }
        Assert.Equal(Frames, buffer.Count);
        Assert.Equal(Frames, model.Count);

        // Back through all 600, one frame at a time.
        Rewind(0);
        for (int i = 1; i < Frames; i++)
            Rewind(1);
        Assert.Equal(1, buffer.Count);
        Assert.Equal(2 + 2, engine.GetStats().LiveViews); // ram, vram and the oldest frame's two members
    }

    [Fact]
    public void Replay_AfterARewind_EndsBitIdenticalToTheFirstPass()
    {
        using CowMemoryEngine engine = NewEngine();
        using var ram = new CowArray<byte>(engine, 64 * 1024);
        using CowView vram = engine.CreateRegion(4 * PageSize);
        var machine = new CowViewGroup(ram.View, vram);
        using var buffer = new CowRewindBuffer(machine, Frames);
        var cpu = new Cpu { PC = 7 };
        for (int f = 0; f < Frames; f++)
        {
            RunFrame(ram.AsSpan(), vram.AsSpan(), ref cpu, steps: 100);
            buffer.Capture(cpu);
        }
        using CowGroupSnapshot end = machine.Snapshot(cpu);

        buffer.RewindTo(300, out cpu);
        Assert.Equal(Frames - 300, buffer.Count);
        Assert.NotEqual(0, machine.GetChangedPages(end).Sum(pages => pages.Count)); // really back
        for (int f = 0; f < 300; f++)
        {
            RunFrame(ram.AsSpan(), vram.AsSpan(), ref cpu, steps: 100);
            buffer.Capture(cpu);
        }

        Assert.Equal(Frames, buffer.Count);
        Assert.Equal(end.GetPayload<Cpu>(), cpu);
        Assert.All(machine.GetChangedPages(end), pages => Assert.Empty(pages));
        AssertSameBytes(end[0].AsSpan().ToArray(), ram.AsSpan(), "ram after the replay");
    }

    [Fact]
    public void Capacity_KeepsTheNewestFrames_AndARewindDropsTheFramesAfterIt()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView state = engine.CreateRegion(2 * PageSize);
        using var buffer = new CowRewindBuffer(state, capacity: 3);
        Assert.Equal(3, buffer.Capacity);
        Assert.Equal(0, buffer.Count);
        Assert.Same(state, buffer.Group[0]);

        for (int frame = 1; frame <= 5; frame++)
        {
            state.AsSpan()[0] = (byte)frame;
            buffer.Capture(frame);
        }
        Assert.Equal(3, buffer.Count);
        Assert.Equal(1 + 3, engine.GetStats().LiveViews); // frames 1 and 2 were disposed
        Assert.Equal([5, 4, 3], Enumerable.Range(0, 3).Select(i => buffer.GetFrame(i).GetPayload<int>()).ToArray());
        Assert.Equal(3, buffer.GetFrame(2)[0].AsSpan()[0]);

        state.AsSpan()[PageSize] = 9; // page 1 differs from the newest frame
        Assert.Equal([1L], buffer.Group.GetChangedPages(buffer.GetFrame(0))[0].ToArray());

        buffer.RewindTo(1, out int payload); // to frame 4: frame 5 is dropped
        Assert.Equal(4, payload);
        Assert.Equal(4, state.AsSpan()[0]);
        Assert.Equal(0, state.AsSpan()[PageSize]);
        Assert.Equal(2, buffer.Count);
        Assert.Equal(1 + 2, engine.GetStats().LiveViews);

        state.AsSpan()[0] = 6;
        buffer.Capture(6); // follows frame 4
        Assert.Equal([6, 4, 3], Enumerable.Range(0, 3).Select(i => buffer.GetFrame(i).GetPayload<int>()).ToArray());
        buffer.RewindTo(0); // the newest frame itself: nothing dropped
        Assert.Equal(3, buffer.Count);

        buffer.Clear();
        Assert.Equal(0, buffer.Count);
        Assert.Equal(1, engine.GetStats().LiveViews);
        Assert.Equal(6, state.AsSpan()[0]); // the state is not the buffer's
        buffer.Capture();
        Assert.Equal(1, buffer.Count);
        Assert.False(buffer.GetFrame(0).HasPayload);

        buffer.Dispose();
        Assert.Equal(1, engine.GetStats().LiveViews);
        Assert.False(state.IsDisposed);
    }

    [Fact]
    public void BadArguments_AndDisposedParts_AreRefusedWithTheReason()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView state = engine.CreateRegion(PageSize);
        Assert.Throws<ArgumentOutOfRangeException>(() => new CowRewindBuffer(state, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new CowRewindBuffer(state, -1));
        Assert.Throws<ArgumentNullException>(() => new CowRewindBuffer((CowView)null!, 1));
        Assert.Throws<ArgumentNullException>(() => new CowRewindBuffer((CowViewGroup)null!, 1));

        var buffer = new CowRewindBuffer(state, 4);
        Assert.Contains("no frame yet", Assert.Throws<ArgumentOutOfRangeException>(() => buffer.RewindTo(0)).Message);
        state.AsSpan()[0] = 1;
        buffer.Capture(new Cpu { PC = 1 });
        state.AsSpan()[0] = 2;
        buffer.Capture(new Cpu { PC = 2 });
        Assert.Contains("from 0 (the newest) to 1", Assert.Throws<ArgumentOutOfRangeException>(() => buffer.RewindTo(2)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.RewindTo(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.GetFrame(2));

        // The payload's type is checked before anything changes.
        state.AsSpan()[0] = 3;
        Assert.Throws<InvalidOperationException>(() => buffer.RewindTo(1, out long _));
        Assert.Equal(2, buffer.Count);
        Assert.Equal(3, state.AsSpan()[0]);
        buffer.Capture(); // no payload
        Assert.Contains("no payload", Assert.Throws<InvalidOperationException>(() => buffer.RewindTo(0, out Cpu _)).Message);
        Assert.Equal(3, buffer.Count);

        buffer.RewindTo(2, out Cpu cpu);
        Assert.Equal(1u, cpu.PC);
        Assert.Equal(1, state.AsSpan()[0]);

        buffer.Dispose();
        buffer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => buffer.Capture());
        Assert.Throws<ObjectDisposedException>(() => buffer.Capture(cpu));
        Assert.Throws<ObjectDisposedException>(() => buffer.RewindTo(0));
        Assert.Throws<ObjectDisposedException>(() => buffer.GetFrame(0));
        Assert.Throws<ObjectDisposedException>(() => buffer.Clear());
        Assert.Equal(1, engine.GetStats().LiveViews);

        CowView gone = engine.CreateRegion(PageSize);
        using var orphan = new CowRewindBuffer(gone, 2);
        gone.Dispose();
        Assert.Throws<ObjectDisposedException>(() => orphan.Capture());
        Assert.Equal(0, orphan.Count);
    }

    /// <summary>
    /// A capture the mapping budget refuses drops nothing: each untouched frame costs two mappings
    /// (its range and a gap), none of them evictable, so a budget of 24 runs out after about ten.
    /// </summary>
    [Fact]
    public void Capture_RefusedByTheMappingBudget_DropsNoFrame()
    {
        using CowMemoryEngine engine = NewEngine(mappingBudget: 24);
        using CowView state = engine.CreateRegion(PageSize);
        using var buffer = new CowRewindBuffer(state, capacity: 100);
        CowMappingBudgetExceededException? refused = null;
        for (int frame = 1; frame <= 100 && refused is null; frame++)
        {
            state.AsSpan()[0] = (byte)frame;
            int before = buffer.Count;
            try
            {
                buffer.Capture(frame);
            }
            catch (CowMappingBudgetExceededException e)
            {
                refused = e;
                Assert.Equal(before, buffer.Count);
            }
        }
        Assert.NotNull(refused);
        int kept = buffer.Count;
        Assert.InRange(kept, 2, 99);
        Assert.Equal(1 + kept, engine.GetStats().LiveViews);
        Assert.Equal(1, buffer.GetFrame(kept - 1).GetPayload<int>()); // the oldest is still frame 1
        buffer.RewindTo(kept - 1, out int payload);
        Assert.Equal(1, payload);
        Assert.Equal(1, state.AsSpan()[0]);
        Assert.Equal(1, buffer.Count);
    }

    private static void AssertSameBytes(byte[] expected, ReadOnlySpan<byte> actual, string what)
    {
        if (!actual.SequenceEqual(expected))
        {
            int at = actual.CommonPrefixLength(expected);
            Assert.Fail($"{what}: byte {at} (page {at / PageSize}) is {actual[at]}, the frame's copy says {expected[at]}");
        }
    }
}
