using DirectPmem.Garnet.Tests.Support;
using StackExchange.Redis;
using Xunit;

namespace DirectPmem.Garnet.Tests;

/// <summary>
/// The sample server's defaults and refusals (samples/DirectPmem.GarnetServer): options that would
/// be ignored or conflict, bad numbers, and <c>--no-recover</c> over existing data end with one
/// line on stderr and exit code 2; checkpoints run on a schedule by default.
/// </summary>
[Collection("Garnet")]
public sealed class SampleOptionTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("--port abc", "error: --port takes a whole number from 0 to 65535, not 'abc'.")]
    [InlineData("--port 70000", "error: --port takes a whole number from 0 to 65535, not '70000'.")]
    [InlineData("--checkpoint-secs 1.5", "error: --checkpoint-secs takes a whole number from 0 to 2147483647, not '1.5'.")]
    [InlineData("--memory lots", "error: --memory takes a size such as 64k, 32m or 1g (bytes, or k/m/g), not 'lots'.")]
    [InlineData("--size -1g", "error: --size takes a size such as 64k, 32m or 1g (bytes, or k/m/g), not '-1g'.")]
    [InlineData("--page 99999999999g", "error: --page takes a size such as 64k, 32m or 1g (bytes, or k/m/g), not '99999999999g'.")]
    [InlineData("--local-dir {dir}/x --size 1g", "error: --size does not apply with --local-dir (Garnet's own file device in that directory); drop one of them.")]
    [InlineData("--local-dir {dir}/x --mode msync", "error: --mode does not apply with --local-dir (Garnet's own file device in that directory); drop one of them.")]
    [InlineData("--local-dir {dir}/x --device {dir}/d", "error: --device does not apply with --local-dir (Garnet's own file device in that directory); drop one of them.")]
    [InlineData("--device /dev/dax9.9 --size 1g", "error: --size does not apply to /dev/dax9.9: a device-DAX device has the size and persistence its configuration gave it.")]
    [InlineData("--device /dev/dax9.9 --mode msync", "error: --mode does not apply to /dev/dax9.9: a device-DAX device has the size and persistence its configuration gave it.")]
    [InlineData("--no-aof --commit-per-op", "error: --commit-per-op commits the AOF, and --no-aof turns it off; drop one of them.")]
    [InlineData("--discard-existing", "error: --discard-existing only goes with --no-recover.")]
    [InlineData("--no-aof --bench-aof-null-device", "error: --bench-aof-null-device replaces the AOF's device, and --no-aof turns the AOF off; drop one of them.")]
    [InlineData("--cluster --bench-aof-null-device", "error: --bench-aof-null-device discards the AOF that --cluster replicates; drop one of them.")]
    [InlineData("--mode fast", "error: --mode must be pmem or msync, not 'fast'.")]
    [InlineData("--bogus", "error: unknown or incomplete option '--bogus'. See the comment at the top of samples/DirectPmem.GarnetServer/Program.cs.")]
    public void BadOrIgnoredOptionsAreRefusedWithOneLineOnStderrAndExitCode2(string arguments, string expected)
    {
        string[] args = arguments.Replace("{dir}", _dir.Path, StringComparison.Ordinal).Split(' ');
        (int exitCode, string stdout, string stderr) = ServerProcess.Run(args);
        Assert.Equal(2, exitCode);
        Assert.Equal(expected, stderr.TrimEnd('\n'));
        Assert.Equal("", stdout);
        Assert.False(File.Exists(Path.Combine(_dir.Path, "d")), "a refused start created the device");
        Assert.False(Directory.Exists(Path.Combine(_dir.Path, "x")), "a refused start created the directory");
    }

    [Fact]
    public void SizeOnADeviceThatExistsIsRefusedAndTheDeviceKeepsItsSize()
    {
        string device = _dir.File("garnet.dax");
        using (ServerProcess first = ServerProcess.Start("--device", device, "--size", "64m", "--port", "0"))
        {
        }
        long length = new FileInfo(device).Length;
        (int exitCode, _, string stderr) = ServerProcess.Run("--device", device, "--size", "128m", "--port", "0");
        Assert.Equal(2, exitCode);
        Assert.Equal($"error: --size does not apply: {device} exists and keeps its size (remove the file to make a new device of another size).", stderr.TrimEnd('\n'));
        Assert.Equal(length, new FileInfo(device).Length);
    }

    [Fact]
    public void NoRecoverOverExistingDataIsRefusedUnlessToldToDiscardItAndDiscardingDeletesIt()
    {
        string device = _dir.File("garnet.dax");
        using (ServerProcess first = ServerProcess.Start("--device", device, "--size", "64m", "--port", "0", "--commit-per-op"))
        {
            using ConnectionMultiplexer redis = Connect(first.Port);
            Assert.True(redis.GetDatabase().StringSet("old", "acknowledged before --no-recover"));
        }

        (int exitCode, _, string stderr) = ServerProcess.Run("--device", device, "--port", "0", "--no-recover");
        Assert.Equal(2, exitCode);
        Assert.StartsWith($"error: --no-recover would start empty over {device}, which holds ", stderr, StringComparison.Ordinal);
        Assert.Contains("Add --discard-existing", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.TrimEnd('\n').Split('\n'));

        // The refusal changed nothing: a normal start still recovers the key.
        using (ServerProcess again = ServerProcess.Start("--device", device, "--port", "0", "--commit-per-op"))
        {
            using ConnectionMultiplexer redis = Connect(again.Port);
            Assert.Equal("acknowledged before --no-recover", (string?)redis.GetDatabase().StringGet("old"));
        }

        using (ServerProcess empty = ServerProcess.Start("--device", device, "--port", "0", "--no-recover", "--discard-existing", "--commit-per-op"))
        {
            Assert.Contains("discarded ", empty.Output, StringComparison.Ordinal);
            using ConnectionMultiplexer redis = Connect(empty.Port);
            IDatabase db = redis.GetDatabase();
            Assert.False(db.KeyExists("old"));
            Assert.True(db.StringSet("new", "after the discard"));
        }

        // The next normal start recovers what was written after the discard, and not the old key.
        using (ServerProcess later = ServerProcess.Start("--device", device, "--port", "0", "--commit-per-op"))
        {
            using ConnectionMultiplexer redis = Connect(later.Port);
            IDatabase db = redis.GetDatabase();
            Assert.False(db.KeyExists("old"));
            Assert.Equal("after the discard", (string?)db.StringGet("new"));
        }
    }

    [Fact]
    public void NoRecoverOverAnExistingLocalDirIsRefusedToo()
    {
        string dir = Path.Combine(_dir.Path, "local");
        using (ServerProcess first = ServerProcess.Start("--local-dir", dir, "--port", "0", "--commit-per-op"))
        {
            using ConnectionMultiplexer redis = Connect(first.Port);
            Assert.True(redis.GetDatabase().StringSet("old", "v"));
        }
        (int exitCode, _, string stderr) = ServerProcess.Run("--local-dir", dir, "--port", "0", "--no-recover");
        Assert.Equal(2, exitCode);
        Assert.StartsWith($"error: --no-recover would start empty over {dir}, which holds ", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void CheckpointsRunOnAScheduleByDefault()
    {
        using ServerProcess server = ServerProcess.Start("--device", _dir.File("garnet.dax"), "--size", "64m", "--port", "0");
        Assert.Contains("a checkpoint every 60 s", server.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void AScheduledCheckpointLandsOnTheDeviceWithoutASave()
    {
        (bool moved, bool onDevice) = CheckpointWithoutSave("1", TimeSpan.FromSeconds(30));
        Assert.True(moved, $"no scheduled checkpoint completed {TestTime.Describe(TestTime.Limit(TimeSpan.FromSeconds(30)))}");
        Assert.True(onDevice, "LASTSAVE moved but the device holds no checkpoint");
    }

    [Fact]
    public void WithCheckpointSecsZeroNoCheckpointIsTakenWithoutASave()
    {
        // The negative control of the test above: a wait longer than its interval, and nothing lands.
        (bool moved, bool onDevice) = CheckpointWithoutSave("0", TimeSpan.FromSeconds(3));
        Assert.False(moved);
        Assert.False(onDevice);
    }

    // Starts the sample with --checkpoint-secs, writes a key and waits up to `wait` for LASTSAVE to
    // move (it starts at the server's start and moves only when a checkpoint completes; no SAVE is
    // sent). Then looks for a checkpoint on the device.
    private (bool Moved, bool OnDevice) CheckpointWithoutSave(string checkpointSecs, TimeSpan wait)
    {
        string device = _dir.File("garnet.dax");
        bool moved;
        using (ServerProcess server = ServerProcess.Start("--device", device, "--size", "64m", "--port", "0", "--checkpoint-secs", checkpointSecs))
        {
            using ConnectionMultiplexer redis = Connect(server.Port);
            IServer admin = redis.GetServer(redis.GetEndPoints()[0]);
            DateTime started = admin.LastSave();
            Assert.True(redis.GetDatabase().StringSet("k", "v"));
            DateTime deadline = DateTime.UtcNow + (checkpointSecs == "0" ? wait : TestTime.Limit(wait));
            while (admin.LastSave() <= started && DateTime.UtcNow < deadline)
                Thread.Sleep(200);
            moved = admin.LastSave() > started;
        }
        using EmulatedVolume volume = EmulatedVolume.Open(device);
        return (moved, volume.Volume.GetDeviceNames().Any(IsCheckpoint));
    }

    [Fact]
    public void ALogMemoryKnownToLoseWritesStartsWithAWarningLine()
    {
        using ServerProcess server = ServerProcess.Start("--device", _dir.File("garnet.dax"), "--size", "64m", "--port", "0", "--memory", "2m", "--page", "64k");
        Assert.Contains("warning: --memory 2m is below 64m", server.Output, StringComparison.Ordinal);
        Assert.Contains("docs/garnet-known-defects.md", server.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheBenchmarksNullAofDeviceWarnsAndKeepsTheAofOffTheVolume(bool nullDevice)
    {
        string device = _dir.File("garnet.dax");
        string[] args = ["--device", device, "--size", "64m", "--port", "0", "--commit-per-op"];
        using (ServerProcess server = ServerProcess.Start(nullDevice ? [.. args, "--bench-aof-null-device"] : args))
        {
            using ConnectionMultiplexer redis = Connect(server.Port);
            Assert.True(redis.GetDatabase().StringSet("k", "v"));
            Assert.Equal(nullDevice, server.Output.Contains("warning: --bench-aof-null-device: the AOF goes to Tsavorite's NullDevice", StringComparison.Ordinal));
        }
        using EmulatedVolume volume = EmulatedVolume.Open(device);
        // The AOF's log is the device named .../aof.log; on the null device it is nowhere.
        Assert.Equal(!nullDevice, volume.Volume.GetDeviceNames().Any(n => n.EndsWith("aof.log", StringComparison.Ordinal)));
    }

    [Fact]
    public void AConnectionGarnetDropsAfterAnExceptionLeavesALineOnStderr()
    {
        using ServerProcess server = ServerProcess.Start("--device", _dir.File("garnet.dax"), "--size", "64m", "--port", "0");
        Assert.DoesNotContain("info:", server.Output, StringComparison.Ordinal); // warnings and errors only
        using (var client = new System.Net.Sockets.TcpClient("127.0.0.1", server.Port))
        {
            // A negative bulk-string length: Garnet replies with an error and aborts the session.
            client.GetStream().Write("*1\r\n$-7\r\nxx\r\n"u8);
            client.GetStream().ReadByte();
        }
        DateTime deadline = DateTime.UtcNow + TestTime.Limit(TimeSpan.FromSeconds(20));
        while (!server.Output.Contains("Aborting open session", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
            Thread.Sleep(100);
        Assert.Contains("Aborting open session", server.Output, StringComparison.Ordinal);
    }

    // Garnet keeps its AOF under checkpoints/AOF too; a checkpoint is anything else there.
    private static bool IsCheckpoint(string name) =>
        name.StartsWith("checkpoints/", StringComparison.Ordinal) && !name.StartsWith("checkpoints/AOF/", StringComparison.Ordinal);

    private static ConnectionMultiplexer Connect(int port) => GarnetOnPmem.Connect(port);
}
