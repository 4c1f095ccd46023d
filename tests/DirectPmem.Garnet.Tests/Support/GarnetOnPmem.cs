using System.Net;
using Garnet;
using Garnet.server;
using StackExchange.Redis;

namespace DirectPmem.Garnet.Tests.Support;

/// <summary>An in-process Garnet server on an emulated DirectPmem volume, listening on a free loopback port.</summary>
public sealed class GarnetOnPmem : IDisposable
{
    private readonly GarnetServer _server;

    private GarnetOnPmem(EmulatedVolume volume, GarnetServer server, int port)
    {
        Volume = volume;
        _server = server;
        Port = port;
    }

    public EmulatedVolume Volume { get; }

    public int Port { get; }

    public static GarnetServerOptions DefaultOptions(int port) => new()
    {
        EndPoints = [new IPEndPoint(IPAddress.Loopback, port)],
        EnableStorageTier = true,
        LogMemorySize = "2m",
        PageSize = "64k",
        SegmentSize = "4m",
        ObjectLogSegmentSize = "4m",
        IndexMemorySize = "1m",
        AofMemorySize = "1m",
        AofPageSize = "128k",
        AofSegmentSize = "4m",
        QuietMode = true,
        Recover = true,
    };

    /// <summary>Starts the server on <paramref name="volume"/>; it owns the volume from then on.</summary>
    public static GarnetOnPmem Start(EmulatedVolume volume, Action<GarnetServerOptions>? configure = null, int port = 0)
    {
        if (port == 0)
            port = Ports.FreeLoopbackPort();
        GarnetServerOptions options = DefaultOptions(port).UsePmemVolume(volume.Volume);
        configure?.Invoke(options);
        return new GarnetOnPmem(volume, StartServer(options), port);
    }

    /// <summary>Creates and starts a server; one that fails to start is disposed before the exception leaves.</summary>
    public static GarnetServer StartServer(GarnetServerOptions options)
    {
        var server = new GarnetServer(options);
        try
        {
            server.Start();
        }
        catch
        {
            server.Dispose();
            throw;
        }
        return server;
    }

    /// <summary>An admin-enabled StackExchange.Redis connection to a loopback port, with the tests' timeouts.</summary>
    public static ConnectionMultiplexer Connect(int port) =>
        ConnectionMultiplexer.Connect($"127.0.0.1:{port},allowAdmin=true,abortConnect=true,{RedisTimeouts.Options}");

    public ConnectionMultiplexer Connect() => Connect(Port);

    public void Dispose()
    {
        _server.Dispose();
        Volume.Dispose();
    }
}
