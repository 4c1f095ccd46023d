using System.Diagnostics;
using System.Text.Json;
using Xunit;

namespace DirectPmem.Tool.Tests;

public sealed class DpmemTests : IDisposable
{
    private static readonly string s_fixtures = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory,
        "..", "..", "..", "..", "tests", "DirectPmem.Tests", "Fixtures", "sysfs"));
    private readonly string _dir = Directory.CreateTempSubdirectory("dpmem-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void VersionPrintsTheAssemblyVersion()
    {
        (int code, string output, _) = Dpmem("--version");
        Assert.Equal(0, code);
        Assert.Matches(@"^\d+\.\d+\.\d+", output.Trim());
    }

    [Fact]
    public void ListJsonOfAFixtureTreeIsShapedLikeDaxctl()
    {
        Assert.True(Directory.Exists(s_fixtures), s_fixtures);
        (int code, string output, _) = Dpmem("list", "--json", "--sysfs", Path.Combine(s_fixtures, "good"));
        Assert.Equal(0, code);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement dax0 = doc.RootElement.EnumerateArray().Single(e => e.GetProperty("chardev").GetString() == "dax0.0");
        Assert.Equal(2097152, dax0.GetProperty("align").GetInt64());
        Assert.Equal("devdax", dax0.GetProperty("mode").GetString());
        Assert.True(dax0.GetProperty("size").GetInt64() > 0);
    }

    [Fact]
    public void ListOfABrokenTreeWarnsWithTheFileAndTheRule()
    {
        (int code, _, string error) = Dpmem("list", "--sysfs", Path.Combine(s_fixtures, "missing-size"));
        Assert.Equal(0, code);
        Assert.Contains("dax0.0/size", error, StringComparison.Ordinal);
    }

    [Fact]
    public void ListOfTheRunningKernelSucceedsWithOrWithoutDevices()
    {
        (int code, string output, _) = Dpmem("list", "--json");
        Assert.Equal(0, code);
        Assert.Equal(JsonValueKind.Array, JsonDocument.Parse(output).RootElement.ValueKind);
    }

    [Fact]
    public void CreateThenInfoReportsTheGeometryAndCreatingTwiceFails()
    {
        string path = Path.Combine(_dir, "dev.dax");
        (int code, string output, _) = Dpmem("create", path, "--size", "8M", "--align", "2M");
        Assert.Equal(0, code);
        Assert.Contains("8 MiB", output, StringComparison.Ordinal);

        (code, output, _) = Dpmem("info", path, "--json");
        Assert.Equal(0, code);
        using JsonDocument doc = JsonDocument.Parse(output);
        Assert.Equal(8L << 20, doc.RootElement.GetProperty("size").GetInt64());
        Assert.Equal(2L << 20, doc.RootElement.GetProperty("align").GetInt64());
        Assert.True(doc.RootElement.GetProperty("emulated").GetBoolean());

        (code, output, _) = Dpmem("create", path, "--size", "8M");
        Assert.Equal(1, code);
        Assert.Contains("EEXIST", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--size", "7M", "--align", "2M")]
    [InlineData("--size", "lots", "--align", "2M")]
    [InlineData("--size", "8M", "--align", "64K")]
    public void CreateRefusesBadGeometryWithAnError(params string[] options)
    {
        string path = Path.Combine(_dir, "bad.dax");
        (int code, string output, _) = Dpmem(["create", path, .. options]);
        Assert.Equal(1, code);
        Assert.Contains("dpmem:", output, StringComparison.Ordinal);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void PlatformJsonNamesTheFlushInstruction()
    {
        (int code, string output, _) = Dpmem("platform", "--json");
        Assert.Equal(0, code);
        using JsonDocument doc = JsonDocument.Parse(output);
        Assert.Contains(doc.RootElement.GetProperty("flush_instruction").GetString(), new[] { "Clwb", "ClflushOpt", "Clflush", "None" });
    }

    private static (int Code, string Output, string Error) Dpmem(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "dpmem.dll"));
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment["COLUMNS"] = "200";
        using Process process = Process.Start(start)!;
        Task<string> error = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(60_000), "dpmem did not exit within 60 s");
        return (process.ExitCode, output, error.Result);
    }
}
