using System.Diagnostics;
using System.Globalization;
using CowEngine.Tests.Support;
using CowEngine.TestSupport;
using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// Model-based random test of writes, reads, PrepareForWrite, snapshots, restores, diffs,
/// TakeDirtyPages, region creation and disposal. The model is one byte array per live view; after
/// every step the engine must agree with it.
/// </summary>
/// <remarks>
/// <para>What the change-tracking answers are checked against, per view:</para>
/// <list type="bullet">
/// <item>Truly changed pages: pages whose model bytes differ (from the other view, for a diff; from
/// the view's contents at its reference point, for TakeDirtyPages). Both answers must include every
/// one of them (they are supersets).</item>
/// <item>Pages that may have been written: for a diff, the pages where the two views' content
/// versions differ (a version is a token the model gives a page on every write or
/// PrepareForWrite and that snapshots and restores copy); for TakeDirtyPages, the pages written,
/// prepared or given another slot by a restore since the reference point. The answers must not
/// report anything outside these sets, so the only imprecision allowed is a page touched for
/// writing (or restored) whose bytes did not change.</item>
/// </list>
/// <para>The reference point of TakeDirtyPages is the view's creation (every page counts as
/// possibly dirty for a region made without trackWrites, as documented), its last Snapshot() or its
/// last TakeDirtyPages(). A RestoreTo is not a reference point for either view: the target's pages
/// whose slots the restore changed count as dirty (they may differ from the reference contents),
/// and the source keeps its dirty pages although the restore write-protects them.</para>
/// <para>Under a tight mapping budget the engine evicts segments all the time, and API calls may be
/// refused with CowMappingBudgetExceededException, documented to change nothing: the model then
/// changes nothing either (a refused Snapshot() is no reference point), and the periodic full
/// check compares every view with it.</para>
/// <para>Replay: each run prints its seed; set COWENGINE_SEED to run that seed in the random-seed
/// tests (with the default budget in process, with the tight budget in the child process).</para>
/// </remarks>
public sealed partial class RollbackModelTests
{
    private const int PageSize = CowMemoryEngine.PageSize;

    /// <summary>One full segment and part of a second, so segment skipping and the partial last leaf take part.</summary>
    private const int Pages = 512 + 64;
    private const int SegmentPages = 512;

    private const int Steps = 500;
    private const int MaxLiveViews = 8;
    private const int FullCheckEvery = 50;

    /// <summary>
    /// A mapping budget so small that the engine evicts all the time (its mappings are a cache of
    /// the page table): every operation then also runs against evicted (unmapped) segments.
    /// </summary>
    private const int TightMappingBudget = 40;

    /// <summary>A step of the model takes milliseconds; this long without one is a hang.</summary>
    private static readonly TimeSpan StallLimit = TimeSpan.FromSeconds(10);

    /// <summary>Only a hang the child's own watchdog missed reaches this.</summary>
    private static readonly TimeSpan ChildTimeout = TimeSpan.FromMinutes(3);

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(77)]
    [InlineData(20250101)]
    public void RandomOperations_AgreeWithTheModel_FixedSeed(int seed) => new ModelRun(seed, mappingBudget: null, watchdog: null).Run();

    [Fact]
    public void RandomOperations_AgreeWithTheModel_RandomOrReplayedSeed() =>
        new ModelRun(RandomOrReplayedSeed(), mappingBudget: null, watchdog: null).Run();

    /// <summary>
    /// The model under a tight mapping budget (fixed seeds, then a random or replayed one). Runs in
    /// a child process: a hang of the engine's fault path must fail this test, not stall the suite
    /// or leave a thread faulting forever in it. A watchdog in the child reports a stalled step.
    /// </summary>
    [Fact]
    public async Task RandomOperations_UnderATightMappingBudget_AgreeWithTheModel()
    {
        if (!IsolatedTest.IsChildFor(nameof(RandomOperations_UnderATightMappingBudget_AgreeWithTheModel)))
        {
            await IsolatedTest.RunAndAssertPassedAsync(typeof(RollbackModelTests), nameof(RandomOperations_UnderATightMappingBudget_AgreeWithTheModel), ChildTimeout);
            return;
        }
        foreach (int seed in new[] { 1, 2, 77, RandomOrReplayedSeed() })
        {
            using var watchdog = new HangWatchdog(StallLimit);
            new ModelRun(seed, TightMappingBudget, watchdog).Run();
        }
    }

    /// <summary>
    /// The smallest case the tight-budget run led to: the engine is at its budget, every mapping
    /// but those of one segment is pinned (prepared for writing) or cannot shrink, and a write
    /// faults in that segment. Resolving the write maps the page (two more mappings); the handler
    /// then evicts to get back under the budget, and the only segment it can evict is the one it
    /// just mapped, so the write faults again - forever, if the handler does not protect it.
    /// Runs in a child process, for the same reason as the model above.
    /// </summary>
    [Fact]
    public async Task WriteFault_WhenOnlyTheFaultingSegmentCanBeEvicted_Completes()
    {
        if (!IsolatedTest.IsChildFor(nameof(WriteFault_WhenOnlyTheFaultingSegmentCanBeEvicted_Completes)))
        {
            await IsolatedTest.RunAndAssertPassedAsync(typeof(RollbackModelTests), nameof(WriteFault_WhenOnlyTheFaultingSegmentCanBeEvicted_Completes), ChildTimeout);
            return;
        }
        const int Budget = 16, Prepared = 6;
        using var engine = NewFragmentingEngine(mappingBudget: Budget);
        using CowView region = engine.CreateRegion(512 * PageSize);
        region.AsSpan().Fill(1);
        using CowView snapshot = region.Snapshot();
        // Every other page of the region prepared: 12 mappings that eviction must not touch.
        for (int k = 0; k < Prepared; k++)
            region.PrepareForWrite(2L * k * PageSize, 1);
        CowEngineStats before = engine.GetStats();
        Assert.True(before.Mappings == Budget, $"the setup should put the engine exactly at its budget: {before}");

        using (var watchdog = new HangWatchdog(StallLimit))
        {
            watchdog.Describe = () =>
                $"the write to page 100 of an untouched snapshot never completed: {engine.GetStats()} (before it: {before}). " +
                "WriteFaults and Evictions climbing together mean the handler evicts the segment it has just mapped.";
            unsafe
            {
                snapshot.Pointer[100L * PageSize] = 7;
            }
        }

        Assert.Equal(7, snapshot.AsSpan(100 * PageSize, 1)[0]);
        Assert.Equal(1, region.AsSpan(100 * PageSize, 1)[0]);
    }

    private static int RandomOrReplayedSeed()
    {
        string? fromEnvironment = Environment.GetEnvironmentVariable("COWENGINE_SEED");
        return string.IsNullOrWhiteSpace(fromEnvironment)
            ? Random.Shared.Next()
            : int.Parse(fromEnvironment, CultureInfo.InvariantCulture);
    }

    /// <summary>A live view and what the model knows about it.</summary>
    private sealed class ModelView(string name, CowView view, byte[] contents, long[] versions, bool exactWrites = false)
    {
        /// <summary>A region made with trackWrites: its faults never resolve pages ahead of a write.</summary>
        public bool ExactWrites { get; } = exactWrites;

        public string Name { get; } = name;
        public CowView View { get; } = view;
        public byte[] Contents { get; } = contents;

        /// <summary>Content version per page: equal versions in two views mean one write history.</summary>
        public long[] Versions { get; } = versions;

        /// <summary>The contents at the TakeDirtyPages reference point.</summary>
        public byte[] DirtyReference { get; set; } = (byte[])contents.Clone();

        /// <summary>Pages written, prepared or changed by a restore since the reference point.</summary>
        public bool[] MayBeDirty { get; set; } = new bool[Pages];

        public void ResetDirtyReference()
        {
            DirtyReference = (byte[])Contents.Clone();
            MayBeDirty = new bool[Pages];
        }
    }

    private sealed partial class ModelRun(int seed, int? mappingBudget, HangWatchdog? watchdog, InjectionPlan? injection = null)
    {
        private static readonly long[] HotPages = [0, 1, 2, 255, 511, 512, 513, Pages - 1];

        private readonly Random _random = new(seed);
        private readonly List<ModelView> _views = [];
        private readonly Queue<string> _log = new();
        private long _nextVersion;
        private int _nextName;
        private int _step;
        private string _inFlight = "";

        public void Run()
        {
            string budget = mappingBudget?.ToString(CultureInfo.InvariantCulture) ?? "default";
            TestContext.Current.TestOutputHelper?.WriteLine($"seed {seed} (replay with COWENGINE_SEED={seed}), mapping budget {budget}");
            if (watchdog is not null) // in the child process: the parent shows its stderr
                Console.Error.WriteLine($"model run: seed {seed}, mapping budget {budget}");
            using var engine = NewSmallEngine(mappingBudget);
            if (watchdog is not null)
                watchdog.Describe = () => $"{Context()}: no progress in {StallLimit.TotalSeconds} s during {_inFlight}; {engine.GetStats()}\n{LogText()}";
            _engine = engine;
            injection?.Arm(seed);
            try
            {
                CreateRegion(engine, trackWrites: false);
                for (_step = 0; _step < Steps; _step++)
                {
                    watchdog?.Progress();
                    DoRandomOperation(engine);
                    if (_step % FullCheckEvery == FullCheckEvery - 1)
                        CheckEveryView();
                }
                if (mappingBudget is not null)
                    Check(engine.GetStats().Evictions > 0, () => "the tight budget caused no eviction: the run did not test what it says");
                CheckEveryView();
                foreach (ModelView view in _views)
                    view.View.Dispose();
                _views.Clear();
                DisarmInjection();
                CheckEngineIsEmpty(engine);
            }
            catch (Exception e) when (e is not Xunit.Sdk.XunitException)
            {
                Fail($"{e.GetType().Name}: {e}");
            }
            finally
            {
                DisarmInjection();
            }
        }

        private void DoRandomOperation(CowMemoryEngine engine)
        {
            int roll = _random.Next(100);
            if (roll < 34)
                Write(Pick());
            else if (roll < 40)
                WriteSameBytes(Pick());
            else if (roll < 48)
                ReadPage(Pick());
            else if (roll < 52)
                Prepare(Pick());
            else if (roll < 62 && _views.Count < MaxLiveViews)
                Snapshot(Pick());
            else if (roll < 74)
                Restore(Pick(), Pick());
            else if (roll < 84)
                Diff(Pick(), Pick());
            else if (roll < 92)
                TakeDirty(Pick());
            else if (roll < 96 && _views.Count > 1)
                Dispose(Pick());
            else if (roll < 100 && _views.Count < MaxLiveViews)
                CreateRegion(engine, trackWrites: _random.Next(2) == 0);
            else
                Write(Pick());
        }

        private ModelView Pick() => _views[_random.Next(_views.Count)];

        private long PickPage() => _random.Next(2) == 0 ? HotPages[_random.Next(HotPages.Length)] : _random.Next(Pages);

        // ---- operations ----

        private void CreateRegion(CowMemoryEngine engine, bool trackWrites)
        {
            Begin($"CreateRegion(trackWrites: {trackWrites})");
            if (!TryUnderBudget(() => engine.CreateRegion((long)Pages * PageSize, trackWrites), out CowView? view))
                return;
            var versions = new long[Pages];
            for (int page = 0; page < Pages; page++)
                versions[page] = ++_nextVersion;
            var model = new ModelView($"v{_nextName++}", view, new byte[Pages * PageSize], versions, exactWrites: trackWrites);
            if (!trackWrites)
                Array.Fill(model.MayBeDirty, true); // documented: untracked regions start all dirty
            _views.Add(model);
            Log($"{model.Name} = CreateRegion(trackWrites: {trackWrites})");
            CheckWithinBudgetAfterMakingRoom(model);
        }

        private void Write(ModelView target)
        {
            // Mostly within a page, sometimes across a page boundary, sometimes a whole page.
            long page = PickPage();
            int offset = _random.Next(PageSize);
            int length = _random.Next(4) switch
            {
                0 => PageSize - offset + _random.Next(1, PageSize),
                1 => PageSize,
                _ => _random.Next(1, 200),
            };
            long start = page * PageSize + (length == PageSize ? 0 : offset);
            length = (int)Math.Min(length, (long)Pages * PageSize - start);
            var bytes = new byte[length];
            _random.NextBytes(bytes);
            string description = $"{target.Name}.Write([{start}, +{length}))  pages {start / PageSize}..{(start + length - 1) / PageSize}";
            Begin(description);

            bytes.CopyTo(target.View.AsSpan(start, length));

            bytes.CopyTo(target.Contents.AsSpan((int)start, length));
            MarkWritten(target, start, length, byFaults: true);
            Log(description);
        }

        /// <summary>Writes bytes equal to those already there: the pages count as written, no byte changes.</summary>
        private void WriteSameBytes(ModelView target)
        {
            long page = PickPage();
            int offset = _random.Next(PageSize - 16);
            Begin($"{target.Name}.WriteSameBytes(page {page})");
            Span<byte> memory = target.View.AsSpan(page * PageSize + offset, 16);
            for (int i = 0; i < memory.Length; i++)
                memory[i] = target.Contents[page * PageSize + offset + i];
            MarkWritten(target, page * PageSize + offset, 16, byFaults: true);
            Log($"{target.Name}.WriteSameBytes(page {page})");
        }

        private void ReadPage(ModelView target)
        {
            long page = PickPage();
            Begin($"{target.Name}.Read(page {page})");
            CheckPage(target, page);
            Log($"{target.Name}.Read(page {page})");
        }

        private void Prepare(ModelView target)
        {
            long start = PickPage() * PageSize + _random.Next(PageSize);
            long length = Math.Min(_random.Next(1, 3 * PageSize), (long)Pages * PageSize - start);
            Begin($"{target.Name}.PrepareForWrite([{start}, +{length}))");
            // Documented: on CowMappingBudgetExceededException the pages before the failure were
            // prepared. The model marks the whole range as possibly written either way: a page that
            // was not prepared then only widens the "may have been written" sets.
            TryUnderBudget(() => { target.View.PrepareForWrite(start, length); return true; }, countsMustStay: false, budgetMayRefuse: true, out _);
            MarkWritten(target, start, length, byFaults: false);
            Log($"{target.Name}.PrepareForWrite([{start}, +{length}))");
        }

        private void Snapshot(ModelView source)
        {
            Begin($"{source.Name}.Snapshot()");
            if (!TryUnderBudget(source.View.Snapshot, out CowView? view))
                return;
            var model = new ModelView($"v{_nextName++}", view, (byte[])source.Contents.Clone(), (long[])source.Versions.Clone());
            source.ResetDirtyReference(); // documented: a snapshot is the source's new reference point
            _views.Add(model);
            Log($"{model.Name} = {source.Name}.Snapshot()");
            CheckWithinBudgetAfterMakingRoom(model);
        }

        private void Restore(ModelView target, ModelView source)
        {
            Begin($"{target.Name}.RestoreTo({source.Name})");
            if (!TryUnderBudget(() => { target.View.RestoreTo(source.View); return true; }, out _))
                return;
            Log($"{target.Name}.RestoreTo({source.Name})");
            if (ReferenceEquals(target, source))
                return;
            // Documented: the pages whose slot the restore changes become dirty in the target (equal
            // versions <=> equal slots); neither view's reference point moves.
            for (int page = 0; page < Pages; page++)
                if (target.Versions[page] != source.Versions[page])
                    target.MayBeDirty[page] = true;
            source.Contents.CopyTo(target.Contents, 0);
            source.Versions.CopyTo(target.Versions, 0);
        }

        private void Diff(ModelView a, ModelView b)
        {
            Begin($"{a.Name}.GetChangedPages({b.Name})");
            // Refused by an injected failure (of mincore): nothing to check but that nothing changed.
            if (!TryUnderBudget(() => a.View.GetChangedPages(b.View), countsMustStay: true, budgetMayRefuse: false, out CowPageSet? reported) ||
                !TryUnderBudget(() => b.View.GetChangedPages(a.View), countsMustStay: true, budgetMayRefuse: false, out CowPageSet? reverse))
                return;
            Log($"{a.Name}.GetChangedPages({b.Name}) = {Describe(reported)}");
            Check(reported.SequenceEqual(reverse), () => $"the diff is not symmetric: {Describe(reported)} vs {Describe(reverse)}");
            for (long page = 0; page < Pages; page++)
            {
                bool bytesDiffer = !PageOf(a.Contents, page).SequenceEqual(PageOf(b.Contents, page));
                bool versionsDiffer = a.Versions[page] != b.Versions[page];
                Check(!bytesDiffer || reported.Contains(page),
                    () => $"{a.Name} and {b.Name} differ in page {page} but GetChangedPages did not report it");
                Check(versionsDiffer || !reported.Contains(page),
                    () => $"GetChangedPages({a.Name}, {b.Name}) reported page {page}, which neither wrote since they parted");
            }
            Check(reported.Count == reported.ToArray().Length, () => $"Count {reported.Count} disagrees with the pages enumerated");
        }

        private void TakeDirty(ModelView target)
        {
            Begin($"{target.Name}.TakeDirtyPages()");
            // Refused by an injected failure: its pages stay dirty, and the reference point stays.
            if (!TryUnderBudget(target.View.TakeDirtyPages, countsMustStay: true, budgetMayRefuse: false, out CowPageSet? reported))
                return;
            Log($"{target.Name}.TakeDirtyPages() = {Describe(reported)}");
            for (long page = 0; page < Pages; page++)
            {
                bool changed = !PageOf(target.Contents, page).SequenceEqual(PageOf(target.DirtyReference, page));
                Check(!changed || reported.Contains(page),
                    () => $"page {page} of {target.Name} changed since the reference point but TakeDirtyPages did not report it");
                Check(target.MayBeDirty[page] || !reported.Contains(page),
                    () => $"TakeDirtyPages of {target.Name} reported page {page}, which was not written, prepared or restored since the reference point");
            }
            target.ResetDirtyReference();
        }

        private void Dispose(ModelView target)
        {
            Begin($"{target.Name}.Dispose()");
            target.View.Dispose();
            _views.Remove(target);
            Log($"{target.Name}.Dispose()");
            Check(target.View.IsDisposed, () => "IsDisposed is false after Dispose");
        }

        /// <summary>
        /// Under a tight budget an API call may be refused with CowMappingBudgetExceededException, which
        /// documents that nothing changed (the periodic full check compares every view with the
        /// model). Under the default budget no refusal is expected.
        /// </summary>
        private bool TryUnderBudget<T>(Func<T> operation, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out T? result) =>
            TryUnderBudget(operation, countsMustStay: true, budgetMayRefuse: true, out result);

        private bool TryUnderBudget<T>(Func<T> operation, bool countsMustStay, bool budgetMayRefuse,
                                       [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out T? result)
        {
            Counts? before = injection is null ? null : TakeCounts();
            try
            {
                result = operation()!;
                return true;
            }
            catch (Exception e) when (before is not null && injection!.IsDocumentedFailure(e, out _))
            {
                CheckRefusalChangedNothing(e, before, countsMustStay);
                result = default;
                return false;
            }
            catch (CowMappingBudgetExceededException e) when (mappingBudget is not null && budgetMayRefuse)
            {
                Log($"{_inFlight[(_inFlight.IndexOf(": ", StringComparison.Ordinal) + 2)..]} refused: {e.Message}");
                result = default;
                return false;
            }
        }

        // ---- checks ----

        /// <summary>
        /// Documented: API calls that need mappings (CreateRegion, Snapshot) make room by evicting
        /// first, or throw. So after one succeeds the engine is within its budget. (Between such
        /// calls it may be over: eviction runs only when mappings are needed, and a page prepared
        /// for writing pins its whole segment until the view's next snapshot or TakeDirtyPages.)
        /// </summary>
        private void CheckWithinBudgetAfterMakingRoom(ModelView view)
        {
            using IDisposable? suspended = SuspendInjection();
            CowEngineStats stats = view.View.Engine.GetStats();
            Check(stats.Mappings <= stats.MappingBudget,
                () => $"{_inFlight} succeeded, but the engine uses {stats.Mappings} mappings of its budget of {stats.MappingBudget}: {stats}");
        }

        private void CheckEveryView()
        {
            using IDisposable? suspended = SuspendInjection();
            Begin("checking every view");
            foreach (ModelView view in _views)
            {
                for (long page = 0; page < Pages; page++)
                    CheckPage(view, page);
                CowViewStats stats = view.View.GetStats();
                long recounted = view.View.CountMappings();
                long kernel = ProcMaps.CountOverlapping(view.View.BaseAddress, view.View.Length);
                Check(stats.Mappings == recounted && recounted == kernel,
                    () => $"{view.Name}: the engine counts {stats.Mappings} mappings, its page table gives {recounted}, /proc/self/maps {kernel}");
                Check(stats.PrivatePages + stats.SharedPages == Pages,
                    () => $"{view.Name}: {stats.PrivatePages} private + {stats.SharedPages} shared pages != {Pages}");
            }
        }

        private void CheckPage(ModelView view, long page)
        {
            ReadOnlySpan<byte> actual = view.View.AsSpan(page * PageSize, PageSize);
            ReadOnlySpan<byte> expected = PageOf(view.Contents, page);
            if (!actual.SequenceEqual(expected))
            {
                int at = actual.CommonPrefixLength(expected);
                Fail($"{view.Name} page {page} byte {at} is {actual[at]}, the model says {expected[at]}");
            }
        }

        private void CheckEngineIsEmpty(CowMemoryEngine engine)
        {
            CowEngineStats stats = engine.GetStats();
            Log($"all views disposed: {stats}");
            Check(stats.LiveViews == 0 && stats.SlotsInUse == 0 && stats.CommittedBytes == 0,
                () => $"after disposing every view the engine still holds memory: {stats}");
            unsafe
            {
                long leaves = (long)engine.Handle.Table->LeavesInUse, chunks = (long)engine.Handle.Table->ChunksInUse;
                Check(leaves == 0 && chunks == 0, () => $"after disposing every view {leaves} leaves and {chunks} chunks are still in use");
            }
        }

        // ---- helpers ----

        /// <param name="byFaults">
        /// Written through the view's memory: a write fault that continues a sequential run may also make
        /// up to FaultAroundPages - 1 pages after it, in its 2 MiB segment, writable (and so dirty), as
        /// documented; never for a region made with trackWrites.
        /// </param>
        private void MarkWritten(ModelView view, long start, long length, bool byFaults)
        {
            long first = start / PageSize, last = (start + length - 1) / PageSize;
            for (long page = first; page <= last; page++)
            {
                view.Versions[page] = ++_nextVersion;
                view.MayBeDirty[page] = true;
            }
            if (!byFaults || view.ExactWrites)
                return;
            long segmentEnd = Math.Min((last / SegmentPages + 1) * SegmentPages, Pages);
            for (long page = last + 1; page < Math.Min(last + view.View.Engine.FaultAroundPages, segmentEnd); page++)
                view.MayBeDirty[page] = true;
        }

        private static ReadOnlySpan<byte> PageOf(byte[] contents, long page) => contents.AsSpan((int)(page * PageSize), PageSize);

        private static string Describe(CowPageSet pages) =>
            pages.Count <= 12 ? $"[{string.Join(", ", pages)}]" : $"[{string.Join(", ", pages.Take(12))}, ... ({pages.Count} pages)]";

        /// <summary>Names the operation about to run (what a hang report shows).</summary>
        private void Begin(string operation) => Volatile.Write(ref _inFlight, $"step {_step}: {operation}");

        private void Log(string operation)
        {
            lock (_log)
            {
                _log.Enqueue($"  step {_step}: {operation}");
                if (_log.Count > 40)
                    _log.Dequeue();
            }
        }

        private string LogText()
        {
            lock (_log)
                return "last operations:\n" + string.Join("\n", _log);
        }

        private string Context() =>
            $"seed {seed} (replay with COWENGINE_SEED={seed}), mapping budget {mappingBudget?.ToString(CultureInfo.InvariantCulture) ?? "default"}, step {_step}";

        private void Check(bool condition, Func<string> message)
        {
            if (!condition)
                Fail(message());
        }

        private void Fail(string message) => Assert.Fail($"{Context()}: {message}\n{LogText()}");
    }

    /// <summary>
    /// Reports a hang from inside a child process: if <see cref="Progress"/> is not called for the
    /// stall limit, it prints what was going on to stderr and ends the process (the parent test then
    /// fails with that report). A thread stuck in a fault loop cannot be stopped any other way.
    /// </summary>
    private sealed class HangWatchdog : IDisposable
    {
        public const int HangExitCode = 97;
        public const string HangMarker = "HANG";

        private readonly Thread _thread;
        private long _lastProgress = Environment.TickCount64;
        private volatile bool _stopped;

        public HangWatchdog(TimeSpan stallLimit)
        {
            _thread = new Thread(() =>
            {
                while (!_stopped)
                {
                    Thread.Sleep(200);
                    if (!_stopped && Environment.TickCount64 - Volatile.Read(ref _lastProgress) > (long)stallLimit.TotalMilliseconds)
                    {
                        string description;
                        try
                        {
                            description = Describe?.Invoke() ?? "(no description)";
                        }
                        catch (Exception e)
                        {
                            description = $"(describing the hang failed: {e.Message})";
                        }
                        Console.Error.WriteLine($"{HangWatchdog.HangMarker}: {description}");
                        Console.Error.Flush();
                        Environment.Exit(HangWatchdog.HangExitCode);
                    }
                }
            })
            { IsBackground = true, Name = "hang watchdog" };
            _thread.Start();
        }

        public Func<string>? Describe { get; set; }

        public void Progress() => Volatile.Write(ref _lastProgress, Environment.TickCount64);

        public void Dispose() => _stopped = true;
    }
}
