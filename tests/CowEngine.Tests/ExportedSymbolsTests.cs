using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;

namespace CowEngine.Tests;

/// <summary>
/// libcowengine.so exports the engine's API and nothing else: its defined dynamic function symbols
/// are exactly the functions native/include/cow_engine.h declares COW_API, and the test-only
/// failure injection that native/include/cow_test_inject.h declares COW_API. Anything more (benchmark
/// code such as the fork baseline, an internal function that lost its static or hidden visibility)
/// would ship in the package and become something users can bind to. The symbol table is read from
/// the ELF file itself, so the test needs no binutils.
/// </summary>
public sealed partial class ExportedSymbolsTests
{
    // ELF's own entry points, which some linkers still export from a shared library.
    private static readonly string[] LinkerSymbols = ["_init", "_fini"];

    [Fact]
    public void Library_ExportsExactlyTheFunctionsTheHeaderDeclaresCowApi()
    {
        string library = Path.Combine(AppContext.BaseDirectory, "libcowengine.so");
        string header = Path.Combine(RepositoryRoot(), "native", "include", "cow_engine.h");
        SortedSet<string> declared = DeclaredApi(File.ReadAllText(header));
        Assert.Contains("cow_install", declared); // the header parser found the declarations
        declared.UnionWith(DeclaredApi(File.ReadAllText(Path.Combine(RepositoryRoot(), "native", "include", "cow_test_inject.h"))));
        Assert.Contains("cow_test_inject_configure", declared);

        List<ElfSymbol> exported = DynamicSymbols(File.ReadAllBytes(library)).Where(s => s.IsDefined && s.IsExported).ToList();
        var functions = new SortedSet<string>(exported.Where(s => s.IsFunction).Select(s => s.Name).Except(LinkerSymbols), StringComparer.Ordinal);
        string[] data = exported.Where(s => !s.IsFunction && s.IsDataOrCode).Select(s => s.Name).Order(StringComparer.Ordinal).ToArray();

        string[] extra = functions.Except(declared).ToArray();
        string[] missing = declared.Except(functions).ToArray();
        Assert.True(extra.Length == 0 && missing.Length == 0,
            $"{library} should export exactly the COW_API functions of {header}. " +
            $"Exported but not declared: [{string.Join(", ", extra)}]; declared but not exported: [{string.Join(", ", missing)}].");
        Assert.True(data.Length == 0, $"{library} exports data symbols, which are no part of its API: [{string.Join(", ", data)}].");
    }

    /// <summary>The fork baseline is a library of its own (the benchmarks', built for ForkPolicyTests too), with none of the engine in it.</summary>
    [Fact]
    public void ForkBaseline_IsItsOwnLibrary()
    {
        string library = Path.Combine(AppContext.BaseDirectory, "libcowforkbaseline.so");
        string[] functions = DynamicSymbols(File.ReadAllBytes(library))
            .Where(s => s.IsDefined && s.IsExported && s.IsFunction).Select(s => s.Name).Except(LinkerSymbols).ToArray();

        Assert.Contains("cow_fork_baseline_spawn", functions);
        Assert.All(functions, name => Assert.StartsWith("cow_fork_baseline_", name, StringComparison.Ordinal));
    }

    /// <summary>The names of the functions a header declares COW_API (comments and preprocessor lines ignored).</summary>
    private static SortedSet<string> DeclaredApi(string headerText)
    {
        string code = Comments().Replace(headerText, " ");
        code = string.Join('\n', code.Split('\n').Where(line => !line.TrimStart().StartsWith('#')));
        var names = new SortedSet<string>(StringComparer.Ordinal);
        foreach (Match match in Declaration().Matches(code))
            names.Add(match.Groups["name"].Value);
        return names;
    }

    [GeneratedRegex(@"/\*.*?\*/|//[^\n]*", RegexOptions.Singleline)]
    private static partial Regex Comments();

    // COW_API, the return type (no parenthesis, brace or semicolon), then the name and its "(".
    [GeneratedRegex(@"\bCOW_API\b[^;{}()]*?\b(?<name>[A-Za-z_]\w*)\s*\(")]
    private static partial Regex Declaration();

    private readonly record struct ElfSymbol(string Name, byte Info, byte Other, ushort SectionIndex)
    {
        private const int SttObject = 1, SttFunc = 2, SttCommon = 5, SttTls = 6, SttGnuIfunc = 10;
        private const int StbGlobal = 1, StbWeak = 2, StbGnuUnique = 10;
        private const int StvDefault = 0, StvProtected = 3;

        private int Type => Info & 0xF;
        private int Binding => Info >> 4;
        private int Visibility => Other & 0x3;

        public bool IsDefined => SectionIndex != 0; // SHN_UNDEF: imported from another library
        public bool IsExported => (Binding is StbGlobal or StbWeak or StbGnuUnique) && (Visibility is StvDefault or StvProtected);
        public bool IsFunction => Type is SttFunc or SttGnuIfunc;
        public bool IsDataOrCode => Type is SttObject or SttFunc or SttCommon or SttTls or SttGnuIfunc;
    }

    /// <summary>
    /// The symbols of an ELF64 little-endian file's .dynsym (the table the dynamic linker binds
    /// against), named through the string table its section header links to.
    /// </summary>
    private static List<ElfSymbol> DynamicSymbols(byte[] elf)
    {
        ReadOnlySpan<byte> file = elf;
        Assert.True(file.Length >= 64 && file[..4].SequenceEqual("\u007FELF"u8), "not an ELF file");
        Assert.True(file[4] == 2 && file[5] == 1, "not a 64-bit little-endian ELF file");
        const int SectionHeaderBytes = 64, SymbolBytes = 24, ShtDynsym = 11;
        long sectionTable = BinaryPrimitives.ReadInt64LittleEndian(file[0x28..]);
        int sectionHeaderSize = BinaryPrimitives.ReadUInt16LittleEndian(file[0x3A..]);
        int sectionCount = BinaryPrimitives.ReadUInt16LittleEndian(file[0x3C..]);
        Assert.True(sectionCount > 0 && sectionHeaderSize == SectionHeaderBytes, "the ELF file has no section headers");

        ReadOnlySpan<byte> Section(int index) => elf.AsSpan((int)sectionTable + index * SectionHeaderBytes, SectionHeaderBytes);
        ReadOnlySpan<byte> Contents(ReadOnlySpan<byte> section) =>
            elf.AsSpan((int)BinaryPrimitives.ReadInt64LittleEndian(section[24..]), (int)BinaryPrimitives.ReadInt64LittleEndian(section[32..]));

        for (int i = 0; i < sectionCount; i++)
        {
            ReadOnlySpan<byte> section = Section(i);
            if (BinaryPrimitives.ReadUInt32LittleEndian(section[4..]) != ShtDynsym)
                continue;
            ReadOnlySpan<byte> symbols = Contents(section);
            ReadOnlySpan<byte> strings = Contents(Section((int)BinaryPrimitives.ReadUInt32LittleEndian(section[40..])));
            var result = new List<ElfSymbol>();
            for (int offset = SymbolBytes; offset + SymbolBytes <= symbols.Length; offset += SymbolBytes) // entry 0 is the null symbol
            {
                ReadOnlySpan<byte> symbol = symbols.Slice(offset, SymbolBytes);
                ReadOnlySpan<byte> name = strings[(int)BinaryPrimitives.ReadUInt32LittleEndian(symbol)..];
                result.Add(new ElfSymbol(Encoding.ASCII.GetString(name[..name.IndexOf((byte)0)]), symbol[4], symbol[5],
                    BinaryPrimitives.ReadUInt16LittleEndian(symbol[6..])));
            }
            return result;
        }
        Assert.Fail("the ELF file has no .dynsym section");
        return [];
    }

    private static string RepositoryRoot()
    {
        for (DirectoryInfo? directory = new(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
            if (File.Exists(Path.Combine(directory.FullName, "CowEngine.sln")))
                return directory.FullName;
        throw new InvalidOperationException($"No CowEngine.sln above {AppContext.BaseDirectory}");
    }
}
