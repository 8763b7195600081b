using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using System.Xml.Linq;

namespace CowEngine.Tests;

/// <summary>The package test runs `dotnet pack` and `dotnet build`: alone, so it does not compete with other tests for the two cores.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PackageConsumerCollection
{
    public const string Name = "NuGet package consumer";
}

/// <summary>
/// The NuGet package as a user gets it: `dotnet pack` the library into a local folder feed, check
/// what the .nupkg holds, then build a tiny console program that references package CowEngine
/// 0.1.0 from that feed - offline: its NuGet.config lists only the feed and this machine's NuGet
/// cache (for Microsoft.Extensions.Logging.Abstractions), and it restores into its own packages
/// folder so a stale CowEngine from an earlier run can never be used - and run it.
/// </summary>
[Collection(PackageConsumerCollection.Name)]
public sealed class PackageConsumerTests : IDisposable
{
    private const string PackageVersion = "0.1.0";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(3);

    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("cowengine-package-");

    public void Dispose() => _work.Delete(recursive: true);

    [Fact]
    public void Package_HoldsTheShimAndDocs_AndAConsumerBuiltFromIt_TakesASnapshot()
    {
        string repository = RepositoryRoot();
        string configuration = typeof(PackageConsumerTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
        string feed = Path.Combine(_work.FullName, "feed");

        // Pack what the test run just built (--no-build: this test must not rebuild the library under the running tests).
        Run(repository, "pack", Path.Combine(repository, "src", "CowEngine", "CowEngine.csproj"), "-c", configuration, "--no-build",
            "-o", feed, $"-p:NuspecOutputPath={Path.Combine(_work.FullName, "nuspec")}/", "--disable-build-servers");

        string package = Path.Combine(feed, $"CowEngine.{PackageVersion}.nupkg");
        Assert.True(File.Exists(package), $"dotnet pack did not produce {package}; the feed holds: {string.Join(", ", Directory.GetFiles(feed))}");
        CheckPackageContents(package);

        string consumer = WriteConsumerProject(feed);
        Run(consumer, "build", "-c", "Release", "--disable-build-servers", "-p:UseSharedCompilation=false");
        string output = Path.Combine(consumer, "bin", "Release", "net10.0");
        Assert.True(File.Exists(Path.Combine(output, "runtimes", "linux-x64", "native", "libcowengine.so")),
            "the shim from the package's runtimes/linux-x64/native/ should be in the consumer's output");

        string printed = Run(consumer, Path.Combine(output, "Consumer.dll"));

        Assert.Contains("snapshot=1 live=2 pages-copied=1", printed);
        Assert.Contains($"engine-assembly={Path.Combine(output, "CowEngine.dll")}", printed);
    }

    private static void CheckPackageContents(string package)
    {
        using ZipArchive archive = ZipFile.OpenRead(package);
        var entries = archive.Entries.Select(e => e.FullName).ToHashSet();
        string[] required =
        [
            "lib/net10.0/CowEngine.dll",
            "lib/net10.0/CowEngine.xml",
            "runtimes/linux-x64/native/libcowengine.so",
            "README.md",
            "CowEngine.nuspec",
        ];
        foreach (string entry in required)
            Assert.True(entries.Contains(entry), $"the package lacks {entry}; it holds: {string.Join(", ", entries.Order())}");

        using (Stream documentation = archive.GetEntry("lib/net10.0/CowEngine.xml")!.Open())
        {
            XDocument docs = XDocument.Load(documentation);
            Assert.Contains(docs.Descendants("member"), m => (string?)m.Attribute("name") == "T:CowEngine.CowMemoryManager`1");
        }

        using Stream nuspecStream = archive.GetEntry("CowEngine.nuspec")!.Open();
        XElement metadata = XDocument.Load(nuspecStream).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
        string Field(string name) => metadata.Elements().Single(e => e.Name.LocalName == name).Value;
        Assert.Equal("CowEngine", Field("id"));
        Assert.Equal(PackageVersion, Field("version"));
        Assert.Equal("MIT", Field("license"));
        Assert.Equal("README.md", Field("readme"));
        Assert.False(string.IsNullOrWhiteSpace(Field("description")));
        Assert.Contains(metadata.Descendants(), e => e.Name.LocalName == "dependency" && (string?)e.Attribute("id") == "Microsoft.Extensions.Logging.Abstractions");
    }

    /// <summary>The consumer: a console program, its NuGet.config, and empty Directory.Build files that stop MSBuild from importing anything above the temp folder.</summary>
    private string WriteConsumerProject(string feed)
    {
        string consumer = Path.Combine(_work.FullName, "consumer");
        Directory.CreateDirectory(consumer);
        File.WriteAllText(Path.Combine(_work.FullName, "Directory.Build.props"), "<Project />\n");
        File.WriteAllText(Path.Combine(_work.FullName, "Directory.Build.targets"), "<Project />\n");
        File.WriteAllText(Path.Combine(_work.FullName, "Directory.Packages.props"), "<Project />\n");

        File.WriteAllText(Path.Combine(consumer, "Consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
                <UseAppHost>false</UseAppHost>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="CowEngine" Version="{PackageVersion}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(consumer, "Program.cs"), """
            using CowEngine;

            using var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 64L << 20 });
            using CowView region = engine.CreateRegion(1 << 20);
            region.AsSpan(0, 1)[0] = 1;
            using CowView snapshot = region.Snapshot();
            region.AsSpan(0, 1)[0] = 2;
            Console.WriteLine($"snapshot={snapshot.AsSpan(0, 1)[0]} live={region.AsSpan(0, 1)[0]} pages-copied={engine.GetStats().PagesCopied}");
            Console.WriteLine($"engine-assembly={typeof(CowMemoryEngine).Assembly.Location}");
            """);
        // Only the local feed and the machine's package cache (a folder feed too): nothing online.
        // Package source mapping sends CowEngine to the feed alone. A packages folder of its own
        // means the CowEngine just packed is extracted, never one cached by an earlier run.
        File.WriteAllText(Path.Combine(consumer, "NuGet.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <config>
                <add key="globalPackagesFolder" value="{Path.Combine(_work.FullName, "packages")}" />
              </config>
              <packageSources>
                <clear />
                <add key="cowengine-local" value="{feed}" />
                <add key="machine-cache" value="{MachinePackageCache()}" />
              </packageSources>
              <packageSourceMapping>
                <packageSource key="cowengine-local">
                  <package pattern="CowEngine" />
                </packageSource>
                <packageSource key="machine-cache">
                  <package pattern="*" />
                </packageSource>
              </packageSourceMapping>
            </configuration>
            """);
        return consumer;
    }

    /// <summary>Where restores on this machine put packages (and where the library's dependency already is).</summary>
    private static string MachinePackageCache()
    {
        string? configured = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        string cache = !string.IsNullOrEmpty(configured)
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        Assert.True(Directory.Exists(Path.Combine(cache, "microsoft.extensions.logging.abstractions")),
            $"the NuGet cache {cache} lacks Microsoft.Extensions.Logging.Abstractions; restore the solution once first");
        return cache;
    }

    private static string RepositoryRoot()
    {
        for (DirectoryInfo? directory = new(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
            if (File.Exists(Path.Combine(directory.FullName, "CowEngine.sln")))
                return directory.FullName;
        throw new InvalidOperationException($"No CowEngine.sln above {AppContext.BaseDirectory}");
    }

    /// <summary>Runs `dotnet args` in a clean environment; returns its output, fails the test with all of it otherwise.</summary>
    private string Run(string workingDirectory, params string[] arguments)
    {
        var startInfo = new ProcessStartInfo(DotnetHost())
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
            startInfo.ArgumentList.Add(argument);
        // The test host runs under `dotnet test`, whose MSBuild variables would steer the child build.
        foreach (string name in startInfo.Environment.Keys.ToList())
            if (name.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || name.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase))
                startInfo.Environment.Remove(name);
        startInfo.Environment["MSBUILDDISABLENODEREUSE"] = "1";     // no MSBuild nodes left running
        startInfo.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        startInfo.Environment["DOTNET_NOLOGO"] = "1";
        startInfo.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        startInfo.Environment["NUGET_PACKAGES"] = Path.Combine(_work.FullName, "packages");

        using Process process = Process.Start(startInfo) ?? throw new InvalidOperationException("Process.Start returned null");
        Task<string> standardOutput = process.StandardOutput.ReadToEndAsync();
        Task<string> standardError = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(CommandTimeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
        string output = standardOutput.Result, error = standardError.Result;
        Assert.True(process.ExitCode == 0,
            $"`dotnet {string.Join(' ', arguments)}` in {workingDirectory} exited with {process.ExitCode}\n--- stdout ---\n{output}\n--- stderr ---\n{error}");
        return output;
    }

    private static string DotnetHost() => Support.ChildProcess.DotnetHostPath();
}
