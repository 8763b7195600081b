namespace CowEngine.Stress;

/// <summary>
/// Sweeps the live views continuously: compares every page of a view with its model under the
/// page's lock (so while writers write other pages), re-checks frozen snapshots against the
/// checksum taken when they were made (a second, shadow-independent check that a snapshot never
/// changes unless written through itself), and checks the chain is a consistent state. Reading a
/// snapshot's untouched pages also drives the engine's lazy read faults.
/// </summary>
internal sealed unsafe class VerifierWorker : Worker
{
    public VerifierWorker(StressContext context, int index) : base(context, "verifier", index)
    {
    }

    protected override void Step()
    {
        Activity.Begin("pick view");
        ViewRecord? record = Registry.Pick(Random);
        if (record is null)
            return;
        Activity.Note("verify", record.Id);
        record.Gate.EnterWrite();
        try
        {
            if (record.Dead)
                return;
            for (long page = 0; page < record.Family.PageCount; page++)
            {
                record.Locks.Lock(page);
                try
                {
                    Model.CheckPage(record, page, "verifier sweep");
                }
                finally
                {
                    record.Locks.Unlock(page);
                }
            }
            if (record.Frozen)
                CheckFrozen(record, "verifier sweep");
            lock (record.ChainWave)
                Model.CheckChain(record.Family, record.Pointer, "verifier sweep", record);
        }
        finally
        {
            record.Gate.ExitWrite();
        }
    }

    public static unsafe void CheckFrozen(ViewRecord record, string when)
    {
        ulong checksum = Model.Checksum(record.Pointer, record.Length);
        if (checksum != record.FrozenChecksum)
        {
            Report.Failure("snapshot-changed", $"{when}: frozen {record} changed after it was taken (checksum {checksum:X16}, was {record.FrozenChecksum:X16})");
            record.FrozenChecksum = checksum;
        }
    }
}
