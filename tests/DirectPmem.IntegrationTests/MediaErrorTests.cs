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
        AssertPoisonReported(ChildProcess.Run(typeof(MediaErrorTests), nameof(Child_poisons_a_memfd_page_and_reads_it_safely)));
    }

    [Fact]
    public void A_hardware_poisoned_page_of_an_fsdax_file_is_a_typed_error_and_the_process_survives()
    {
        string directory = IntegrationEnvironment.RequireFsDaxDirectory();
        AssertPoisonReported(ChildProcess.Run(typeof(MediaErrorTests), nameof(Child_poisons_an_fsdax_file_page_and_reads_it_safely), (DirectoryVariable, directory)));
    }

    [Fact(Explicit = true)]
    public void Child_poisons_a_memfd_page_and_reads_it_safely()
    {
        ChildProcess.RequireChild();
        using PmemFile file = PmemFile.CreateMemory("directpmem-it-hwpoison", Length);
        PoisonAndRead(file, "memfd");
    }

    [Fact(Explicit = true)]
    public void Child_poisons_an_fsdax_file_page_and_reads_it_safely()
    {
        ChildProcess.RequireChild();
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

    private void AssertPoisonReported(ChildProcess.Result result)
    {
        AssertChildDone(result, _output);
        Assert.Contains(result.Report, l => l.StartsWith($"Poison bad 0x{Poisoned:x} length 0x1000 read 100:", StringComparison.Ordinal));
        Assert.Contains($"again Poison 0x{Poisoned:x}", result.Report);
        Assert.DoesNotContain(result.Report, l => l.Contains("differs", StringComparison.Ordinal));
    }

    /// <summary>
    /// Shows a poisoning child's report, skips with its reason when it said "skip: ...", else
    /// asserts that it ended normally after reporting "done" (shared with <see cref="MediaErrorPoolTests"/>).
    /// </summary>
    internal static void AssertChildDone(ChildProcess.Result result, ITestOutputHelper output)
    {
        foreach (string line in result.Report)
        {
            output.WriteLine("child: " + line);
        }
        string? skip = result.Report.FirstOrDefault(l => l.StartsWith("skip: ", StringComparison.Ordinal));
        if (skip is not null)
        {
            Assert.Skip(skip["skip: ".Length..]);
        }
        Assert.True(result.ExitCode == 0 && result.Report.Contains("done"),
            $"the child failed (exit code {result.ExitCode}, report [{string.Join("; ", result.Report)}]):\n{result.Output}");
    }

    // MADV_HWPOISON retires a physical page for good: only in the qemu guest, never on a host a plain `dotnet test` runs on.
    private static void RequireGuest()
    {
        if (IntegrationEnvironment.Phase == 0)
        {
            Assert.Skip("poisons a page with MADV_HWPOISON: only in the qemu guest of tests/devdax-vm/run.sh (DIRECTPMEM_VM_PHASE is not set)");
        }
    }

    private static void Report(string line) => ChildProcess.Report(line);
}
