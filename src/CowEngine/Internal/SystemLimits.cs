using System.Globalization;

namespace CowEngine.Internal;

/// <summary>Kernel limits the engine plans around.</summary>
internal static class SystemLimits
{
    /// <summary>The kernel's default for vm.max_map_count, used when /proc cannot be read.</summary>
    public const int DefaultMaxMapCount = 65530;

    /// <summary>The per-process mapping limit, from /proc/sys/vm/max_map_count.</summary>
    public static int MaxMapCount()
    {
        try
        {
            string text = File.ReadAllText("/proc/sys/vm/max_map_count").Trim();
            return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value) && value > 0
                ? value
                : DefaultMaxMapCount;
        }
        catch (IOException)
        {
            return DefaultMaxMapCount;
        }
        catch (UnauthorizedAccessException)
        {
            return DefaultMaxMapCount;
        }
    }
}
