using System.Globalization;
using DirectPmem.Mapping;

namespace DirectPmem.Testing;

/// <summary>
/// What a workload acknowledged before a simulated crash: the operations whose call had returned
/// when the crash was captured, and the ones that had begun (they may or may not have happened).
/// An acknowledgement made after the crash point is not recorded: the workload keeps running on
/// the volatile state, but nothing it returns from then on was promised before the crash.
/// Operations are numbered by the workload; a channel separates kinds of operation (appends and
/// truncations, say).
/// </summary>
public sealed class AckLog
{
    private readonly SimulatedDevice? _device;
    private readonly Dictionary<string, List<long>> _acknowledged = [];
    private readonly Dictionary<string, List<long>> _begun = [];

    internal AckLog(SimulatedDevice? device)
    {
        _device = device;
    }

    /// <summary>Whether the crash has been captured (later calls are not recorded).</summary>
    public bool Crashed => _device?.CapturedCrash is not null;

    /// <summary>Records that <paramref name="operation"/> is about to start, unless the crash was captured already.</summary>
    /// <param name="operation">The workload's number for the operation.</param>
    /// <param name="channel">The kind of operation.</param>
    public void Begin(long operation, string channel = "")
    {
        if (!Crashed)
        {
            List(_begun, channel).Add(operation);
        }
    }

    /// <summary>Records that <paramref name="operation"/> returned, unless the crash was captured already.</summary>
    /// <param name="operation">The workload's number for the operation.</param>
    /// <param name="channel">The kind of operation.</param>
    public void Acknowledge(long operation, string channel = "")
    {
        if (!Crashed)
        {
            List(_acknowledged, channel).Add(operation);
        }
    }

    /// <summary>The operations acknowledged before the crash, in order.</summary>
    /// <param name="channel">The kind of operation.</param>
    /// <returns>The operations.</returns>
    public IReadOnlyList<long> GetAcknowledged(string channel = "") => _acknowledged.TryGetValue(channel, out List<long>? list) ? list : [];

    /// <summary>The operations begun before the crash, in order.</summary>
    /// <param name="channel">The kind of operation.</param>
    /// <returns>The operations.</returns>
    public IReadOnlyList<long> GetBegun(string channel = "") => _begun.TryGetValue(channel, out List<long>? list) ? list : [];

    /// <summary>The acknowledgements recorded on every channel.</summary>
    internal long Count => _acknowledged.Values.Sum(l => (long)l.Count);

    private static List<long> List(Dictionary<string, List<long>> lists, string channel)
    {
        if (!lists.TryGetValue(channel, out List<long>? list))
        {
            list = [];
            lists.Add(channel, list);
        }
        return list;
    }
}

/// <summary>The outcome of an <see cref="AckCrashSweep"/>.</summary>
public sealed class AckCrashSweepResult
{
    internal AckCrashSweepResult(long crashPoints, long images, long acknowledged, IReadOnlyList<string> failures)
    {
        CrashPoints = crashPoints;
        Images = images;
        Acknowledged = acknowledged;
        Failures = failures;
    }

    /// <summary>The crash points tried: one before every drain of the workload, and the end.</summary>
    public long CrashPoints { get; }

    /// <summary>The media images recovered and checked.</summary>
    public long Images { get; }

    /// <summary>The operations the workload acknowledged in a run without a crash (every channel).</summary>
    public long Acknowledged { get; }

    /// <summary>
    /// The failing images, each described (crash point, what was acknowledged, the image and the check's exception).
    /// Empty unless <see cref="AckCrashSweep.MaxFailures"/> was above 0 (else the first failure throws); a negative
    /// control asserts it is not empty.
    /// </summary>
    public IReadOnlyList<string> Failures { get; }

    /// <summary>Throws when an image failed, naming how many and the first.</summary>
    /// <exception cref="InvalidOperationException"><see cref="Failures"/> is not empty.</exception>
    public void ThrowIfFailed()
    {
        if (Failures.Count > 0)
        {
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"{Failures.Count} failing image(s) out of {Images} ({CrashPoints} crash points); first:\n{Failures[0]}"));
        }
    }
}

/// <summary>
/// A crash sweep that knows which operations returned before the crash. Like
/// <see cref="CrashTest"/>, it crashes the workload before every drain (and at the end) and checks
/// media images of each crash (every in-flight 8-byte word old or new: all of them when few, else
/// the fixed strategies plus seeded random ones). Unlike it, the workload reports what it
/// acknowledged through an <see cref="AckLog"/>, and the check receives only what was acknowledged
/// before that crash: "every acknowledged operation is there; nothing else is, except what was in
/// flight". The workload must be deterministic (the same drains in the same order on every run).
/// </summary>
public sealed class AckCrashSweep
{
    /// <summary>The simulated device's length.</summary>
    public long DeviceLength { get; init; } = 128 * 1024;

    /// <summary>Formats the device; its drains are not crash points.</summary>
    public Action<DaxMapping>? Setup { get; init; }

    /// <summary>The workload: it writes through the mapping and reports what it begins and acknowledges.</summary>
    public required Action<DaxMapping, AckLog> Workload { get; init; }

    /// <summary>Recovers an image and checks it against what was acknowledged before its crash; it throws on a violation.</summary>
    public required Action<DaxMapping, AckLog> Check { get; init; }

    /// <summary>Random images per crash point when there are more than <see cref="ExhaustiveLimit"/>.</summary>
    public int RandomImages { get; init; } = 16;

    /// <summary>Every image of a crash point is checked when there are at most this many.</summary>
    public long ExhaustiveLimit { get; init; } = 256;

    /// <summary>The seed of the random images.</summary>
    public ulong Seed { get; init; } = 0xC0FFEE;

    /// <summary>
    /// 0 (the default): the first failing image throws. Above 0: failing images are returned in
    /// <see cref="AckCrashSweepResult.Failures"/> instead, and the sweep stops once it has this many (a negative
    /// control, which expects failures, asks for 1).
    /// </summary>
    public int MaxFailures { get; init; }

    /// <summary>Runs the sweep; with <see cref="MaxFailures"/> 0 the first failing image throws, naming the crash point, the image and what was acknowledged.</summary>
    /// <returns>How many crash points and images were checked, and the failures when they were collected.</returns>
    /// <exception cref="InvalidOperationException">A check failed (the inner exception is the check's), or the workload is not deterministic.</exception>
    public AckCrashSweepResult Run()
    {
        long drains;
        long acknowledged;
        using (SimulatedDevice counting = Prepare())
        {
            var all = new AckLog(null);
            Workload(counting.Mapping, all);
            drains = counting.DrainCount;
            acknowledged = all.Count;
        }
        var failures = new List<string>();
        long images = 0;
        for (long point = 1; point <= drains + 1; point++)
        {
            using SimulatedDevice device = Prepare();
            if (point <= drains)
            {
                device.CrashAtDrain = point;
            }
            var acks = new AckLog(device);
            Workload(device.Mapping, acks);
            CrashState state = point <= drains
                ? device.CapturedCrash ?? throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                    $"Crash point {point} was not reached: the workload is not deterministic (it drained {drains} times on its first run)."))
                : device.Crash();
            foreach ((ImageStrategy strategy, ulong seed) in state.ImagesToCheck(point, ExhaustiveLimit, RandomImages, Seed, includeEviction: true))
            {
                images++;
                CrashImage image = state.CreateImage(strategy, seed);
                using SimulatedDevice recovered = image.Open();
                try
                {
                    Check(recovered.Mapping, acks);
                }
                catch (Exception e)
                {
                    string failure = string.Create(CultureInfo.InvariantCulture,
                        $"Crash point {point} of {drains + 1}, image {strategy} seed 0x{seed:x}, {state.InFlight.Count} words in flight, {acks.GetAcknowledged().Count} acknowledged: {e.GetType().Name}: {e.Message}\n{image.Describe(16)}");
                    if (MaxFailures <= 0)
                    {
                        throw new InvalidOperationException(failure, e);
                    }
                    failures.Add(failure + "\n" + e);
                    if (failures.Count >= MaxFailures)
                    {
                        return new AckCrashSweepResult(drains + 1, images, acknowledged, failures);
                    }
                }
            }
        }
        return new AckCrashSweepResult(drains + 1, images, acknowledged, failures);
    }

    private SimulatedDevice Prepare()
    {
        SimulatedDevice device = SimulatedDevice.Create(DeviceLength);
        Setup?.Invoke(device.Mapping);
        device.ResetCounters();
        return device;
    }
}
