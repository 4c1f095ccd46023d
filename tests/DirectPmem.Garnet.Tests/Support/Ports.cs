using System.Net;
using System.Net.Sockets;

namespace DirectPmem.Garnet.Tests.Support;

public static class Ports
{
    /// <summary>A loopback port that was free a moment ago.</summary>
    public static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
