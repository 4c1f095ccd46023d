// The program tests/package/consumer-check.sh builds in a brand-new project against the packed
// DirectPmem package: create an emulated device, map, write, persist, reopen, verify.
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;

// DirectPmem is Linux-only and says so ([SupportedOSPlatform("linux")]); this line tells the platform
// analyzer that this program is too, so that a build with warnings as errors has no CA1416.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

string path = args[0];
const long Size = 8L << 20;
using (DaxDevice device = DaxDevice.CreateEmulated(path, Size, PageSize.Pmd))
using (DaxMapping map = device.Map())
{
    "consumer"u8.CopyTo(map.GetSpan(0, 8));
    map.Publish(4096, 0xC0FFEE);
    map.Persist(0, 8);
    Console.WriteLine($"created {device.DevicePath}: {device.Size} bytes, align {device.Align.ToDisplayString()}, {map.Granularity}");
}
using (DaxDevice device = DaxDevice.OpenEmulated(path))
using (DaxMapping map = device.Map(new DaxMappingOptions { ReadOnly = true }))
{
    bool ok = map.GetReadOnlySpan(0, 8).SequenceEqual("consumer"u8) && map.GetReadOnlyRef<ulong>(4096) == 0xC0FFEE;
    Console.WriteLine(ok ? "reopened and verified" : "MISMATCH after reopen");
    return ok ? 0 : 1;
}
