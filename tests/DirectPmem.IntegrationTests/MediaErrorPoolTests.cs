using System.Runtime.InteropServices;
using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.Storage;
using DirectPmem.Tests.Mapping;

namespace DirectPmem.IntegrationTests;

/// <summary>
/// Issue 19's proof for pool open, in the qemu guest: a pool whose primary header page is poisoned
/// (a real <c>BUS_MCEERR_AR</c> at the next load) opens from the backup header and says so, and a
/// second open does the same: no crash loop.
/// </summary>
/// <remarks>
/// Kernel facility: <c>madvise(MADV_HWPOISON)</c> (CONFIG_MEMORY_FAILURE, root) on a page of a
/// <b>memfd</b> (shmem), the one page kind the guest's 6.1 kernel takes out of service on a software
/// injection (see <see cref="MediaErrorTests"/>: an fsdax page reads back without a fault there, and
/// /dev/dax0.0's pages are used by the boot's other tests). The pool opens read-only: the repair
/// (rewriting the primary from the backup) is reported, not done, since a store to the poisoned
/// page would fault as the load did. Each case runs in a child process, so a crash is a failed
/// test and not a lost run.
/// </remarks>
[Collection(DeviceTestGroup.Name)]
public sealed class MediaErrorPoolTests
{
    private const int MADV_HWPOISON = 100;
    private const long Length = 1 << 20;
    private const string Layout = "media-error-pool";

    private readonly ITestOutputHelper _output;

    public MediaErrorPoolTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void A_pool_whose_primary_header_page_is_poisoned_opens_from_the_backup_twice()
    {
        // MADV_HWPOISON retires a physical page for good: only in the qemu guest.
        if (IntegrationEnvironment.Phase == 0)
        {
            Assert.Skip("poisons a page with MADV_HWPOISON: only in the qemu guest of tests/devdax-vm/run.sh (DIRECTPMEM_VM_PHASE is not set)");
        }
        ChildProcess.Result result = ChildProcess.Run(typeof(MediaErrorPoolTests), nameof(Child_poisons_the_primary_header_and_opens_the_pool_twice));
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
        Assert.Contains("poisoned: Poison at 0x0", result.Report);
        Assert.Contains($"open 1: {PoolHeaderRepair.PrimaryRestoredFromBackup}, root kept, read-only", result.Report);
        Assert.Contains($"open 2: {PoolHeaderRepair.PrimaryRestoredFromBackup}, root kept, read-only", result.Report);
    }

    [Fact(Explicit = true)]
    public unsafe void Child_poisons_the_primary_header_and_opens_the_pool_twice()
    {
        ChildProcess.RequireChild();
        using PmemFile file = PmemFile.CreateMemory("directpmem-it-pool-hwpoison", Length);
        using DaxMapping map = file.Map();
        using (PmemPool pool = PmemPool.Create(map, Layout))
        {
            pool.SetRoot(pool.DataOffset);
        }
        if (Libc.MAdvise((nint)(map.DangerousGetPointer() + PmemPool.PrimaryHeaderOffset), 4096, MADV_HWPOISON) != 0)
        {
            ChildProcess.Report($"skip: madvise(MADV_HWPOISON) on the memfd failed with {Errno.Name(Marshal.GetLastPInvokeError())}");
            return;
        }
        // The page really is bad: the safe read says so (a plain load would end the process).
        try
        {
            map.ReadSafe(0, new byte[64]);
            ChildProcess.Report("skip: the memfd page read back without a fault after MADV_HWPOISON (this kernel does not take it out of service)");
            return;
        }
        catch (PmemMediaErrorException e)
        {
            ChildProcess.Report($"poisoned: {e.Kind} at 0x{e.BadOffset:x}");
        }
        for (int open = 1; open <= 2; open++)
        {
            using PmemPool pool = PmemPool.Open(map, Layout, new PoolOpenOptions { ReadOnly = true });
            ChildProcess.Report($"open {open}: {pool.HeaderRepair}, root {(pool.RootOffset == pool.DataOffset ? "kept" : "lost")}, {(pool.IsReadOnly ? "read-only" : "writable")}");
        }
        ChildProcess.Report("done");
    }
}
