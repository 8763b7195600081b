using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("CowEngine.Tests")]
[assembly: InternalsVisibleTo("CowEngine.Benchmarks")]
