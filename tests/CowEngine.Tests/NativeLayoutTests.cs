using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CowEngine.Interop;

namespace CowEngine.Tests;

/// <summary>
/// The C shim and the managed library share tables in memory, so their struct layouts must agree
/// byte for byte. The shim publishes its own offsets and sizes (cow_layout_entry, computed by the C
/// compiler with offsetof/sizeof); this test compares them with the managed mirrors in
/// src/CowEngine/Interop/NativeLayout.cs, in both directions.
/// </summary>
public sealed unsafe class NativeLayoutTests
{
    private static readonly Dictionary<string, Type> Mirrors = new()
    {
        ["cow_engine_t"] = typeof(CowEngineTable),
        ["cow_view_t"] = typeof(CowViewEntry),
        ["cow_process_t"] = typeof(CowProcessTable),
        ["cow_view_stats_t"] = typeof(CowViewStatsNative),
    };

    private readonly record struct Row(string Struct, string Field, uint Offset, uint Size);

    private static List<Row> ReadNativeTable()
    {
        var rows = new List<Row>();
        for (uint i = 0; CowNative.LayoutEntry(i, out nint structName, out nint fieldName, out uint offset, out uint size) != 0; i++)
        {
            Assert.True(i < 10_000, "cow_layout_entry never reports the end of its table");
            rows.Add(new Row(Marshal.PtrToStringUTF8(structName)!, Marshal.PtrToStringUTF8(fieldName)!, offset, size));
        }
        return rows;
    }

    /// <summary>cow_engine_t.slot_refcounts -> SlotRefcounts.</summary>
    private static string ManagedName(string snakeCase) =>
        string.Concat(snakeCase.Split('_', StringSplitOptions.RemoveEmptyEntries).Select(part => char.ToUpperInvariant(part[0]) + part[1..]));

    private static int ManagedFieldSize(FieldInfo field)
    {
        if (field.GetCustomAttribute<FixedBufferAttribute>() is { } fixedBuffer)
            return Marshal.SizeOf(fixedBuffer.ElementType) * fixedBuffer.Length;
        if (field.FieldType.IsPointer)
            return sizeof(nint);
        return Marshal.SizeOf(field.FieldType);
    }

    private static int UnmanagedSizeOf(Type type) => type == typeof(CowEngineTable) ? sizeof(CowEngineTable)
        : type == typeof(CowViewEntry) ? sizeof(CowViewEntry)
        : type == typeof(CowProcessTable) ? sizeof(CowProcessTable)
        : type == typeof(CowViewStatsNative) ? sizeof(CowViewStatsNative)
        : throw new ArgumentException($"no mirror {type}", nameof(type));

    [Fact]
    public void TheNativeLayoutTableIsNotEmptyAndDescribesEveryMirroredStruct()
    {
        List<Row> rows = ReadNativeTable();
        Assert.NotEmpty(rows);
        TestContext.Current.TestOutputHelper?.WriteLine($"{rows.Count} rows in the shim's layout table");
        foreach (string name in Mirrors.Keys)
        {
            Assert.Single(rows, row => row.Struct == name && row.Field.Length == 0);
            Assert.Contains(rows, row => row.Struct == name && row.Field.Length != 0);
        }
        Assert.All(rows, row => Assert.True(Mirrors.ContainsKey(row.Struct), $"the shim describes '{row.Struct}', which has no managed mirror"));
    }

    [Fact]
    public void EveryNativeFieldExistsInTheManagedMirrorAtTheSameOffsetWithTheSameSize()
    {
        var mismatches = new List<string>();
        foreach (Row row in ReadNativeTable().Where(row => row.Field.Length != 0))
        {
            Type type = Mirrors[row.Struct];
            string name = ManagedName(row.Field);
            FieldInfo? field = type.GetField(name, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
            if (field is null)
            {
                mismatches.Add($"{row.Struct}.{row.Field}: no field {type.Name}.{name}");
                continue;
            }
            long offset = Marshal.OffsetOf(type, name);
            int size = ManagedFieldSize(field);
            if (offset != row.Offset || size != row.Size)
                mismatches.Add($"{row.Struct}.{row.Field} is at {row.Offset} ({row.Size} bytes), {type.Name}.{name} at {offset} ({size} bytes)");
        }
        Assert.True(mismatches.Count == 0, string.Join(Environment.NewLine, mismatches));
    }

    [Fact]
    public void EveryStructHasTheSameSizeOnBothSides()
    {
        foreach (Row row in ReadNativeTable().Where(row => row.Field.Length == 0))
        {
            Type type = Mirrors[row.Struct];
            Assert.True(row.Size == Marshal.SizeOf(type), $"sizeof({row.Struct}) is {row.Size}, Marshal.SizeOf({type.Name}) is {Marshal.SizeOf(type)}");
            Assert.True(row.Size == UnmanagedSizeOf(type), $"sizeof({row.Struct}) is {row.Size}, sizeof({type.Name}) is {UnmanagedSizeOf(type)}");
        }
    }

    [Fact]
    public void EveryManagedFieldExceptReservedPaddingIsDescribedByTheShim()
    {
        // A field added only on the managed side would shift nothing the shim checks, yet the shim
        // would not know it exists; padding fields named Reserved* are the only exception.
        List<Row> rows = ReadNativeTable();
        foreach ((string structName, Type type) in Mirrors)
        {
            var described = rows.Where(row => row.Struct == structName && row.Field.Length != 0)
                .Select(row => ManagedName(row.Field)).ToHashSet(StringComparer.Ordinal);
            foreach (FieldInfo field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
            {
                if (field.Name.StartsWith("Reserved", StringComparison.Ordinal))
                    continue;
                Assert.True(described.Contains(field.Name), $"{type.Name}.{field.Name} has no counterpart in the shim's {structName}");
            }
        }
    }
}
