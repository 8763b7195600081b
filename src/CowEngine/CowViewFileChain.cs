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
/// time; the view itself may be written by other threads meanwhile.</para>
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
        string path = string.Create(CultureInfo.InvariantCulture, $"{_basePath}.{_files.Count:D4}.cowview");
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
        return header;
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
