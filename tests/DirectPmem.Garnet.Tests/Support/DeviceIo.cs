using System.Runtime.InteropServices;
using Tsavorite.core;

namespace DirectPmem.Garnet.Tests.Support;

/// <summary>Synchronous helpers over IDevice's callback API (they wait for the callback), capturing what the callback was given.</summary>
public static unsafe class DeviceIo
{
    public readonly record struct Completion(uint ErrorCode, uint Bytes, Exception? Exception, int Calls, int ThreadId);

    public static Completion Write(IDevice device, int segment, ulong offset, ReadOnlySpan<byte> data)
    {
        byte* buffer = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(data.Length, 1), 4096);
        try
        {
            data.CopyTo(new Span<byte>(buffer, data.Length));
            Completion result = default;
            int calls = 0;
            using var done = new ManualResetEventSlim();
            device.WriteAsync((IntPtr)buffer, segment, offset, (uint)data.Length,
                (error, bytes, _, ex) => { calls++; result = new Completion(error, bytes, ex, calls, Environment.CurrentManagedThreadId); done.Set(); }, null!);
            Wait(done, "write", segment, offset);
            return result with { Calls = calls };
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    public static (Completion Completion, byte[] Data) Read(IDevice device, int segment, ulong offset, int length)
    {
        byte* buffer = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(length, 1), 4096);
        try
        {
            new Span<byte>(buffer, length).Fill(0xEE);
            Completion result = default;
            int calls = 0;
            using var done = new ManualResetEventSlim();
            device.ReadAsync(segment, offset, (IntPtr)buffer, (uint)length,
                (error, bytes, _, ex) => { calls++; result = new Completion(error, bytes, ex, calls, Environment.CurrentManagedThreadId); done.Set(); }, null!);
            Wait(done, "read", segment, offset);
            return (result with { Calls = calls }, new Span<byte>(buffer, length).ToArray());
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    // A device that completes inline (DirectPmem's) has called back already; Garnet's file device
    // calls back from another thread, and the buffer must outlive its I/O.
    private static void Wait(ManualResetEventSlim done, string what, int segment, ulong offset)
    {
        TimeSpan limit = TestTime.Limit(TimeSpan.FromSeconds(30));
        if (!done.Wait(limit))
            throw new TimeoutException($"a {what} of segment {segment} at offset {offset} did not call back {TestTime.Describe(limit)}");
    }

    public static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
