using System.Globalization;

namespace CowEngine.Stress;

/// <summary>The command line of the stress program.</summary>
internal sealed class StressOptions
{
    public const string Usage =
        """
        usage: CowEngine.Stress [--seconds N | --minutes N] [--seed S] [--threads N]
                                [--progress-seconds N] [--checkpoint-seconds N] [--watchdog-seconds N]

          --seconds N             run for N seconds (default 60)
          --minutes N             soak: run for N minutes
          --seed S                seed of every thread's random choices (default: a fresh one, printed)
          --threads N             writer threads (default 2 x processor count)
          --progress-seconds N    print a progress line every N seconds (default 10)
          --checkpoint-seconds N  pause every thread and audit the whole engine every N seconds (default 10)
          --watchdog-seconds N    fail the run when an operation makes no progress for N seconds (default 30)
          --mapping-budget N      the engine's MappingBudget (default: the engine's default); a budget
                                  below the working set's worst case makes the engine evict under load
          --inject-rate N         make N of every million system calls outside the fault handler fail
                                  (mmap, mprotect, munmap, fallocate, mincore, the userfaultfd ioctls;
                                  docs/reliability.md): each API call that fails must throw the documented
                                  exception and change nothing (e.g. 20000: 2%)
          --simulate-hang KIND    test the watchdog: after 2 s one thread hangs in an operation
                                  (managed: sleeps forever; gc: blocks in cooperative mode, which
                                  freezes the whole runtime at the next GC, like a stuck fault handler)

               CowEngine.Stress --gc-starvation-probe engine|plain [SECONDS]
                                  not a stress run: how far two writers get beside a bare GC.Collect
                                  loop, with and without the engine (docs/reliability.md)

        Exit codes: 0 no mismatch and every invariant held; 1 mismatches or violated invariants;
        2 bad usage; 3 the watchdog found no progress (a deadlock or livelock); 4 the harness itself failed.
        """;

    public TimeSpan Duration { get; private set; } = TimeSpan.FromSeconds(60);

    public int Seed { get; private set; } = Random.Shared.Next(1, int.MaxValue);

    public int WriterThreads { get; private set; } = 2 * Environment.ProcessorCount;

    public TimeSpan ProgressInterval { get; private set; } = TimeSpan.FromSeconds(10);

    public TimeSpan CheckpointInterval { get; private set; } = TimeSpan.FromSeconds(10);

    public TimeSpan WatchdogTimeout { get; private set; } = TimeSpan.FromSeconds(30);

    /// <summary>The engine's mapping budget, or null for the engine's default (see --mapping-budget).</summary>
    public int? MappingBudget { get; private set; }

    /// <summary>Failures per million system calls outside the fault handler, or null for none (see --inject-rate).</summary>
    public uint? InjectRate { get; private set; }

    /// <summary>null, "managed" or "gc": see --simulate-hang.</summary>
    public string? SimulatedHang { get; private set; }

    /// <summary>Parses the arguments; returns null and an error message when they are not valid.</summary>
    public static StressOptions? Parse(string[] args, out string? error)
    {
        var options = new StressOptions();
        error = null;
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i];
            if (name is "-h" or "--help")
            {
                error = "";
                return null;
            }
            if (i + 1 >= args.Length)
            {
                error = $"{name} needs a value";
                return null;
            }
            string value = args[++i];
            if (name == "--simulate-hang")
            {
                if (value is not ("managed" or "gc"))
                {
                    error = $"--simulate-hang: '{value}' is not 'managed' or 'gc'";
                    return null;
                }
                options.SimulatedHang = value;
                continue;
            }
            if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double number) || number <= 0)
            {
                error = $"{name}: '{value}' is not a positive number";
                return null;
            }
            switch (name)
            {
                case "--seconds": options.Duration = TimeSpan.FromSeconds(number); break;
                case "--minutes": options.Duration = TimeSpan.FromMinutes(number); break;
                case "--seed": options.Seed = checked((int)number); break;
                case "--threads": options.WriterThreads = checked((int)number); break;
                case "--progress-seconds": options.ProgressInterval = TimeSpan.FromSeconds(number); break;
                case "--checkpoint-seconds": options.CheckpointInterval = TimeSpan.FromSeconds(number); break;
                case "--watchdog-seconds": options.WatchdogTimeout = TimeSpan.FromSeconds(number); break;
                case "--mapping-budget": options.MappingBudget = checked((int)number); break;
                case "--inject-rate" when number <= 1_000_000: options.InjectRate = (uint)number; break;
                case "--inject-rate":
                    error = $"--inject-rate: {value} is more than a million per million";
                    return null;
                default:
                    error = $"unknown option {name}";
                    return null;
            }
        }
        return options;
    }
}
