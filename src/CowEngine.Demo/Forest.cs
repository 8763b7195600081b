using System.Runtime.InteropServices;
using CowEngine;

namespace CowEngine.Demo;

/// <summary>
/// The demo's world: a forest grid and a spreading fire, laid out in one block of memory that the
/// forest does not own (a copy-on-write region, or plain memory), so that one snapshot or one copy
/// captures all of it (the counters and the fire front included).
/// </summary>
/// <remarks>
/// Layout: a 4 KiB header (<see cref="State"/>), the grid (one byte per cell, row-major), then two
/// buffers of burning-cell indices (this step's front and the next). Wind blows from the west:
/// fire spreads east most easily. Every random choice is a hash of (cell, step, direction), so a
/// future depends only on the state it starts from, whatever memory holds it.
/// </remarks>
internal sealed unsafe class Forest
{
    public const int Width = 8192;
    public const int Height = 8192;
    private const int FrontCapacity = 1 << 20;
    private const long GridOffset = 4096;
    private const long FrontOffset = GridOffset + (long)Width * Height;
    private const long TotalBytes = FrontOffset + 2L * FrontCapacity * sizeof(uint);

    /// <summary>The bytes the world takes, in whole pages.</summary>
    public const long Bytes = (TotalBytes + CowMemoryEngine.PageSize - 1) / CowMemoryEngine.PageSize * CowMemoryEngine.PageSize;

    /// <summary>The pages the world takes.</summary>
    public const long Pages = Bytes / CowMemoryEngine.PageSize;

    private const byte Ground = 0, Tree = 1, Fire = 2, Ash = 3, Wet = 4;
    private const double TreeDensity = 0.75;
    private const int IgnitionLength = 40;   // a lightning strike sets a north-south line this long alight
    private const int DropSize = 64;         // a water drop wets a square this wide

    // Chance that fire crosses to a tree next door, per direction: east, west, south, north.
    private static readonly uint[] SpreadThreshold = [Chance(0.95), Chance(0.30), Chance(0.70), Chance(0.70)];
    private static readonly int[] DeltaX = [1, -1, 0, 0];
    private static readonly int[] DeltaY = [0, 0, 1, -1];

    private readonly byte* _memory;

    [StructLayout(LayoutKind.Sequential)]
    private struct State
    {
        public long Step;
        public long Burnt;
        public long Wetted;
        public int FrontLength;
        public int FrontBuffer;
    }

    /// <summary>A world in <paramref name="memory"/>: <paramref name="length"/> zero-filled bytes, at least <see cref="Bytes"/>, that the caller owns.</summary>
    public Forest(byte* memory, long length)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, Bytes);
        _memory = memory;
    }

    /// <summary>A world in the memory of <paramref name="memory"/>.</summary>
    public Forest(Branching memory)
        : this(memory.State, memory.Length)
    {
    }

    /// <summary>Trees burnt so far.</summary>
    public long Burnt => Header->Burnt;

    /// <summary>Trees and burning cells wetted by water drops so far.</summary>
    public long Wetted => Header->Wetted;

    /// <summary>Cells burning now.</summary>
    public int Burning => Header->FrontLength;

    private State* Header => (State*)_memory;

    private byte* Grid => _memory + GridOffset;

    private uint* Front(int buffer) => (uint*)(_memory + FrontOffset) + (long)buffer * FrontCapacity;

    /// <summary>Plants trees at random (deterministically) over the whole grid.</summary>
    public void Plant()
    {
        byte* grid = Grid;
        uint threshold = Chance(TreeDensity);
        Parallel.For(0, Height, y =>
        {
            byte* row = grid + (long)y * Width;
            for (int x = 0; x < Width; x++)
                row[x] = Hash((uint)(y * Width + x), 0x9E37u) < threshold ? Tree : Ground;
        });
    }

    /// <summary>Lightning: sets a short north-south line alight somewhere in the western half (where depends on <paramref name="strike"/>).</summary>
    public void Strike(int strike)
    {
        State* header = Header;
        uint* front = Front(header->FrontBuffer);
        int x = Width / 8 + (int)(Hash((uint)strike, 0xA11CEu) % (Width * 3 / 8));
        int top = Height / 8 + (int)(Hash((uint)strike, 0xB0B5u) % (Height * 3 / 4));
        for (int y = top; y < top + IgnitionLength; y++)
        {
            uint cell = (uint)(y * Width + x);
            if (Grid[cell] != Tree)
                continue;
            if (header->FrontLength == FrontCapacity)
                throw new InvalidOperationException("The fire front outgrew its buffer.");
            Grid[cell] = Fire;
            front[header->FrontLength++] = cell;
            header->Burnt++;
        }
    }

    /// <summary>
    /// Plan 0 does nothing; plans 1-4 drop water on a <see cref="DropSize"/>-cell square centred on the
    /// northernmost, easternmost, southernmost or westernmost burning cell: its trees can no longer
    /// burn and its fire goes out.
    /// </summary>
    public void DropWater(int plan)
    {
        if (plan == 0 || Header->FrontLength == 0)
            return;
        uint* front = Front(Header->FrontBuffer);
        uint target = front[0];
        for (int i = 1; i < Header->FrontLength; i++)
        {
            uint cell = front[i];
            bool further = plan switch
            {
                1 => cell / Width < target / Width,
                2 => cell % Width > target % Width,
                3 => cell / Width > target / Width,
                4 => cell % Width < target % Width,
                _ => throw new ArgumentOutOfRangeException(nameof(plan)),
            };
            if (further)
                target = cell;
        }
        int centreX = (int)(target % Width), centreY = (int)(target / Width);
        for (int y = Math.Max(centreY - DropSize / 2, 0); y < Math.Min(centreY + DropSize / 2, Height); y++)
        {
            byte* row = Grid + (long)y * Width;
            for (int x = Math.Max(centreX - DropSize / 2, 0); x < Math.Min(centreX + DropSize / 2, Width); x++)
            {
                if (row[x] is Tree or Fire)
                {
                    row[x] = Wet;
                    Header->Wetted++;
                }
            }
        }
    }

    /// <summary>One step: every burning cell may ignite its four neighbours, then turns to ash.</summary>
    public void Step()
    {
        State* header = Header;
        byte* grid = Grid;
        uint* current = Front(header->FrontBuffer);
        uint* next = Front(1 - header->FrontBuffer);
        int count = header->FrontLength, nextCount = 0;
        uint step = (uint)header->Step;
        for (int i = 0; i < count; i++)
        {
            uint cell = current[i];
            if (grid[cell] != Fire)
                continue; // put out by water
            int x = (int)(cell % Width), y = (int)(cell / Width);
            for (int direction = 0; direction < 4; direction++)
            {
                int nx = x + DeltaX[direction], ny = y + DeltaY[direction];
                if ((uint)nx >= Width || (uint)ny >= Height)
                    continue;
                uint neighbour = (uint)(ny * Width + nx);
                if (grid[neighbour] != Tree || Hash(neighbour, step * 4 + (uint)direction) >= SpreadThreshold[direction])
                    continue;
                if (nextCount == FrontCapacity)
                    throw new InvalidOperationException("The fire front outgrew its buffer.");
                grid[neighbour] = Fire;
                next[nextCount++] = neighbour;
            }
            grid[cell] = Ash;
        }
        header->Burnt += nextCount;
        header->FrontLength = nextCount;
        header->FrontBuffer = 1 - header->FrontBuffer;
        header->Step++;
    }

    private static uint Chance(double probability) => (uint)(probability * uint.MaxValue);

    /// <summary>A 32-bit integer hash (lowbias32) of a cell and a salt.</summary>
    private static uint Hash(uint cell, uint salt)
    {
        uint h = cell * 0x9E3779B1u ^ salt * 0x85EBCA77u;
        h ^= h >> 16;
        h *= 0x7FEB352Du;
        h ^= h >> 15;
        h *= 0x846CA68Bu;
        h ^= h >> 16;
        return h;
    }
}
