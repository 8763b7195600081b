using Microsoft.Extensions.Logging;

namespace CowEngine.Tests.Support;

/// <summary>An <see cref="ILoggerFactory"/> that keeps every entry logged through it, for tests of what the engine logs.</summary>
/// <remarks>Thread-safe: the engine may log from any thread, the finalizer's included.</remarks>
internal sealed class CapturingLoggerFactory : ILoggerFactory, ILogger
{
    private readonly List<Entry> _entries = [];

    /// <summary>One log entry: its level, event id and formatted message.</summary>
    public sealed record Entry(LogLevel Level, int EventId, string Message);

    /// <summary>A copy of the entries so far, oldest first.</summary>
    public IReadOnlyList<Entry> Entries
    {
        get
        {
            lock (_entries)
                return _entries.ToArray();
        }
    }

    public ILogger CreateLogger(string categoryName) => this;

    public void AddProvider(ILoggerProvider provider) { }

    public void Dispose() { }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (_entries)
            _entries.Add(new Entry(logLevel, eventId.Id, formatter(state, exception)));
    }
}
