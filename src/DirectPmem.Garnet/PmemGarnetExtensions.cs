using Garnet.server;

namespace DirectPmem.Garnet;

/// <summary>Wires a <see cref="PmemVolume"/> into Garnet's server options.</summary>
public static class PmemGarnetExtensions
{
    /// <summary>
    /// Puts the hybrid log (with <c>EnableStorageTier</c>), the append-only file and the
    /// checkpoints of the server on <paramref name="volume"/>. <c>LogDir</c> and
    /// <c>CheckpointDir</c>, if not set, become the names "log" and "checkpoints" on the volume
    /// (they are device-name prefixes there, not host directories).
    /// </summary>
    /// <param name="options">The server options to change.</param>
    /// <param name="volume">The volume.</param>
    /// <returns><paramref name="options"/>.</returns>
    public static GarnetServerOptions UsePmemVolume(this GarnetServerOptions options, PmemVolume volume)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(volume);
        options.DeviceFactoryCreator = volume.CreateDeviceFactoryCreator();
        if (string.IsNullOrEmpty(options.LogDir))
            options.LogDir = "log";
        if (string.IsNullOrEmpty(options.CheckpointDir))
            options.CheckpointDir = "checkpoints";
        return options;
    }
}
