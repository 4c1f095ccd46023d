using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using DirectPmem.Driver;
using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.Storage;

namespace DirectPmem.IntegrationTests;

/// <summary>
/// Issue 19's proofs for pools, in the qemu guest: a pool whose primary header page is poisoned
/// (a real <c>BUS_MCEERR_AR</c> at the next load) opens from the backup header and says so, and a
/// second open does the same: no crash loop; and <c>dpmem check</c> of a pool file lists a sector
/// the kernel lists bad under it.
/// </summary>
/// <remarks>
/// Header poison, kernel facility: <c>madvise(MADV_HWPOISON)</c> (CONFIG_MEMORY_FAILURE, root) on a page of a
/// <b>memfd</b> (shmem), the one page kind the guest's 6.1 kernel takes out of service on a software
/// injection (see <see cref="MediaErrorTests"/>: an fsdax page reads back without a fault there, and
/// /dev/dax0.0's pages are used by the boot's other tests). The pool opens read-only: the repair
/// (rewriting the primary from the backup) is reported, not done, since a store to the poisoned
/// page would fault as the load did. Each case runs in a child process, so a crash is a failed
/// test and not a lost run.
/// <c>dpmem check</c>, kernel facility: the block layer's own <c>/sys/block/pmemX/badblocks</c>
/// (genhd's <c>disk_badblocks_store</c>, as <see cref="BadBlockTests"/>): qemu's NFIT has no ACPI
/// error injection, so no region entry can be made; the pool file is kept, so that no other test
/// of the boot is given the listed sector.
/// </remarks>
[Collection(DeviceTestGroup.Name)]
public sealed class MediaErrorPoolTests
{
    private const int MADV_HWPOISON = 100;
    private const long Length = 1 << 20;
    private const string Layout = "media-error-pool";
    private const long BadOffset = 16 * 1024;

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
        MediaErrorTests.AssertChildDone(result, _output);
        Assert.Contains("poisoned: Poison at 0x0", result.Report);
        Assert.Contains($"open 1: {PoolHeaderRepair.PrimaryRestoredFromBackup}, root kept, read-only", result.Report);
        Assert.Contains($"open 2: {PoolHeaderRepair.PrimaryRestoredFromBackup}, root kept, read-only", result.Report);
    }

    [Fact]
    public unsafe void Dpmem_check_of_a_pool_file_lists_a_sector_the_kernel_lists_bad_under_it()
    {
        string dir = IntegrationEnvironment.RequireFsDaxDirectory();
        string path = IntegrationEnvironment.NewFile(dir, "check-badblocks");
        using (PmemPool pool = PmemPool.CreateFile(path, Length, Layout))
        {
            pool.SetRoot(pool.DataOffset);
        }
        long sector;
        string badBlocksPath;
        using (PmemFile file = PmemFile.Open(path))
        {
            var extents = new List<FileExtent>();
            Assert.Equal(0, FileExtents.Read(file.Handle.Fd, file.Size, extents));
            // The extent that holds the page at 16 KiB (the pool's reserved area: after both headers).
            FileExtent extent = extents.Find(e => e.Logical <= BadOffset && e.Logical + e.Length >= BadOffset + 4096);
            Assert.True(extent.Length > 0 && extent.HasPhysicalAddress, $"no extent with a physical address holds [0x{BadOffset:x}, 0x{BadOffset + 4096:x}): {string.Join(", ", extents)}");
            Libc.Stat st;
            Assert.Equal(0, Libc.FStat(file.Handle.Fd, &st));
            Assert.Equal(NdBlockDevice.Lookup.Found, NdBlockDevice.Find("/sys", Libc.Major(st.st_dev), Libc.Minor(st.st_dev), out NdBlockDevice? disk, out _));
            sector = (extent.Physical + BadOffset - extent.Logical) / 512;
            badBlocksPath = disk!.BadBlocksPath;
        }
        try
        {
            File.WriteAllText(badBlocksPath, string.Create(CultureInfo.InvariantCulture, $"{sector} 8\n"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Assert.Skip($"{badBlocksPath} cannot be written ({e.Message}): the kernel's list cannot be given an entry here");
        }
        (int code, string stdout, string stderr) = IntegrationEnvironment.RunDpmem("check", path, "--json");
        _output.WriteLine($"dpmem check {path} --json: exit {code}\n{stdout}\n{stderr}");
        using JsonDocument doc = JsonDocument.Parse(stdout);
        JsonElement problem = doc.RootElement.GetProperty("problems").EnumerateArray().First(p => p.GetProperty("area").GetString() == "bad blocks");
        Assert.Contains("[0x4000, 0x5000)", problem.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(2, code);
    }

    [Fact(Explicit = true)]
    public unsafe void Child_poisons_the_primary_header_and_opens_the_pool_twice()
    {
        ChildProcess.RequireChild();
        using PmemFile file = PmemFile.CreateMemory("directpmem-it-pool-hwpoison", Length);
        using DaxMapping map = file.Map();
        using (PmemPool pool = TestPools.Create(map, Layout))
        {
            pool.SetRoot(pool.DataOffset);
        }
        if (Libc.MAdvise((nint)(map.DangerousGetPointer()) /* the primary header is the pool's first page */, 4096, MADV_HWPOISON) != 0)
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
            // A writable open is asked for: the poisoned copy is never written over, so the pool opens
            // read-only from the backup instead of dying on a store into the poisoned page (a crash loop).
            using PmemPool pool = PmemPool.Open(map, Layout);
            ChildProcess.Report($"open {open}: {pool.HeaderRepair}, root {(pool.RootOffset == pool.DataOffset ? "kept" : "lost")}, {(pool.IsReadOnly ? "read-only" : "writable")}");
        }
        ChildProcess.Report("done");
    }
}
