using System.Runtime.InteropServices;
using System.Text;
using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.Storage;
using Microsoft.Win32.SafeHandles;

namespace DirectPmem.IntegrationTests;

/// <summary>
/// A pool's clean close deep-flushes its headers through the core's <see cref="DaxMapping.DeepFlush"/>:
/// on a sysfs tree built in a temporary directory whose region has a writable <c>deep_flush</c> (a
/// FIFO, so every byte written is counted), closing the pool writes exactly one <c>1</c>, and nothing
/// else about the pool writes it. This one runs anywhere (a file on a page-cache file system is all it
/// needs), in the guest as on the host; the qemu tier shows what the real region exposes.
/// </summary>
public sealed partial class PoolDeepFlushTests
{
    [Fact]
    public unsafe void Clean_close_of_a_pool_writes_its_regions_deep_flush_exactly_once()
    {
        string dataRoot = IntegrationEnvironment.RequireAnyPageCacheDirectory();
        string data = Path.Combine(dataRoot, "pool-deep-flush-" + Guid.NewGuid().ToString("N"));
        string sys = Directory.CreateTempSubdirectory("directpmem-sysfs-").FullName;
        Directory.CreateDirectory(data);
        try
        {
            string path = Path.Combine(data, "pool");
            using PmemFile file = PmemFile.Create(path, 1L << 20);
            if (file.Backing != MappingBacking.PageCacheFile)
            {
                Assert.Skip($"{dataRoot} is {file.Backing}, not a page-cache file system; set DIRECTPMEM_PAGECACHE_DIR");
            }
            // The tree: dev/block/MAJ:MIN of the file's file system -> a block device in region5 on an nd bus.
            Libc.Stat st;
            Assert.Equal(0, Libc.StatPath(path, &st));
            string region = Path.Combine(sys, "devices", "ndbus0", "region5");
            string disk = Path.Combine(region, "namespace5.0", "block", "pmem5");
            Directory.CreateDirectory(disk);
            Directory.CreateDirectory(Path.Combine(sys, "bus", "nd"));
            File.CreateSymbolicLink(Path.Combine(region, "subsystem"), "../../../bus/nd");
            Directory.CreateDirectory(Path.Combine(sys, "dev", "block"));
            File.CreateSymbolicLink(Path.Combine(sys, "dev", "block", $"{Libc.Major(st.st_dev)}:{Libc.Minor(st.st_dev)}"),
                Path.GetRelativePath(Path.Combine(sys, "dev", "block"), disk));
            string attribute = Path.Combine(region, "deep_flush");
            TestLibc.MakeFifo(attribute, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            file.SysfsRoot = sys;

            int fd = Libc.Open(attribute, Libc.O_RDONLY | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
            Assert.True(fd >= 0, $"open {attribute}: errno {Marshal.GetLastPInvokeError()}");
            using var reader = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, bufferSize: 0);

            PmemPool pool = PmemPool.Create(file.Map(), "deep-flush", ownsMapping: true);
            pool.SetRoot(pool.DataOffset);
            Assert.Equal("", Drain(reader));
            pool.Dispose();
            Assert.Equal("1", Drain(reader));
            pool.Dispose();
            Assert.Equal("", Drain(reader));

            // The clean mark followed the deep flush.
            using PmemPool reopened = PmemPool.Open(file.Map(), "deep-flush", ownsMapping: true);
            Assert.True(reopened.WasCleanlyClosed);
        }
        finally
        {
            Directory.Delete(sys, recursive: true);
            Directory.Delete(data, recursive: true);
        }
    }

    // With no writer left open, a read returns what is buffered and then 0 (end of file).
    private static string Drain(FileStream reader)
    {
        var text = new StringBuilder();
        byte[] buffer = new byte[64];
        int read;
        while ((read = reader.Read(buffer)) > 0)
        {
            text.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }
        return text.ToString();
    }
}
