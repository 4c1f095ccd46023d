using System.Globalization;
using System.Text.Json;
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.Storage;

namespace DirectPmem.IntegrationTests;

/// <summary>
/// Issue 19's media-error proofs on the kernel's own NVDIMM test bus (<c>nfit_test</c>, built from the
/// kernel's tools/testing/nvdimm for the guest's kernel by tests/devdax-vm/nfit-test-build.sh and booted by
/// <c>run.sh --nfit-test</c>). Unlike qemu's NVDIMM, nfit_test answers address range scrub, error injection
/// (<c>ndctl inject-error</c>, the ACPI ARS error-inject DSM) and the clear-uncorrectable-error DSM: a region's
/// <c>badblocks</c> is filled by the kernel's own ARS path, the pmem driver's list follows it, and the fsdax
/// recovery write (<c>dax_recovery_write</c> -> <c>pmem_clear_poison</c> -> <c>ND_CMD_CLEAR_ERROR</c>) really clears.
/// nfit_test's media is ordinary memory: an injected error is a listed range, never a machine check, so what
/// a load there delivers is the drivers' answer to the list (recorded by each test).
/// </summary>
public sealed class NfitTestTests(ITestOutputHelper output)
{
    private const int Page = 4096;

    private static string Bus => Environment.GetEnvironmentVariable("DIRECTPMEM_NFIT_TEST") is { Length: > 0 } bus
        ? bus
        : SkipString("not in an nfit_test guest: DIRECTPMEM_NFIT_TEST is not set (run tests/devdax-vm/run.sh --nfit-test, which boots "
            + "the qemu guest with the kernel's nfit_test modules instead of qemu's NVDIMM)");

    private static string Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value
        ? value
        : throw new InvalidOperationException($"{name} is not set although DIRECTPMEM_NFIT_TEST is: tests/devdax-vm/init-nfit sets both");

    /// <summary>
    /// device-DAX: an error injected at namespace block 64 (8 sectors) and found by a scrub is listed by the
    /// region in region sectors, and <see cref="DaxDevice.GetBadRanges"/> places it at device offset 0x8000 through
    /// the device's real resource; <c>dpmem check</c> says the same (and reads nothing from the device);
    /// <see cref="DaxDevice.ClearBadRange"/> refuses with the operator's steps; the operator's
    /// <c>ndctl clear-errors</c> empties the list.
    /// </summary>
    [Fact]
    public void An_injected_error_on_the_devdax_namespace_is_listed_at_its_device_offset_until_the_operator_clears_it()
    {
        string bus = Bus;
        string path = Env("DIRECTPMEM_NFIT_DEVDAX");
        string ns = Env("DIRECTPMEM_NFIT_DEVDAX_NAMESPACE");
        const long Block = 64;
        const long BadOffset = Block * 512;
        Inject(bus, ns, Block, 8);

        DaxDevice device = DaxDevice.Open(path);
        string regionDir = $"/sys/bus/nd/devices/{device.Region!.Name}";
        long regionStart = IntegrationEnvironment.ReadSysfsNumber($"{regionDir}/resource");
        long deviceStart = IntegrationEnvironment.ReadSysfsNumber($"{IntegrationEnvironment.SysfsDirectory(path)}/resource");
        string regionList = File.ReadAllText($"{regionDir}/badblocks").Trim();
        output.WriteLine($"{regionDir}/badblocks: '{regionList.Replace('\n', ';')}'; region at 0x{regionStart:x}, {path} at 0x{deviceStart:x}");
        long regionSector = (deviceStart - regionStart + BadOffset) / 512;
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"{regionSector} 8"), regionList.Split('\n'));

        BadRangeReport report = device.GetBadRanges();
        output.WriteLine($"{path}: {report}");
        Assert.Equal(BadRangeCoverage.Complete, report.Coverage);
        Assert.Equal([new PmemRange(BadOffset, Page)], report.Ranges);

        // No load is made here: nfit_test backs the device with vmalloc pages, and its device_dax answers every fault
        // of a 2 MiB-aligned device with SIGBUS (with a 4 KiB align the 6.1 guest oopses in dax_set_mapping instead).
        // What a load of a listed page delivers is shown on fsdax below.
        CheckLists(path, "[0x8000, 0x9000)");

        BadBlocksNotClearableException refused = Assert.Throws<BadBlocksNotClearableException>(() => device.ClearBadRange(BadOffset, Page));
        output.WriteLine($"ClearBadRange: {refused.Message}");
        Assert.Contains($"ndctl clear-errors {ns}", refused.Message, StringComparison.Ordinal);

        // The operator's step the message names: ndctl clears through the same DSM, then the list is empty.
        output.WriteLine("ndctl clear-errors: " + IntegrationEnvironment.RunTool("ndctl", "clear-errors", "-b", bus, ns).Trim());
        Scrub(bus);
        BadRangeReport after = DaxDevice.Open(path).GetBadRanges();
        output.WriteLine($"after ndctl clear-errors: {after}; {regionDir}/badblocks '{File.ReadAllText($"{regionDir}/badblocks").Trim()}'");
        Assert.Equal(BadRangeCoverage.Complete, after.Coverage);
        Assert.Empty(after.Ranges);
    }

    /// <summary>
    /// fsdax: an error injected under a file's extent (FIEMAP gives the disk sector, which is the namespace block
    /// ndctl takes) is listed by the pmem disk and the region and placed at its file offset; a load there is a
    /// typed error of <see cref="DaxMapping.ReadSafe"/>, and read(2) fails; <see cref="PmemFile.ClearBadRange(long, ReadOnlySpan{byte})"/>
    /// clears it by the kernel's recovery write (the clear-error DSM), the lists are empty, and the page reads
    /// back what was written.
    /// </summary>
    [Fact]
    public unsafe void The_fsdax_recovery_write_clears_an_injected_error_and_the_range_reads_back_what_was_written()
    {
        string bus = Bus;
        string ns = Env("DIRECTPMEM_NFIT_FSDAX_NAMESPACE");
        string dir = IntegrationEnvironment.RequireFsDaxDirectory();
        const long BadOffset = 16 * 1024;
        string path = IntegrationEnvironment.NewFile(dir, "nfit-recovery");
        using PmemFile file = PmemFile.Create(path, 64 * 1024);
        byte[] before = [.. Enumerable.Range(0, Page).Select(i => (byte)(i * 3 + 1))];
        using (DaxMapping map = file.Map())
        {
            for (long offset = 0; offset < file.Size; offset += Page)
            {
                map.Write(before, offset);
            }
            map.Persist(0, file.Size);
        }
        (long sector, NdBlockDevice disk) = DiskSector(file, BadOffset);
        Inject(bus, ns, sector, 8);

        string diskList = File.ReadAllText(disk.BadBlocksPath).Trim();
        output.WriteLine($"{disk.BadBlocksPath}: '{diskList.Replace('\n', ';')}' (injected at sector {sector})");
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"{sector} 8"), diskList.Split('\n'));
        BadRangeReport report = file.GetBadRanges();
        output.WriteLine($"{path}: {report}");
        Assert.Equal(BadRangeCoverage.Complete, report.Coverage);
        Assert.Equal([new PmemRange(BadOffset, Page)], report.Ranges);

        // What the kernel delivers on a load of the listed page: the pmem driver refuses DAX access to a listed
        // page (-EIO), so the DAX fault ends in SIGBUS; the safe read must turn it into a typed error.
        using (DaxMapping map = file.Map(new DaxMappingOptions { ReadOnly = true }))
        {
            Assert.Equal([new PmemRange(BadOffset, Page)], map.GetBadRanges().Ranges);
            byte[] read = new byte[2 * Page];
            PmemMediaErrorException e = Assert.Throws<PmemMediaErrorException>(() => map.ReadSafe(BadOffset - Page, read));
            output.WriteLine($"ReadSafe [0x{BadOffset - Page:x}, +0x{2 * Page:x}): {e.Kind}, bad 0x{e.BadOffset:x} +0x{e.BadLength:x}, {e.BytesRead} bytes read: {e.Message}");
            Assert.Equal(Page, e.BytesRead);
            Assert.Equal(BadOffset, e.BadOffset);
            // BUS_ADRERR below the file's end: the page the driver refused to map, not a truncation.
            Assert.Equal(MediaErrorKind.IoError, e.Kind);
            Assert.Equal(Page, e.BadLength);
            Assert.Equal(before, read.AsSpan(0, Page).ToArray());
        }
        // read(2) through the file system: dax_iomap_rw meets the listed page.
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None))
        {
            stream.Position = BadOffset;
            IOException readError = Assert.ThrowsAny<IOException>(() => stream.ReadExactly(new byte[Page]));
            output.WriteLine($"read(2) of the listed page: {readError.GetType().Name} HResult 0x{readError.HResult:x}: {readError.Message}");
        }

        byte[] data = [.. Enumerable.Range(0, Page).Select(i => (byte)(i * 7))];
        PoisonClearResult result = file.ClearBadRange(BadOffset, data);
        string regionList = File.ReadAllText(RegionBadBlocksPath(disk)).Trim();
        output.WriteLine($"cleared: {result}; disk list now '{File.ReadAllText(disk.BadBlocksPath).Trim().Replace('\n', ';')}', region list '{regionList.Replace('\n', ';')}'");
        Assert.Equal(PoisonClearMethod.RecoveryWrite, result.Method);
        Assert.Empty(result.StillListed);
        Assert.Equal(BadRangeCoverage.Complete, result.CoverageAfter);
        Assert.DoesNotContain(string.Create(CultureInfo.InvariantCulture, $"{sector} 8"), File.ReadAllText(disk.BadBlocksPath).Split('\n'));
        // The file's block did not move: the recovery write cleared the media in place.
        (long sectorAfter, _) = DiskSector(file, BadOffset);
        Assert.Equal(sector, sectorAfter);
        Assert.Empty(file.GetBadRanges().Ranges);
        using (DaxMapping map = file.Map(new DaxMappingOptions { ReadOnly = true }))
        {
            byte[] back = new byte[Page];
            map.ReadSafe(BadOffset, back);
            Assert.Equal(data, back);
            map.ReadSafe(BadOffset - Page, back);
            Assert.Equal(before, back);
        }
        File.Delete(path);
    }

    /// <summary>
    /// <c>dpmem check</c> of a pool file lists an injected error under it at its file offset (exit 2) and does not
    /// read the pool.
    /// </summary>
    [Fact]
    public void Dpmem_check_lists_an_injected_error_under_a_pool_at_its_file_offset()
    {
        string bus = Bus;
        string ns = Env("DIRECTPMEM_NFIT_FSDAX_NAMESPACE");
        string dir = IntegrationEnvironment.RequireFsDaxDirectory();
        const long BadOffset = 16 * 1024; // the pool's reserved area, after both headers
        string path = IntegrationEnvironment.NewFile(dir, "nfit-check");
        using (PmemPool pool = PmemPool.CreateFile(path, 1 << 20, "nfit-check"))
        {
            pool.SetRoot(pool.DataOffset);
        }
        long sector;
        using (PmemFile file = PmemFile.Open(path))
        {
            (sector, _) = DiskSector(file, BadOffset);
        }
        Inject(bus, ns, sector, 8);

        CheckLists(path, "[0x4000, 0x5000)");

        // `dpmem check --repair` clears the range (the recovery write) and then opens the pool through a mapping
        // whose PmemFile it has disposed: the mapping's own reference on the descriptor keeps its bad-range list
        // readable (this failed with ObjectDisposedException before the mapping held one).
        (int code, string stdout, string stderr) = IntegrationEnvironment.RunDpmem("check", path, "--repair", "--yes");
        output.WriteLine($"dpmem check {path} --repair --yes: exit {code}\n{stdout}\n{stderr}");
        Assert.DoesNotContain("ObjectDisposedException", stdout + stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled", stdout + stderr, StringComparison.Ordinal);
        Assert.NotEqual(1, code);
        (int after, string afterOut, string afterErr) = IntegrationEnvironment.RunDpmem("check", path, "--json");
        output.WriteLine($"dpmem check {path} --json after the repair: exit {after}\n{afterOut}\n{afterErr}");
        Assert.DoesNotContain("\"bad blocks\"", afterOut, StringComparison.Ordinal);
    }

    // `dpmem check --json`: a "bad blocks" problem names the range, and the exit code is 2 (problems found).
    private void CheckLists(string path, string range)
    {
        (int code, string stdout, string stderr) = IntegrationEnvironment.RunDpmem("check", path, "--json");
        output.WriteLine($"dpmem check {path} --json: exit {code}\n{stdout}\n{stderr}");
        using (JsonDocument doc = JsonDocument.Parse(stdout))
        {
            JsonElement problem = doc.RootElement.GetProperty("problems").EnumerateArray().First(p => p.GetProperty("area").GetString() == "bad blocks");
            Assert.Contains(range, problem.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
        Assert.Equal(2, code);
    }

    private void Inject(string bus, string ns, long block, long count)
    {
        string json = IntegrationEnvironment.RunTool("ndctl", "inject-error", "-b", bus, ns,
            "--block=" + block.ToString(CultureInfo.InvariantCulture), "--count=" + count.ToString(CultureInfo.InvariantCulture));
        output.WriteLine($"ndctl inject-error {ns} --block={block} --count={count}: {json.Replace("\n", "", StringComparison.Ordinal).Replace(" ", "", StringComparison.Ordinal)}");
        Scrub(bus);
    }

    // The region's list (and the pmem disk's) is filled by the kernel's ARS: start one and wait for it.
    private void Scrub(string bus)
    {
        string started = IntegrationEnvironment.RunTool("ndctl", "start-scrub", bus);
        string waited = IntegrationEnvironment.RunTool("ndctl", "wait-scrub", bus);
        output.WriteLine($"scrub: {started.Replace("\n", "", StringComparison.Ordinal).Replace(" ", "", StringComparison.Ordinal)} -> {waited.Replace("\n", "", StringComparison.Ordinal).Replace(" ", "", StringComparison.Ordinal)}");
    }

    // The disk sector of a file offset (FIEMAP), and the file's pmem disk (st_dev through /sys/dev/block).
    private static unsafe (long Sector, NdBlockDevice Disk) DiskSector(PmemFile file, long offset)
    {
        var extents = new List<FileExtent>();
        Assert.Equal(0, FileExtents.Read(file.Handle.Fd, file.Size, extents));
        FileExtent extent = extents.Find(e => e.Logical <= offset && e.Logical + e.Length >= offset + Page);
        Assert.True(extent.Length > 0 && extent.HasPhysicalAddress, $"no extent with a physical address holds 0x{offset:x}: {string.Join(", ", extents)}");
        Libc.Stat st;
        Assert.Equal(0, Libc.FStat(file.Handle.Fd, &st));
        Assert.Equal(NdBlockDevice.Lookup.Found, NdBlockDevice.Find("/sys", Libc.Major(st.st_dev), Libc.Minor(st.st_dev), out NdBlockDevice? disk, out _));
        return ((extent.Physical + offset - extent.Logical) / 512, disk!);
    }

    private static string RegionBadBlocksPath(NdBlockDevice disk) => $"/sys/bus/nd/devices/{disk.RegionName}/badblocks";

    private static string SkipString(string reason)
    {
        Assert.Skip(reason);
        return reason; // not reached: Assert.Skip throws
    }
}
