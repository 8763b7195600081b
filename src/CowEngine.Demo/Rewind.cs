using System.Diagnostics;
using CowEngine;

namespace CowEngine.Demo;

/// <summary>
/// What the demo keeps with each frame beside the world (the payload): the program's own frame
/// counter, and the trees burnt as it saw them then, to check against the world after a rewind.
/// </summary>
internal readonly record struct FrameClock(int Frame, long Burnt);

/// <summary>What <see cref="Rewind.Run"/> saw.</summary>
internal sealed record RewindResult(int Frames, int Kept, TimeSpan CaptureTime, long PagesCopied, double HeldMiB, int RewoundTo, TimeSpan RewindTime,
    bool Identical);

/// <summary>
/// The rewind buffer at work on the engine's world: the fire burns on, one frame captured per step
/// (with the frame counter as the payload); then the world rewinds and the same steps are played
/// again, which must end in exactly the same world.
/// </summary>
internal static class Rewind
{
    public const int Frames = 64;
    public const int Capacity = 48;
    public const int Back = 40;

    public static RewindResult Run(CowMemoryEngine engine, CowView world, Forest forest, int strike)
    {
        forest.Strike(strike); // a fresh fire, so that the frames differ
        CowEngineStats before = engine.GetStats();
        using var buffer = new CowRewindBuffer(world, Capacity);
        var captureTime = new Stopwatch();
        for (int frame = 1; frame <= Frames; frame++)
        {
            forest.Step();
            captureTime.Start();
            buffer.Capture(new FrameClock(frame, forest.Burnt));
            captureTime.Stop();
        }
        CowEngineStats after = engine.GetStats();
        double heldMiB = (after.CommittedBytes - before.CommittedBytes) / (1024.0 * 1024.0);
        using CowView end = world.Snapshot();
        long burntAtEnd = forest.Burnt;

        var rewindClock = Stopwatch.StartNew();
        buffer.RewindTo(Back, out FrameClock at); // the frames after it are dropped
        rewindClock.Stop();
        bool payloadAgrees = at.Frame == Frames - Back && at.Burnt == forest.Burnt;
        for (int frame = at.Frame + 1; frame <= Frames; frame++)
        {
            forest.Step();
            buffer.Capture(new FrameClock(frame, forest.Burnt));
        }
        bool identical = payloadAgrees && world.GetChangedPages(end).Count == 0 && forest.Burnt == burntAtEnd;
        return new RewindResult(Frames, Capacity, captureTime.Elapsed, after.PagesCopied - before.PagesCopied, heldMiB, at.Frame,
            rewindClock.Elapsed, identical);
    }
}
