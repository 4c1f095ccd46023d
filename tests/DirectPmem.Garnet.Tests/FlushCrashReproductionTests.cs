using System.Runtime.InteropServices;
using DirectPmem.Garnet.Tests.Support;
using Tsavorite.core;
using Xunit;

namespace DirectPmem.Garnet.Tests;

/// <summary>
/// Garnet's page-flush crash of the cluster soak (docs/garnet-known-defects.md, "A node ends itself
/// while flushing a page"), replayed from the files a crashed node left on Garnet's own file device.
/// The files (tens of MB) are not in the repository: the soak keeps them with
/// DIRECTPMEM_CLUSTER_SOAK_EVIDENCE=dir, and this test takes the crashed node's directory from
/// DIRECTPMEM_GARNET_FLUSH_CRASH_DIR (it skips without it). Each start works on a copy: in a
/// directory for Garnet's file device, and imported file by file into a DirectPmem volume (a file
/// "dir/name.N" becomes segment N of the device "dir/name") for DirectPmem, so both devices
/// recover the same bytes.
/// </summary>
[Collection("Garnet")]
public sealed class FlushCrashReproductionTests : IDisposable
{
    private const string Knob = "DIRECTPMEM_GARNET_FLUSH_CRASH_DIR";
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static void Log(string line) => TestContext.Current.TestOutputHelper?.WriteLine(line);

    [Theory]
    [InlineData(GarnetDevice.File)]
    [InlineData(GarnetDevice.DirectPmem)]
    public void TheKeptFilesRecoveredWithTheirAofIn16mCrashTheNextCheckpointWithoutTheAofOrIn64mTheyDoNot_AGarnetDefect(GarnetDevice device)
    {
        string? kept = Environment.GetEnvironmentVariable(Knob);
        if (string.IsNullOrEmpty(kept))
            Assert.Skip($"needs the directory of a soak node that ended with the page-flush crash on Garnet's file device in {Knob} (kept by DIRECTPMEM_CLUSTER_SOAK_EVIDENCE)");
        Assert.True(Directory.Exists(Path.Combine(kept, "checkpoints")), $"{Knob}={kept} holds no checkpoints directory: not a node directory of Garnet's file device");

        // Checkpoint + AOF recovery, then a checkpoint: Tsavorite's snapshot flush throws in
        // LogRecord.get_KeyOverflow on a record the AOF replay put in memory. When Garnet fixes
        // it, SAVE answers OK here: make this a regression test and update the page.
        (object? save, string output, long keys) = RecoverAndSave(device, kept, "with-aof", "--commit-per-op");
        Log($"{device}: recovered with the AOF: {keys} keys, SAVE replied {Describe(save)}");
        Assert.IsType<RespError>(save);
        Assert.True(GarnetFlushCrash.In(output), $"{device}: the failed SAVE was not {GarnetFlushCrash.Description}:\n{output}");

        // The same checkpoint without the AOF replay: the checkpoint's own records flush.
        (save, output, long keysWithoutAof) = RecoverAndSave(device, kept, "without-aof", "--no-aof");
        Log($"{device}: recovered without the AOF: {keysWithoutAof} keys, SAVE replied {Describe(save)}");
        Assert.Equal("OK", save);
        Assert.DoesNotContain("IndexOutOfRangeException", output, StringComparison.Ordinal);

        // The same checkpoint and AOF with the sample's default log memory (64m, not the soak's
        // 16m): everything recovers and the checkpoint succeeds. The way out for a crashed node.
        (save, output, long keysLarger) = RecoverAndSave(device, kept, "default-memory", "--commit-per-op", "64m");
        Log($"{device}: recovered with the AOF and --memory 64m: {keysLarger} keys, SAVE replied {Describe(save)}");
        Assert.Equal("OK", save);
        Assert.Equal(keys, keysLarger);
        Assert.DoesNotContain("IndexOutOfRangeException", output, StringComparison.Ordinal);
    }

    private (object? Save, string Output, long Keys) RecoverAndSave(GarnetDevice device, string kept, string name, string aof, string memory = "16m")
    {
        string copy = Path.Combine(_dir.Path, name);
        string[] where;
        if (device == GarnetDevice.File)
        {
            DirectoryCopy.Copy(kept, copy);
            where = ["--local-dir", copy];
        }
        else
        {
            Import(kept, copy + ".dax");
            where = ["--device", copy + ".dax"];
        }
        // The soak's node settings (GarnetCluster.Start), without cluster mode: the node's peers are gone.
        using ServerProcess server = ServerProcess.Start([.. where, aof, "--memory", memory, "--page", "256k", "--segment", "8m", "--index", "1m", "--port", "0"]);
        using var client = new RespClient(server.Port);
        long keys = Convert.ToInt64(client.Call("DBSIZE"), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(keys > 0, $"{name}: the kept files recovered no key");
        object? save = client.Call("SAVE");
        if (save is RespError)
        {
            // The server logs the exception around its reply; give its output a moment to arrive.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (!GarnetFlushCrash.In(server.Output) && clock.Elapsed < TestTime.Limit(TimeSpan.FromSeconds(30)))
                Thread.Sleep(100);
        }
        return (save, server.Output, keys);
    }

    private static string Describe(object? reply) => reply is RespError e ? $"-{e.Message}" : $"{reply}";

    /// <summary>
    /// Writes every file of Garnet's file-device directory <paramref name="from"/> into a new
    /// DirectPmem volume at <paramref name="to"/>: "log/Store/hlog.2" becomes segment 2 of the
    /// device "log/Store/hlog", as Garnet names them on a volume (PmemGarnetExtensions). Files go
    /// in oldest first, so the volume lists them newest first as the file system does. The
    /// cluster's own files are left out (the replay is not in cluster mode).
    /// </summary>
    private static unsafe void Import(string from, string to)
    {
        FileInfo[] files = [.. new DirectoryInfo(from).EnumerateFiles("*", SearchOption.AllDirectories)
            .Where(f => !Path.GetRelativePath(from, f.FullName).StartsWith("checkpoints/cluster/", StringComparison.Ordinal))
            .OrderBy(f => f.LastWriteTimeUtc)];
        long total = files.Sum(f => f.Length);
        using EmulatedVolume volume = EmulatedVolume.Create(to, Math.Max(256L << 20, 2 * total));
        PmemNamedDeviceFactoryCreator creator = volume.Volume.CreateDeviceFactoryCreator();
        foreach (FileInfo file in files)
        {
            string relative = Path.GetRelativePath(from, file.FullName);
            int dot = relative.LastIndexOf('.');
            int segment = int.Parse(relative.AsSpan(dot + 1), System.Globalization.CultureInfo.InvariantCulture);
            string path = relative[..dot];
            int slash = path.IndexOf('/', StringComparison.Ordinal);
            string directory = Path.GetDirectoryName(path[(slash + 1)..]) ?? "";
            using IDevice target = creator.Create(path[..slash]).Get(new FileDescriptor(directory, Path.GetFileName(path)));
            target.Initialize(-1);
            byte[] bytes = File.ReadAllBytes(file.FullName);
            if (bytes.Length == 0)
                continue; // an empty file is no segment on a volume; a read of it gives zeros, as the empty file gives nothing
            int length = (bytes.Length + 511) & ~511;
            byte* buffer = (byte*)NativeMemory.AlignedAlloc((nuint)length, 4096);
            try
            {
                var span = new Span<byte>(buffer, length);
                span.Clear();
                bytes.CopyTo(span);
                uint error = uint.MaxValue;
                target.WriteAsync((IntPtr)buffer, segment, 0, (uint)length, (e, _, _, _) => error = e, null!);
                Assert.True(error == 0, $"importing {relative}: the volume's write failed with error {error}");
            }
            finally
            {
                NativeMemory.AlignedFree(buffer);
            }
        }
    }
}
