// Quickstart: create a file-backed region, map it, write through a Span, persist, reopen and
// read back, and print the geometry the kernel really gave us.
using System.Text;
using DirectPmem.Geometry;
using DirectPmem.Mapping;

string path = args.Length > 0 ? args[0] : Path.Combine(Path.GetTempPath(), $"directpmem-quickstart-{Environment.ProcessId}.pmem");
const long Size = 4 * 1024 * 1024;
byte[] message = Encoding.UTF8.GetBytes("hello, persistent memory");

try
{
    using (PmemFile file = PmemFile.Create(path, Size))
    using (DaxMapping mapping = file.Map(new DaxMappingOptions { PageSize = PageSize.Pmd }))
    {
        message.CopyTo(mapping.GetSpan(0, message.Length));
        mapping.GetRef<long>(4096) = message.Length;
        mapping.Persist(0, 4096 + sizeof(long));

        PageSizeObservation seen = mapping.ObservePageSize();
        Console.WriteLine($"created   {path} ({Size} bytes, {file.Backing})");
        Console.WriteLine($"mapped    0x{mapping.Address:x} length {mapping.Length} page size {mapping.PageSize.ToDisplayString()} " +
                          $"(address aligned: {mapping.Address % (long)mapping.PageSize == 0})");
        Console.WriteLine($"observed  kernel page {seen.KernelPageSize / 1024} KiB, backed by {seen.ObservedPageSize.ToDisplayString()} pages, " +
                          $"DONTFORK {(seen.DontFork ? "set" : "MISSING")}");
        Console.WriteLine($"persisted {message.Length + sizeof(long)} bytes with {mapping.Granularity} granularity");
    }

    using (PmemFile file = PmemFile.Open(path, writable: false))
    using (DaxMapping mapping = file.Map(new DaxMappingOptions { ReadOnly = true }))
    {
        long length = mapping.GetReadOnlyRef<long>(4096);
        string text = Encoding.UTF8.GetString(mapping.GetReadOnlySpan(0, checked((int)length)));
        Console.WriteLine($"reopened  read back \"{text}\"");
        if (text != "hello, persistent memory")
        {
            Console.Error.WriteLine("MISMATCH: the data read back is not what was written");
            return 1;
        }
    }
    return 0;
}
finally
{
    if (args.Length == 0)
    {
        File.Delete(path);
    }
}
