using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace DirectPmem.Garnet.Tests.Support;

/// <summary>
/// A minimal RESP2 client on one connection, for commands whose connection state matters
/// (READONLY on a cluster replica) and where a cluster-aware client would follow redirects.
/// </summary>
public sealed class RespClient : IDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;

    public RespClient(int port)
    {
        _tcp = new TcpClient();
        _tcp.Connect("127.0.0.1", port);
        _tcp.ReceiveTimeout = 30_000;
        _stream = _tcp.GetStream();
        _reader = new StreamReader(_stream, Encoding.UTF8);
    }

    /// <summary>Sends a command; returns a string, a long, null, an object[] or a RespError.</summary>
    public object? Call(params string[] args)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"*{args.Length}\r\n");
        foreach (string arg in args)
            sb.Append(CultureInfo.InvariantCulture, $"${Encoding.UTF8.GetByteCount(arg)}\r\n{arg}\r\n");
        byte[] bytes = Encoding.UTF8.GetBytes(sb.ToString());
        _stream.Write(bytes);
        return ReadReply();
    }

    public string? CallString(params string[] args) => Call(args) switch
    {
        RespError e => throw new InvalidOperationException($"{string.Join(' ', args)}: {e.Message}"),
        object o => Convert.ToString(o, CultureInfo.InvariantCulture),
        null => null,
    };

    private object? ReadReply()
    {
        string line = _reader.ReadLine() ?? throw new IOException("connection closed");
        switch (line[0])
        {
            case '+': return line[1..];
            case '-': return new RespError(line[1..]);
            case ':': return long.Parse(line.AsSpan(1), CultureInfo.InvariantCulture);
            case '$':
                int length = int.Parse(line.AsSpan(1), CultureInfo.InvariantCulture);
                if (length < 0)
                    return null;
                var buffer = new char[length];
                int read = 0;
                while (read < length)
                    read += _reader.Read(buffer, read, length - read);
                _reader.ReadLine();
                return new string(buffer);
            case '*':
                int count = int.Parse(line.AsSpan(1), CultureInfo.InvariantCulture);
                if (count < 0)
                    return null;
                var items = new object?[count];
                for (int i = 0; i < count; i++)
                    items[i] = ReadReply();
                return items;
            default: throw new IOException($"unexpected RESP line '{line}'");
        }
    }

    public void Dispose()
    {
        _reader.Dispose();
        _tcp.Dispose();
    }
}

public sealed record RespError(string Message);
