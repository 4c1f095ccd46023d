using DirectPmem.Tool.Tests.Support;
using Xunit;

namespace DirectPmem.Tool.Tests;

/// <summary>
/// dpmem never exits non-zero in silence: every failing command line, whatever path it fails on (the parser, a
/// command, the sysfs scan, a check that finds problems), leaves a one-line reason on stderr.
/// </summary>
public sealed class SilentExitTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpmem-silent-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public static TheoryData<string> FailingCommandLines => new()
    {
        "",
        "no-such-command",
        "list --no-such-option",
        "list --json --sysfs /nonexistent-sysfs",
        "list --sysfs /proc/self/status",
        "info",
        "info /nonexistent-device",
        "info {dir}",
        "check /nonexistent-device",
        "check {dir}/garbage",
        "create {dir}/dev",
        "create /proc/no-such-dir/dev --size 8M",
        "create {dir}/small --size 1",
        "platform --no-such-option",
        "bench --rounds -1",
        "bench /nonexistent-device --quick",
        "monitor 2147483646 --duration 1",
        "monitor no-such-dotnet-process --duration 1 --json",
        "monitor 1 --interval 0",
    };

    [Theory]
    [MemberData(nameof(FailingCommandLines))]
    public void EveryNonZeroExitSaysWhyOnStandardError(string commandLine)
    {
        File.WriteAllBytes(Path.Combine(_dir, "garbage"), new byte[1 << 20]);
        string[] args = commandLine.Replace("{dir}", _dir, StringComparison.Ordinal).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        (int code, string output, string error) = Dpmem.Run(args);
        Assert.True(code != 0, $"'dpmem {commandLine}' was expected to fail but exited 0: {output}");
        string firstLine = error.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "";
        Assert.True(firstLine.Trim().Length > 10, $"'dpmem {commandLine}' exited {code} with nothing on stderr (stdout: {output})");
    }
}
