using System.Diagnostics;
using System.Runtime.InteropServices;
using DirectPmem.Interop;
using DirectPmem.Mapping;

namespace DirectPmem.IntegrationTests;

/// <summary>
/// Issue 19, section 2, in the qemu guest: a real <c>BUS_MCEERR_AR</c> from the kernel's
/// memory-failure handling (<c>madvise(MADV_HWPOISON)</c>, CONFIG_MEMORY_FAILURE, root) ends
/// <see cref="DaxMapping.ReadSafe"/> with <see cref="PmemMediaErrorException"/> naming the offset,
/// and the process lives on. Each case runs in a child process (a failure kills the child, not the
/// run) that poisons a page it owns: a memfd page, and a page of a file on the <c>-o dax</c> mount.
/// </summary>
/// <remarks>
/// The poisoned fsdax file is left in place for the rest of the boot, so its poisoned block is
/// never handed to another test's file; the emulated NVDIMM has no real error, so nothing is bad
/// after the next boot. /dev/dax0.0 is not poisoned: the other tests of the boot use its pages.
/// </remarks>
[Collection(DeviceTestGroup.Name)]
public sealed class MediaErrorTests
{
    private const string ChildVariable = "DIRECTPMEM_IT_MEDIA_CHILD";
    private const string ReportVariable = "DIRECTPMEM_IT_MEDIA_REPORT";
    private const string DirectoryVariable = "DIRECTPMEM_IT_MEDIA_DIR";
    private const int MADV_HWPOISON = 100;
    private const int Length = 64 * 1024;
    private const int Poisoned = 16 * 1024;

    private readonly ITestOutputHelper _output;

    public MediaErrorTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void A_hardware_poisoned_memfd_page_is_a_typed_error_and_the_process_survives()
    {
        RequireGuest();
        AssertPoisonReported(RunChild(nameof(Child_poisons_a_memfd_page_and_reads_it_safely)));
    }

    [Fact]
    public void A_hardware_poisoned_page_of_an_fsdax_file_is_a_typed_error_and_the_process_survives()
    {
        string directory = IntegrationEnvironment.RequireFsDaxDirectory();
        AssertPoisonReported(RunChild(nameof(Child_poisons_an_fsdax_file_page_and_reads_it_safely), (DirectoryVariable, directory)));
    }

    [Fact(Explicit = true)]
    public void Child_poisons_a_memfd_page_and_reads_it_safely()
    {
        RequireChild();
        using PmemFile file = PmemFile.CreateMemory("directpmem-it-hwpoison", Length);
        PoisonAndRead(file, "memfd");
    }

    [Fact(Explicit = true)]
    public void Child_poisons_an_fsdax_file_page_and_reads_it_safely()
    {
        RequireChild();
        string path = Path.Combine(Environment.GetEnvironmentVariable(DirectoryVariable)!, "media-error-poisoned-" + Guid.NewGuid().ToString("N")[..8]);
        using PmemFile file = PmemFile.Create(path, Length);
        PoisonAndRead(file, "fsdax file " + path);
    }

    private static unsafe void PoisonAndRead(PmemFile file, string what)
    {
        using DaxMapping map = file.Map();
        Span<byte> all = map.GetSpan(0, Length);
        for (int i = 0; i < Length; i++)
        {
            all[i] = (byte)(i * 7);
        }
        map.Persist(0, Length);
        Report($"mapped {what}: backing {map.Backing}, granularity {map.Granularity}");
        if (Libc.MAdvise((nint)(map.DangerousGetPointer() + Poisoned), 4096, MADV_HWPOISON) != 0)
        {
            Report($"skip: madvise(MADV_HWPOISON) on the {what} failed with {Errno.Name(Marshal.GetLastPInvokeError())}");
            return;
        }
        Report("poisoned with madvise(MADV_HWPOISON)");
        byte[] read = new byte[300];
        PmemMediaErrorException? e = null;
        try
        {
            map.ReadSafe(Poisoned - 100, read);
        }
        catch (PmemMediaErrorException caught)
        {
            e = caught;
        }
        if (e is null)
        {
            Report($"skip: the page read back without a fault after MADV_HWPOISON on the {what} (this kernel does not take that page out of service)");
            return;
        }
        Report($"{e.Kind} bad 0x{e.BadOffset:x} length 0x{e.BadLength:x} read {e.BytesRead}: {e.Message}");
        for (int i = 0; i < e.BytesRead; i++)
        {
            if (read[i] != (byte)((Poisoned - 100 + i) * 7))
            {
                Report($"byte {i} before the fault differs");
            }
        }
        // No crash loop: again, and the page after it is fine.
        try
        {
            map.ReadSafe(Poisoned + 64, read);
            Report("again: no fault");
        }
        catch (PmemMediaErrorException again)
        {
            Report($"again {again.Kind} 0x{again.BadOffset:x}");
        }
        map.ReadSafe(Poisoned + 4096, read);
        Report("done");
    }

    private void AssertPoisonReported((int ExitCode, string Output, string[] Report) result)
    {
        foreach (string line in result.Report)
        {
            _output.WriteLine("child: " + line);
        }
        string? skip = result.Report.FirstOrDefault(l => l.StartsWith("skip: ", StringComparison.Ordinal));
        if (skip is not null)
        {
            Assert.Skip(skip["skip: ".Length..]);
        }
        Assert.True(result.ExitCode == 0 && result.Report.Contains("done"),
            $"the child failed (exit code {result.ExitCode}, report [{string.Join("; ", result.Report)}]):\n{result.Output}");
        Assert.Contains(result.Report, l => l.StartsWith($"Poison bad 0x{Poisoned:x} length 0x1000 read 100:", StringComparison.Ordinal));
        Assert.Contains($"again Poison 0x{Poisoned:x}", result.Report);
        Assert.DoesNotContain(result.Report, l => l.Contains("differs", StringComparison.Ordinal));
    }

    private static (int ExitCode, string Output, string[] Report) RunChild(string method, params (string Name, string Value)[] variables)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (Path.GetFileNameWithoutExtension(start.FileName) == "dotnet")
        {
            start.ArgumentList.Add(typeof(MediaErrorTests).Assembly.Location);
        }
        foreach (string arg in new[] { "-method", typeof(MediaErrorTests).FullName + "." + method, "-explicit", "only", "-noLogo", "-noColor" })
        {
            start.ArgumentList.Add(arg);
        }
        string report = Path.Combine(Path.GetTempPath(), "directpmem-it-media-" + Guid.NewGuid().ToString("N"));
        start.Environment[ChildVariable] = "1";
        start.Environment[ReportVariable] = report;
        start.Environment["DOTNET_DbgEnableMiniDump"] = "0";
        foreach ((string name, string value) in variables)
        {
            start.Environment[name] = value;
        }
        using Process child = Process.Start(start)!;
        Task<string> stdout = child.StandardOutput.ReadToEndAsync();
        Task<string> stderr = child.StandardError.ReadToEndAsync();
        Assert.True(child.WaitForExit(600_000), "the child did not finish in 10 minutes");
        string[] lines = File.Exists(report) ? File.ReadAllLines(report) : [];
        File.Delete(report);
        return (child.ExitCode, stdout.Result + "\n" + stderr.Result, lines);
    }

    // MADV_HWPOISON retires a physical page for good: only in the qemu guest, never on a host a plain `dotnet test` runs on.
    private static void RequireGuest()
    {
        if (IntegrationEnvironment.Phase == 0)
        {
            Assert.Skip("poisons a page with MADV_HWPOISON: only in the qemu guest of tests/devdax-vm/run.sh (DIRECTPMEM_VM_PHASE is not set)");
        }
    }

    private static void RequireChild()
    {
        if (Environment.GetEnvironmentVariable(ChildVariable) != "1")
        {
            Assert.Skip("runs only in the child process its parent test starts");
        }
    }

    private static void Report(string line) => File.AppendAllLines(Environment.GetEnvironmentVariable(ReportVariable)!, [line]);
}
