namespace CowEngine;

/// <summary>
/// A read-only, seekable <see cref="Stream"/> over a view's bytes, typically a snapshot, for saving
/// it with ordinary .NET APIs: <c>new CowViewStream(snapshot).CopyTo(file)</c>, compression
/// streams, hashing, HTTP content.
/// </summary>
/// <remarks>
/// <para>Reads copy from the view with ordinary loads, so a page of a snapshot that was never
/// touched (or was unmapped to stay within the mapping budget) is mapped by the engine's fault
/// handler as usual. That is why the stream never hands the view's own memory to a system call:
/// the kernel would fail with EFAULT on such a page instead of faulting.</para>
/// <para>Stream over a snapshot that nobody writes, to read a consistent picture: a stream over a
/// view that other threads are writing sees each byte as it is when read.</para>
/// <para>Each read holds a reference on the view, so disposing the view concurrently cannot unmap
/// it mid-copy; reads after the view is disposed throw <see cref="ObjectDisposedException"/>.
/// Like other streams, one instance is not for concurrent use by several threads.</para>
/// </remarks>
public sealed unsafe class CowViewStream : Stream
{
    private readonly CowView _view;
    private readonly bool _ownsView;
    private long _position;
    private bool _disposed;

    /// <summary>Creates a stream over the whole view, positioned at its start.</summary>
    /// <param name="view">The view to read.</param>
    /// <param name="ownsView">True: disposing the stream disposes the view (e.g. <c>new CowViewStream(world.Snapshot(), ownsView: true)</c>).</param>
    /// <exception cref="ObjectDisposedException">The view is disposed.</exception>
    public CowViewStream(CowView view, bool ownsView = false)
    {
        ArgumentNullException.ThrowIfNull(view);
        ObjectDisposedException.ThrowIf(view.IsDisposed, view);
        _view = view;
        _ownsView = ownsView;
    }

    /// <summary>The view the stream reads.</summary>
    public CowView View => _view;

    /// <inheritdoc/>
    public override bool CanRead => !_disposed;

    /// <inheritdoc/>
    public override bool CanSeek => !_disposed;

    /// <summary>False: the stream is read-only.</summary>
    public override bool CanWrite => false;

    /// <summary>The view's length.</summary>
    public override long Length
    {
        get
        {
            ThrowIfDisposed();
            return _view.Length;
        }
    }

    /// <summary>The offset in the view of the next byte read; may be set past the end (reads then return 0).</summary>
    public override long Position
    {
        get
        {
            ThrowIfDisposed();
            return _position;
        }
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            ThrowIfDisposed();
            _position = value;
        }
    }

    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count)
    {
        ValidateBufferArguments(buffer, offset, count);
        return Read(buffer.AsSpan(offset, count));
    }

    /// <summary>Copies up to <c>buffer.Length</c> bytes from the view at <see cref="Position"/>.</summary>
    /// <returns>Bytes copied: fewer than asked only at the end of the view, 0 past it.</returns>
    /// <exception cref="ObjectDisposedException">The stream or the view is disposed.</exception>
    public override int Read(Span<byte> buffer)
    {
        ThrowIfDisposed();
        long available = _view.Length - _position;
        if (available <= 0 || buffer.IsEmpty)
            return 0;
        int count = (int)Math.Min(buffer.Length, available);
        using (CowViewLease.Acquire(_view))
            new ReadOnlySpan<byte>(_view.Pointer + _position, count).CopyTo(buffer);
        _position += count;
        return count;
    }

    /// <inheritdoc/>
    public override int ReadByte()
    {
        ThrowIfDisposed();
        if (_position >= _view.Length)
            return -1;
        int value;
        using (CowViewLease.Acquire(_view))
            value = _view.Pointer[_position];
        _position++;
        return value;
    }

    /// <summary>Reads synchronously (copying from memory does not block) and returns a completed task.</summary>
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        ValidateBufferArguments(buffer, offset, count);
        return ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }

    /// <summary>Reads synchronously (copying from memory does not block) and returns a completed task.</summary>
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
            return ValueTask.FromCanceled<int>(cancellationToken);
        try
        {
            return ValueTask.FromResult(Read(buffer.Span));
        }
        catch (Exception exception)
        {
            return ValueTask.FromException<int>(exception);
        }
    }

    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin)
    {
        ThrowIfDisposed();
        long target = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            SeekOrigin.End => _view.Length + offset,
            _ => throw new ArgumentOutOfRangeException(nameof(origin), origin, "Not a SeekOrigin."),
        };
        if (target < 0)
            throw new IOException($"Cannot seek to {target}, before the start of the view.");
        _position = target;
        return target;
    }

    /// <summary>Does nothing: the stream is read-only.</summary>
    public override void Flush()
    {
    }

    /// <summary>Not supported: the stream is read-only.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public override void SetLength(long value) => throw new NotSupportedException("A CowViewStream is read-only; its length is the view's.");

    /// <summary>Not supported: the stream is read-only (write to the view's memory instead).</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("A CowViewStream is read-only.");

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (!_disposed)
        {
            _disposed = true;
            if (disposing && _ownsView)
                _view.Dispose();
        }
        base.Dispose(disposing);
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
}
