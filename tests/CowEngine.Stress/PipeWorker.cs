using System.Runtime.InteropServices;
using CowEngine.TestSupport;

namespace CowEngine.Stress;

/// <summary>
/// Has the kernel write into views: writes random bytes into a pipe, then PrepareForWrite on a
/// random (unaligned) range of a view's bulk area and read(2) from the pipe straight into it. The
/// kernel raises no fault for its own writes, so without PrepareForWrite a shared page would make
/// read() fail with EFAULT or return a short count; with it, every byte must arrive, in the view
/// and therefore in the model.
/// </summary>
internal sealed unsafe class PipeWorker : Worker
{
    /// <summary>At most one pipe buffer's worth (64 KiB): the write never blocks on an empty pipe.</summary>
    private const int MaxLength = 16 * PageLayout.PageSize;

    private static readonly Func<ViewRecord, bool> IsWritable = record => !record.Frozen;
    private readonly byte[] _data = new byte[MaxLength];
    private readonly byte[] _drain = new byte[MaxLength];
    private readonly int _readEnd;
    private readonly int _writeEnd;

    public PipeWorker(StressContext context, int index) : base(context, "pipe", index)
    {
        (_readEnd, _writeEnd) = LibC.CreatePipe();
    }

    public void ClosePipe()
    {
        LibC.Close(_readEnd);
        LibC.Close(_writeEnd);
    }

    protected override void Pace() => SleepUpTo(1);

    protected override void Step()
    {
        Activity.Begin("pick view");
        ViewRecord? record = Registry.Pick(Random, IsWritable);
        if (record is null)
            return;
        Family family = record.Family;
        long bulkStart = (long)family.BulkFirstPage * PageLayout.PageSize;
        int bulkLength = family.BulkPages * PageLayout.PageSize;
        int length = Random.Next(1, Math.Min(MaxLength, bulkLength) + 1);
        long start = bulkStart + Random.NextInt64(bulkLength - length + 1);
        long first = start / PageLayout.PageSize, last = (start + length - 1) / PageLayout.PageSize;
        Random.NextBytes(_data.AsSpan(0, length));
        Activity.Note("PrepareForWrite + read(pipe)", record.Id, length);

        record.Gate.EnterBulk();
        try
        {
            if (record.Dead)
                return;
            LibC.WriteAll(_writeEnd, _data.AsSpan(0, length));
            record.Locks.LockRange(first, last);
            try
            {
                try
                {
                    record.View.PrepareForWrite(start, length);
                }
                catch (Exception exception) when (Injection.IsRefusal(exception))
                {
                    // Refused (--inject-rate): no read into the view, whose bytes must be as they were;
                    // the pipe is emptied for the next round.
                    Injection.Refused("PrepareForWrite");
                    fixed (byte* drain = _drain)
                        _ = LibC.Read(_readEnd, drain, (nuint)length);
                    for (long page = first; page <= last; page++)
                        Model.CheckPage(record, page, "after a refused PrepareForWrite");
                    return;
                }
                for (long page = first; page <= last; page++)
                    record.DirtySinceFreeze[page] = 1;
                long received = 0;
                while (received < length)
                {
                    nint count = LibC.Read(_readEnd, record.Pointer + start + received, (nuint)(length - received));
                    if (count == length - received)
                    {
                        received += count;
                        break;
                    }
                    int errno = Marshal.GetLastPInvokeError();
                    Report.Failure("syscall-write",
                        count < 0
                            ? $"read() into {record} bytes [{start + received}, {start + length}) after PrepareForWrite failed with errno {errno}"
                            : $"read() into {record} bytes [{start + received}, {start + length}) after PrepareForWrite returned a short count {count} with the whole pipe full");
                    if (count <= 0)
                        break;
                    received += count;
                }
                if (received < length)
                {
                    // Keep the pipe empty for the next round, and the model equal to what the view holds.
                    fixed (byte* drain = _drain)
                        _ = LibC.Read(_readEnd, drain, (nuint)(length - received));
                    Buffer.MemoryCopy(record.Pointer + start, record.Shadow + start, length, length);
                }
                else
                {
                    fixed (byte* data = _data)
                        Buffer.MemoryCopy(data, record.Shadow + start, length, length);
                    var arrived = new ReadOnlySpan<byte>(record.Pointer + start, length);
                    if (!arrived.SequenceEqual(_data.AsSpan(0, length)))
                        Report.Failure("syscall-write", $"read() into {record} at {start} reported {length} bytes but the view holds other bytes");
                }
            }
            finally
            {
                record.Locks.UnlockRange(first, last);
            }
        }
        finally
        {
            record.Gate.ExitBulk();
        }
    }
}
