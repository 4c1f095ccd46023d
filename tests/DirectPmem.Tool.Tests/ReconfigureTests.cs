using System.Diagnostics;
using DirectPmem.Tool.Tests.Support;
using Xunit;

namespace DirectPmem.Tool.Tests;

/// <summary>
/// <c>dpmem reconfigure</c>: without root it says root is needed and changes nothing; as root on the
/// tiers fixture (no dax drivers there) it names the module to load. The real mode changes run in the
/// qemu guest (IntegrationTests.TierTests).
/// </summary>
public sealed class ReconfigureTests
{
    private static readonly string s_tiers = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory,
        "..", "..", "..", "..", "tests", "DirectPmem.Tests", "Fixtures", "sysfs", "tiers"));

    [Fact]
    public void WithoutRootTheCommandSaysRootIsNeeded()
    {
        // Run as nobody through util-linux's setpriv when this process may switch users; as an ordinary user it is already not root.
        bool root = Environment.UserName == "root";
        string? setpriv = root ? new[] { "/usr/bin/setpriv", "/bin/setpriv" }.FirstOrDefault(File.Exists) : null;
        Assert.SkipWhen(root && setpriv is null, "running as root and setpriv (util-linux) is not installed to drop to another user.");
        var start = new ProcessStartInfo(setpriv ?? DotnetHost.Path) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        if (setpriv is not null)
        {
            foreach (string a in new[] { "--reuid=65534", "--regid=65534", "--clear-groups", DotnetHost.Path })
            {
                start.ArgumentList.Add(a);
            }
            start.Environment["HOME"] = Path.GetTempPath();
            start.Environment["DOTNET_CLI_HOME"] = Path.GetTempPath();
        }
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "dpmem.dll"));
        foreach (string a in new[] { "reconfigure", "dax0.0", "--mode", "system-ram", "--sysfs", s_tiers })
        {
            start.ArgumentList.Add(a);
        }
        (int code, string output, string error) = Dpmem.Wait(start, null, TestTime.ChildProcessDefault);
        Assert.SkipWhen(setpriv is not null && error.Contains("Permission denied", StringComparison.Ordinal) && !error.Contains("needs root", StringComparison.Ordinal),
            $"user 65534 cannot run the tool from here (the checkout is not readable to it): {error}");
        Assert.Equal(1, code);
        Assert.Equal("", output);
        Assert.Contains("dpmem: DaxReconfigurationException: dax0.0: changing a device's mode needs root", error, StringComparison.Ordinal);
        Assert.Contains("Run it as root (sudo)", error, StringComparison.Ordinal);
    }

    [Fact]
    public void AsRootWithoutTheKmemDriverItNamesTheModule()
    {
        Assert.SkipUnless(Environment.UserName == "root", "mode changes need root; WithoutRootTheCommandSaysRootIsNeeded covers the other case.");
        (int code, string output, string error) = Dpmem.Run("reconfigure", "dax0.0", "--mode", "system-ram", "--sysfs", s_tiers);
        Assert.Equal(1, code);
        Assert.Equal("", output);
        Assert.Contains("the kmem driver is not loaded", error, StringComparison.Ordinal);
        Assert.Contains("modprobe kmem", error, StringComparison.Ordinal);
    }

    [Fact]
    public void AModeThatIsNotOneOfTheTwoIsAUsageError()
    {
        (int code, _, string error) = Dpmem.Run("reconfigure", "dax0.0", "--mode", "fsdax", "--sysfs", s_tiers);
        Assert.NotEqual(0, code);
        Assert.Contains("fsdax", error, StringComparison.Ordinal);
    }
}
