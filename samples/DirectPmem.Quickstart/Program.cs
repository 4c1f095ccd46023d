// Quickstart, the README's first command: an emulated device-DAX device in a local file, carved
// into labelled ranges, mapped with device-DAX rules, written through spans, made durable, then
// reopened and verified. Runs anywhere: no persistent memory, no root, no native library.
//
//   dotnet run --project samples/DirectPmem.Quickstart -c Release [-- PATH [--keep]]
using System.Text;
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Persistence;

string path = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal)
    ? args[0]
    : Path.Combine(Path.GetTempPath(), $"directpmem-quickstart-{Environment.ProcessId}.dax");
bool keep = args.Contains("--keep");
const long DeviceSize = 64L << 20;
byte[] greeting = Encoding.UTF8.GetBytes("hello, persistent memory");

Console.WriteLine($"platform  flush with {Pmem.FlushInstruction}, eADR {(Pmem.IsEadr ? "yes" : "no")}, " +
                  $"{Pmem.VectorBits}-bit non-temporal copies from {Pmem.NonTemporalThreshold} B");
try
{
    // 1. Create the device and carve it into two labelled ranges.
    using (DaxDevice device = DaxDevice.CreateEmulated(path, DeviceSize, PageSize.Pmd))
    using (DaxRangeAllocator ranges = DaxRangeAllocator.Format(device))
    {
        Console.WriteLine($"device    {device.DevicePath}: {device.Size >> 20} MiB, align {device.Align.ToDisplayString()}, " +
                          $"emulated on {device.Backing}, persistence {device.Persistence}");
        DaxAllocation log = ranges.Allocate("log", 8L << 20);
        DaxAllocation table = ranges.Allocate("table", 16L << 20);
        Console.WriteLine($"ranges    {log}; {table}; labels take {ranges.LabelAreaLength >> 10} KiB");

        // 2. Map a range, write through a span and a ref, persist, and publish a commit word.
        using DaxMapping map = ranges.Map("log");
        map.Write(greeting, 64);                       // copy + flush + drain in one call
        map.GetRef<long>(8) = greeting.Length;
        map.Persist(8, sizeof(long));
        map.Publish(0, 0xC0FFEE);                      // failure-atomic 8-byte commit point

        PageSizeObservation seen = map.ObservePageSize();
        Console.WriteLine($"mapped    {map.Length >> 20} MiB, page size {map.PageSize.ToDisplayString()}, granularity {map.Granularity}");
        Console.WriteLine($"observed  kernel pages {seen.KernelPageSize >> 10} KiB, backed by {seen.ObservedPageSize.ToDisplayString()} pages, " +
                          $"DONTFORK {(seen.DontFork ? "set" : "MISSING")}");

        // 3. Device-DAX rules: a misaligned request is refused before mmap is called.
        try
        {
            ranges.Map("table", new DaxMappingOptions { Offset = 4096, Length = 2L << 20 });
        }
        catch (ArgumentException e)
        {
            Console.WriteLine($"refused   {e.Message}");
        }
    }

    // 4. Reopen everything by path and verify.
    using (DaxDevice device = DaxDevice.OpenEmulated(path))
    using (DaxRangeAllocator ranges = DaxRangeAllocator.Open(device))
    using (DaxMapping map = ranges.Map("log", new DaxMappingOptions { ReadOnly = true }))
    {
        ulong commit = map.GetReadOnlyRef<ulong>(0);
        long length = map.GetReadOnlyRef<long>(8);
        string text = Encoding.UTF8.GetString(map.GetReadOnlySpan(64, checked((int)length)));
        Console.WriteLine($"reopened  {ranges.Ranges.Count} ranges, commit 0x{commit:x}, read back \"{text}\"");
        if (commit != 0xC0FFEE || text != "hello, persistent memory")
        {
            Console.Error.WriteLine("MISMATCH: the data read back is not what was written");
            return 1;
        }
    }
    return 0;
}
finally
{
    if (!keep)
    {
        File.Delete(path);
    }
}
