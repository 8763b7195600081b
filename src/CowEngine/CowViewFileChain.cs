using System.Globalization;

namespace CowEngine;

/// <summary>
/// Incremental saving of one view: the first <see cref="Save"/> writes a full file, every later one
/// only the pages that changed since the previous save. <see cref="Load"/> (or
/// <see cref="CowViewFile.Load(CowMemoryEngine, IReadOnlyList{string})"/> with <see cref="Files"/>)
/// reads the chain back as a region holding the bytes of the last save.
/// </summary>
/// <remarks>
/// <para>Each save takes a snapshot of the view (a consistent cut: writes by other threads are in
/// it or not, whole), writes the pages that differ from the previous save's snapshot
/// (<see cref="CowView.GetChangedPages"/>, which costs the pages written since, not the view's
/// size), then keeps the new snapshot for the next save and disposes the old one. So the chain
/// holds one snapshot alive; its pages are shared with the view until the view writes them.</para>
/// <para>Files are named <c>{basePath}.{sequence:D4}.cowview</c>. Thread safety: one thread at a
/// time; the view itself may be written by other threads meanwhile. One chain at a time may save
/// under a base path: a new chain's first save replaces the full file of the one before.</para>
/// <para><b>Crashes.</b> Each file is written under a temporary name, flushed and renamed into place
/// (<see cref="CowViewFile"/>), and a save never rewrites a file of its own chain: a process killed
/// at any point of a save leaves on disk the chain as it was after the previous save, or the chain
/// with the new file complete, never a half-written link. After a restart <see cref="FindFiles"/>
/// (or <see cref="LoadLatest"/>) finds the chain from the files alone. When a new chain's full file
/// replaces an older chain's, the older chain's changes files are deleted after it; if the process
/// dies first, <see cref="FindFiles"/> tells them apart by their chain id and leaves them out. A
/// crash can leave a temporary file (<c>.{name}.{pid}.{id}.tmp</c>) beside the chain: it is never
/// loaded, and the next save of a chain under the same base path deletes those of processes that no
/// longer run.</para>
/// </remarks>
public sealed class CowViewFileChain : IDisposable
{
    private readonly string _basePath;
    private readonly List<string> _files = new();
    private CowView? _savedSnapshot;
    private bool _disposed;

    /// <summary>Starts a chain; nothing is written until <see cref="Save"/>.</summary>
    /// <param name="basePath">Path prefix of the chain's files (directory and name).</param>
    public CowViewFileChain(string basePath)
    {
        ArgumentException.ThrowIfNullOrEmpty(basePath);
        _basePath = basePath;
    }

    /// <summary>The files written so far, full file first: the chain to load.</summary>
    public IReadOnlyList<string> Files => _files;

    /// <summary>The header of the file written last; null before the first save.</summary>
    public CowViewFileHeader? LastSaved { get; private set; }

    /// <summary>
    /// Saves <paramref name="view"/>: the whole view the first time (pages that are all zero are
    /// not stored), afterwards only the pages changed since the previous save.
    /// </summary>
    /// <param name="view">The view to save; the same view (or one of the same size and engine) every time.</param>
    /// <returns>The header of the file written.</returns>
    /// <exception cref="ArgumentException">The view differs in size or engine from the one saved before.</exception>
    /// <exception cref="ObjectDisposedException">The chain or the view is disposed.</exception>
    /// <exception cref="IOException">Writing the file failed; the chain is unchanged and the save may be retried.</exception>
    public CowViewFileHeader Save(CowView view)
    {
        ArgumentNullException.ThrowIfNull(view);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_savedSnapshot is not null && (view.Length != _savedSnapshot.Length || !ReferenceEquals(view.Engine, _savedSnapshot.Engine)))
            throw new ArgumentException($"The chain saves a view of {_savedSnapshot.Length} bytes of one engine; this view has {view.Length} bytes or another engine.", nameof(view));
        string path = PathOf(_basePath, _files.Count);
        CowView snapshot = view.Snapshot();
        CowViewFileHeader header;
        try
        {
            header = _savedSnapshot is null
                ? CowViewFile.Save(snapshot, path)
                : CowViewFile.SaveChanges(snapshot, _savedSnapshot, LastSaved!, path);
        }
        catch
        {
            snapshot.Dispose();
            throw;
        }
        _savedSnapshot?.Dispose();
        _savedSnapshot = snapshot;
        _files.Add(path);
        LastSaved = header;
        DeleteStaleLinks(_basePath, _files.Count);
        RemoveStaleTemporaries(_basePath);
        return header;
    }

    /// <summary>
    /// Finds the chain saved under <paramref name="basePath"/> from the files on disk, after a
    /// restart or a crash: the full file <c>{basePath}.0000.cowview</c>, then each changes file
    /// <c>{basePath}.0001.cowview</c>, ... that belongs to its chain, up to the first one that is
    /// missing or is a leftover of an older chain saved under the same base path (an intact header
    /// with another chain id). Pass the list to
    /// <see cref="CowViewFile.Load(CowMemoryEngine, IReadOnlyList{string})"/>, which checks every
    /// page.
    /// </summary>
    /// <param name="basePath">The base path the chain was created with.</param>
    /// <returns>The chain's files, full file first.</returns>
    /// <exception cref="FileNotFoundException">There is no full file under <paramref name="basePath"/>.</exception>
    /// <exception cref="InvalidDataException">
    /// A file's header is damaged or truncated, the first file is not a full file, or a file of the
    /// chain is out of place: a damaged link is reported, never silently left out (that would load
    /// an older state as if it were the newest).
    /// </exception>
    /// <exception cref="IOException">Reading a file failed.</exception>
    public static IReadOnlyList<string> FindFiles(string basePath)
    {
        ArgumentException.ThrowIfNullOrEmpty(basePath);
        string fullPath = PathOf(basePath, 0);
        if (!File.Exists(fullPath))
            throw new FileNotFoundException($"No CowEngine view file chain is saved under {basePath}: {fullPath} does not exist.", fullPath);
        CowViewFileHeader full = CowViewFile.ReadHeader(fullPath);
        if (full.Kind != CowViewFileKind.Full)
            throw new InvalidDataException($"{fullPath} is not a usable CowEngine view file: a chain must start with a full file; this is changes file {full.Sequence} of chain {full.ChainId}.");
        var files = new List<string> { fullPath };
        for (int sequence = 1; ; sequence++)
        {
            string path = PathOf(basePath, sequence);
            if (!File.Exists(path))
                break;
            CowViewFileHeader header = CowViewFile.ReadHeader(path);
            if (header.ChainId != full.ChainId)
                break; // an older chain's leftover, not yet deleted
            if (header.Kind != CowViewFileKind.Changes || header.Sequence != sequence)
                throw new InvalidDataException($"{path} is not a usable CowEngine view file: it belongs to the chain of {fullPath} " +
                    $"but is its {header.Kind.ToString().ToLowerInvariant()} file {header.Sequence}, not changes file {sequence}.");
            files.Add(path);
        }
        return files;
    }

    /// <summary>
    /// Loads the newest state saved under <paramref name="basePath"/>: the chain
    /// <see cref="FindFiles"/> finds, loaded as a new region of <paramref name="engine"/>.
    /// </summary>
    /// <exception cref="FileNotFoundException">There is no full file under <paramref name="basePath"/>.</exception>
    /// <exception cref="InvalidDataException">A file of the chain is damaged or out of place.</exception>
    /// <exception cref="IOException">Reading a file failed.</exception>
    /// <exception cref="CowCapacityExceededException">The engine's capacity is in use.</exception>
    public static CowView LoadLatest(CowMemoryEngine engine, string basePath)
    {
        ArgumentNullException.ThrowIfNull(engine);
        return CowViewFile.Load(engine, FindFiles(basePath));
    }

    private static string PathOf(string basePath, int sequence) =>
        string.Create(CultureInfo.InvariantCulture, $"{basePath}.{sequence:D4}.cowview");

    /// <summary>
    /// Deletes the files numbered from <paramref name="firstStale"/> on: left by an older chain
    /// under the same base path (this chain has not written them). The highest goes first, so a
    /// crash in between leaves a shorter run after this chain's files, which the next save deletes
    /// and which <see cref="FindFiles"/> leaves out meanwhile. Best effort: a file that cannot be
    /// deleted is left for the next save.
    /// </summary>
    private static void DeleteStaleLinks(string basePath, int firstStale)
    {
        int last = firstStale - 1;
        while (File.Exists(PathOf(basePath, last + 1)))
            last++;
        for (int sequence = last; sequence >= firstStale; sequence--)
        {
            try
            {
                File.Delete(PathOf(basePath, sequence));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return; // the save itself succeeded; FindFiles ignores what is left
            }
        }
    }

    /// <summary>
    /// Deletes the temporary files of any link of a chain under <paramref name="basePath"/> that
    /// saves killed before their rename left behind (their process no longer runs): a new chain does
    /// not save every sequence number an older one reached, so <see cref="CowViewFile"/>'s own
    /// cleanup, per file name, would leave them.
    /// </summary>
    private static void RemoveStaleTemporaries(string basePath)
    {
        string fullPath = Path.GetFullPath(basePath);
        string prefix = Path.GetFileName(fullPath) + ".";
        CowViewFileDirectory.RemoveStaleTemporaries(Path.GetDirectoryName(fullPath)!, target =>
            target.Length == prefix.Length + 4 + ".cowview".Length && target.StartsWith(prefix, StringComparison.Ordinal)
            && target.EndsWith(".cowview", StringComparison.Ordinal) && target.AsSpan(prefix.Length, 4).IndexOfAnyExceptInRange('0', '9') < 0);
    }

    /// <summary>Loads the chain as a new region of <paramref name="engine"/> (see <see cref="CowViewFile.Load(CowMemoryEngine, IReadOnlyList{string})"/>).</summary>
    /// <exception cref="InvalidOperationException">Nothing was saved yet.</exception>
    public CowView Load(CowMemoryEngine engine)
    {
        if (_files.Count == 0)
            throw new InvalidOperationException("The chain has no files yet: call Save first.");
        return CowViewFile.Load(engine, _files);
    }

    /// <summary>Releases the snapshot kept for the next save. The files stay.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _savedSnapshot?.Dispose();
        _savedSnapshot = null;
    }
}
