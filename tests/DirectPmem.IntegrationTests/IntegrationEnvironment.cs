using System.Diagnostics;
using System.Globalization;

namespace DirectPmem.IntegrationTests;

/// <summary>
/// What the real-kernel tier runs against, from environment variables that
/// tests/devdax-vm/run.sh sets in its qemu guest. A test that needs one of them skips with the
/// reason when it is not set, so `dotnet test` on an ordinary machine skips this whole project.
/// </summary>
/// <remarks>
/// The device tests write to the device: they never run just because a /dev/dax0.0 exists (on a
/// machine with real persistent memory that would destroy data). They need
/// DIRECTPMEM_DEVDAX_TESTS to name the device they may overwrite.
/// </remarks>
internal static class IntegrationEnvironment
{
    private const string HowToRun = "run tests/devdax-vm/run.sh to run this against the kernel's device-DAX driver in a qemu guest";

    /// <summary>The device-DAX device the tests may overwrite (DIRECTPMEM_DEVDAX_TESTS), e.g. /dev/dax0.0.</summary>
    public static string? DevicePath => Environment.GetEnvironmentVariable("DIRECTPMEM_DEVDAX_TESTS") is { Length: > 0 } p ? p : null;

    /// <summary>A writable directory on a file system mounted -o dax (DIRECTPMEM_FSDAX_DIR).</summary>
    public static string? FsDaxDirectory => Environment.GetEnvironmentVariable("DIRECTPMEM_FSDAX_DIR") is { Length: > 0 } p ? p : null;

    /// <summary>A writable directory on a block-device file system without DAX (DIRECTPMEM_PAGECACHE_DIR).</summary>
    public static string? PageCacheDirectory => Environment.GetEnvironmentVariable("DIRECTPMEM_PAGECACHE_DIR") is { Length: > 0 } p ? p : null;

    /// <summary>Which boot of the guest this is (DIRECTPMEM_VM_PHASE): 1 writes, 2 reads back.</summary>
    public static int Phase => int.TryParse(Environment.GetEnvironmentVariable("DIRECTPMEM_VM_PHASE"), NumberStyles.None, CultureInfo.InvariantCulture, out int phase) ? phase : 0;

    /// <summary>A random id shared by the boots of one run (DIRECTPMEM_VM_RUN_ID), so stale data cannot pass for fresh.</summary>
    public static string? RunId => Environment.GetEnvironmentVariable("DIRECTPMEM_VM_RUN_ID") is { Length: > 0 } p ? p : null;

    /// <summary>The writable host folder shared with the guest (DIRECTPMEM_VM_SHARE): it survives the power-off between boots.</summary>
    public static string? ShareDirectory => Environment.GetEnvironmentVariable("DIRECTPMEM_VM_SHARE") is { Length: > 0 } p && Directory.Exists(p) ? p : null;

    /// <summary>The device path, or skips: no device was named, or the named one does not exist.</summary>
    public static string RequireDevice()
    {
        string? path = DevicePath;
        if (path is null)
        {
            Assert.Skip($"no device-DAX device: DIRECTPMEM_DEVDAX_TESTS does not name one that the tests may overwrite ({HowToRun}).");
        }
        if (!File.Exists(path))
        {
            Assert.Skip($"no device-DAX device: DIRECTPMEM_DEVDAX_TESTS names {path}, which does not exist ({HowToRun}).");
        }
        return path;
    }

    /// <summary>The fsdax directory, or skips.</summary>
    public static string RequireFsDaxDirectory()
        => FsDaxDirectory is { } dir && Directory.Exists(dir) ? dir
            : SkipString($"no file system mounted -o dax: DIRECTPMEM_FSDAX_DIR is not set or does not exist ({HowToRun}).");

    /// <summary>The page-cache directory the guest names (it must pass <see cref="PageCacheProbe"/>), or skips.</summary>
    public static string RequirePageCacheDirectory()
        => PageCacheDirectory is { } dir && Directory.Exists(dir)
            ? (PageCacheProbe.Problem(dir) is { } problem ? throw new InvalidOperationException($"DIRECTPMEM_PAGECACHE_DIR='{dir}' {problem}") : dir)
            : SkipString($"no non-DAX block file system: DIRECTPMEM_PAGECACHE_DIR is not set or does not exist ({HowToRun}).");

    /// <summary>Any directory that proved it holds page-cache files (DIRECTPMEM_PAGECACHE_DIR first, then the usual candidates), or skips with every candidate's reason.</summary>
    public static string RequireAnyPageCacheDirectory()
        => PageCacheProbe.Found is { Path: { } dir } ? dir : SkipString(PageCacheProbe.Found.Reason);

    /// <summary>The sysfs directory of a device-DAX device: /sys/bus/dax/devices/NAME.</summary>
    public static string SysfsDirectory(string devicePath) => "/sys/bus/dax/devices/" + Path.GetFileName(devicePath);

    /// <summary>Reads a decimal or 0x-prefixed number from a sysfs attribute.</summary>
    public static long ReadSysfsNumber(string path)
    {
        string text = File.ReadAllText(path).Trim();
        return text.StartsWith("0x", StringComparison.Ordinal)
            ? long.Parse(text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture)
            : long.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture);
    }

    /// <summary>Runs a tool (daxctl, ndctl) and returns its standard output; skips when the tool is not installed.</summary>
    public static string RunTool(string tool, params string[] arguments)
    {
        string? full = FindOnPath(tool);
        if (full is null)
        {
            Assert.Skip($"{tool} is not installed ({HowToRun}).");
        }
        TestProcess.Result result = TestProcess.Run(full, arguments);
        Assert.True(result.ExitCode == 0, $"{tool} {string.Join(' ', arguments)} exited with {result.ExitCode}: {result.Error}");
        return result.Output;
    }

    private static string? FindOnPath(string tool)
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, tool);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        return null;
    }

    private static string SkipString(string reason)
    {
        Assert.Skip(reason);
        return reason; // not reached: Assert.Skip throws
    }

    /// <summary>A unique file name in <paramref name="directory"/>.</summary>
    public static string NewFile(string directory, string stem)
        => Path.Combine(directory, $"{stem}-{Environment.ProcessId}-{Guid.NewGuid():N}.pmem");

    /// <summary>Runs the dpmem tool with the same dotnet host as these tests, to its end.</summary>
    public static (int Code, string Output, string Error) RunDpmem(params string[] arguments)
    {
        var info = new ProcessStartInfo(DotnetHost.Path) { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "dpmem.dll"));
        foreach (string argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        using Process process = Process.Start(info)!;
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout, stderr.Result);
    }
}
