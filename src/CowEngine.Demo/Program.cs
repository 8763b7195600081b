using CowEngine;

using var engine = new CowMemoryEngine();
using var region = engine.CreateRegion(64 * CowMemoryEngine.PageSize);
region.AsSpan()[0] = 1;
using var snapshot = region.Snapshot();
region.AsSpan()[0] = 2;
Console.WriteLine($"region {region.AsSpan()[0]} snapshot {snapshot.AsSpan()[0]}");
