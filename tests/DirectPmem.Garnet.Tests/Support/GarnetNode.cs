using Garnet;
using Garnet.server;
using StackExchange.Redis;
using Tsavorite.core;

namespace DirectPmem.Garnet.Tests.Support;

/// <summary>Which device an in-process Garnet keeps its log, checkpoints and AOF on.</summary>
public enum GarnetDevice
{
    /// <summary>A DirectPmem volume on an emulated device-DAX device in a file (forced cache-line mode).</summary>
    DirectPmem,

    /// <summary>Garnet's own RandomAccess local-file device in a directory: the baseline.</summary>
    File,
}

/// <summary>
/// An in-process Garnet on either device, restartable on the same storage: the side-by-side
/// harness of the defect reproductions (a defect shown on both devices is Garnet's own).
/// </summary>
public sealed class GarnetNode : IDisposable
{
    private readonly GarnetServer _server;
    private readonly EmulatedVolume? _volume;

    private GarnetNode(GarnetServer server, EmulatedVolume? volume, int port)
    {
        _server = server;
        _volume = volume;
        Port = port;
    }

    public int Port { get; }

    /// <summary>Starts Garnet on <paramref name="device"/> kept at <paramref name="where"/> (a device file, or a directory); creates it when missing.</summary>
    public static GarnetNode Start(GarnetDevice device, string where, Action<GarnetServerOptions>? configure = null)
    {
        int port = Ports.FreeLoopbackPort();
        GarnetServerOptions options = GarnetOnPmem.DefaultOptions(port);
        EmulatedVolume? volume = null;
        if (device == GarnetDevice.DirectPmem)
        {
            volume = File.Exists(where) ? EmulatedVolume.Open(where) : EmulatedVolume.Create(where, 256L << 20);
            options.UsePmemVolume(volume.Volume);
        }
        else
        {
            options.LogDir = Path.Combine(where, "log");
            options.CheckpointDir = Path.Combine(where, "checkpoints");
            options.DeviceType = DeviceType.RandomAccess;
        }
        configure?.Invoke(options);
        GarnetServer server;
        try
        {
            server = GarnetOnPmem.StartServer(options);
        }
        catch
        {
            volume?.Dispose();
            throw;
        }
        return new GarnetNode(server, volume, port);
    }

    public ConnectionMultiplexer Connect() => GarnetOnPmem.Connect(Port);

    public void Dispose()
    {
        _server.Dispose();
        _volume?.Dispose();
    }
}
