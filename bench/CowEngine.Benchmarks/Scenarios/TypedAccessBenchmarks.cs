using BenchmarkDotNet.Attributes;
using CowEngine.Benchmarks.Infrastructure;

namespace CowEngine.Benchmarks.Scenarios;

/// <summary>
/// Scenario 10 (issue 14 item 3): typed access against a raw pointer, over 64 KiB of memory in a
/// view (written once before the loop, no snapshot: no access faults, so this measures the access
/// path alone). Two workloads (<see cref="Workload"/>): LoadStore = one load at one address and one
/// store at another per step, the stored value depending on the loaded one (addresses drawn up
/// front): nothing but memory accesses; Interpreter = an emulator's step: fetch an opcode and two
/// operand bytes at the program counter, then a load or a store at the address they form (four
/// accesses per step, opcodes taken from the random memory, so its branches are as unpredictable as
/// an interpreter's). Four ways to hold the memory, the way an emulator's class does:
/// Pointer (the baseline) = a <c>byte*</c> in a field of the machine's class, used through the
/// field at every access; CowArray = a <see cref="CowArray{T}"/> of bytes in that field, used
/// through its bounds-checked indexer at every access; CowArrayLocal = the same array copied from
/// the field into a local at the start of the loop; SpanLocal = <c>CowArray.AsSpan()</c> taken into
/// a local at the start of the loop (bounds-checked span indexing). Mean is per step
/// (OperationsPerInvoke). The *OverPointer columns divide medians by Pointer's (same workload).
/// Goal: typed access within 3% of the pointer.
/// </summary>
[Config(typeof(Config))]
public unsafe class TypedAccessBenchmarks
{
    private const int MemoryBytes = 64 * 1024;
    private const int Steps = 1 << 16;

    private sealed class Config() : LoopScenarioConfig(iterations: 15, warmups: 3, iterationMilliseconds: 100,
        new MedianRatioColumn("CowArrayOverPointer", "CowArray median / Pointer median", nameof(CowArray), nameof(Pointer), format: "0.###"),
        new MedianRatioColumn("CowArrayLocalOverPointer", "CowArrayLocal median / Pointer median", nameof(CowArrayLocal), nameof(Pointer), format: "0.###"),
        new MedianRatioColumn("SpanLocalOverPointer", "SpanLocal median / Pointer median", nameof(SpanLocal), nameof(Pointer), format: "0.###"));

    /// <summary>An emulator's state as a class holds it: memory in a field.</summary>
    private sealed class Machine
    {
        public byte* RawMemory;
        public CowArray<byte>? TypedMemory;
        public byte Accumulator;
    }

    [Params("LoadStore", "Interpreter")]
    public string Workload { get; set; } = "LoadStore";

    private readonly Machine _machine = new();
    private ushort[] _addresses = [];
    private CowMemoryEngine? _engine;
    private CowView? _rawView;

    [GlobalSetup]
    public void Setup()
    {
        _engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 16L * 1024 * 1024 });
        _rawView = _engine.CreateRegion(MemoryBytes);
        _machine.RawMemory = _rawView.Pointer;
        _machine.TypedMemory = new CowArray<byte>(_engine, MemoryBytes);
        var random = new Random(14);
        _addresses = new ushort[Steps * 2];
        for (int i = 0; i < _addresses.Length; i++)
            _addresses[i] = (ushort)random.Next(MemoryBytes);
        random.NextBytes(_rawView.AsSpan());
        _rawView.AsSpan().CopyTo(_machine.TypedMemory.AsSpan());
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _machine.TypedMemory?.Dispose();
        _rawView?.Dispose();
        _engine?.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Steps)]
    public byte Pointer() => Workload == "LoadStore" ? LoadStorePointer(_machine, _addresses) : InterpretPointer(_machine);

    [Benchmark(OperationsPerInvoke = Steps)]
    public byte CowArray() => Workload == "LoadStore" ? LoadStoreCowArray(_machine, _addresses) : InterpretCowArray(_machine);

    [Benchmark(OperationsPerInvoke = Steps)]
    public byte CowArrayLocal() => Workload == "LoadStore" ? LoadStoreCowArrayLocal(_machine, _addresses) : InterpretCowArrayLocal(_machine);

    [Benchmark(OperationsPerInvoke = Steps)]
    public byte SpanLocal() => Workload == "LoadStore" ? LoadStoreSpanLocal(_machine, _addresses) : InterpretSpanLocal(_machine);

    // One method per way and workload, written out: a shared generic helper would measure what the
    // JIT makes of the helper, not of the access.

    private static byte LoadStorePointer(Machine machine, ushort[] addresses)
    {
        for (int i = 0; i < addresses.Length; i += 2)
        {
            machine.Accumulator += machine.RawMemory[addresses[i]];
            machine.RawMemory[addresses[i + 1]] = machine.Accumulator;
        }
        return machine.Accumulator;
    }

    private static byte LoadStoreCowArray(Machine machine, ushort[] addresses)
    {
        for (int i = 0; i < addresses.Length; i += 2)
        {
            machine.Accumulator += machine.TypedMemory![addresses[i]];
            machine.TypedMemory![addresses[i + 1]] = machine.Accumulator;
        }
        return machine.Accumulator;
    }

    private static byte LoadStoreCowArrayLocal(Machine machine, ushort[] addresses)
    {
        CowArray<byte> memory = machine.TypedMemory!;
        for (int i = 0; i < addresses.Length; i += 2)
        {
            machine.Accumulator += memory[addresses[i]];
            memory[addresses[i + 1]] = machine.Accumulator;
        }
        return machine.Accumulator;
    }

    private static byte LoadStoreSpanLocal(Machine machine, ushort[] addresses)
    {
        Span<byte> memory = machine.TypedMemory!.AsSpan();
        for (int i = 0; i < addresses.Length; i += 2)
        {
            machine.Accumulator += memory[addresses[i]];
            memory[addresses[i + 1]] = machine.Accumulator;
        }
        return machine.Accumulator;
    }

    private static byte InterpretPointer(Machine machine)
    {
        int pc = 0;
        byte accumulator = machine.Accumulator;
        for (int step = 0; step < Steps; step++)
        {
            byte opcode = machine.RawMemory[pc];
            int address = machine.RawMemory[(ushort)(pc + 1)] | (machine.RawMemory[(ushort)(pc + 2)] << 8);
            switch (opcode & 3)
            {
                case 0: accumulator += machine.RawMemory[address]; break;
                case 1: machine.RawMemory[address] = accumulator; break;
                case 2: accumulator ^= machine.RawMemory[address]; break;
                default: machine.RawMemory[address] = (byte)(accumulator + opcode); break;
            }
            pc = (ushort)(pc + 3);
        }
        machine.Accumulator = accumulator;
        return accumulator;
    }

    private static byte InterpretCowArray(Machine machine)
    {
        int pc = 0;
        byte accumulator = machine.Accumulator;
        for (int step = 0; step < Steps; step++)
        {
            byte opcode = machine.TypedMemory![pc];
            int address = machine.TypedMemory![(ushort)(pc + 1)] | (machine.TypedMemory![(ushort)(pc + 2)] << 8);
            switch (opcode & 3)
            {
                case 0: accumulator += machine.TypedMemory![address]; break;
                case 1: machine.TypedMemory![address] = accumulator; break;
                case 2: accumulator ^= machine.TypedMemory![address]; break;
                default: machine.TypedMemory![address] = (byte)(accumulator + opcode); break;
            }
            pc = (ushort)(pc + 3);
        }
        machine.Accumulator = accumulator;
        return accumulator;
    }

    private static byte InterpretCowArrayLocal(Machine machine)
    {
        CowArray<byte> memory = machine.TypedMemory!;
        int pc = 0;
        byte accumulator = machine.Accumulator;
        for (int step = 0; step < Steps; step++)
        {
            byte opcode = memory[pc];
            int address = memory[(ushort)(pc + 1)] | (memory[(ushort)(pc + 2)] << 8);
            switch (opcode & 3)
            {
                case 0: accumulator += memory[address]; break;
                case 1: memory[address] = accumulator; break;
                case 2: accumulator ^= memory[address]; break;
                default: memory[address] = (byte)(accumulator + opcode); break;
            }
            pc = (ushort)(pc + 3);
        }
        machine.Accumulator = accumulator;
        return accumulator;
    }

    private static byte InterpretSpanLocal(Machine machine)
    {
        Span<byte> memory = machine.TypedMemory!.AsSpan();
        int pc = 0;
        byte accumulator = machine.Accumulator;
        for (int step = 0; step < Steps; step++)
        {
            byte opcode = memory[pc];
            int address = memory[(ushort)(pc + 1)] | (memory[(ushort)(pc + 2)] << 8);
            switch (opcode & 3)
            {
                case 0: accumulator += memory[address]; break;
                case 1: memory[address] = accumulator; break;
                case 2: accumulator ^= memory[address]; break;
                default: memory[address] = (byte)(accumulator + opcode); break;
            }
            pc = (ushort)(pc + 3);
        }
        machine.Accumulator = accumulator;
        return accumulator;
    }
}
