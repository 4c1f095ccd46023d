using System.Globalization;
using System.Runtime.Intrinsics.X86;

namespace DirectPmem.Tool.Bench;

/// <summary>The machine a benchmark ran on: CPU model and cache sizes (every table names it).</summary>
internal sealed record MachineReport(string CpuModel, int LogicalCpus, long L1dBytes, long L2Bytes, long L3Bytes, string CacheSource, string Kernel);

internal static class Machine
{
    internal static MachineReport Describe()
    {
        string model = ReadCpuModel();
        (long l1, long l2, long l3, string source) = ReadCaches();
        string kernel = File.Exists("/proc/sys/kernel/osrelease") ? File.ReadAllText("/proc/sys/kernel/osrelease").Trim() : Environment.OSVersion.VersionString;
        return new MachineReport(model, Environment.ProcessorCount, l1, l2, l3, source, kernel);
    }

    /// <summary>The last-level cache in bytes (0 when unknown).</summary>
    internal static long LastLevelCache(MachineReport machine) => Math.Max(machine.L3Bytes, machine.L2Bytes);

    private static string ReadCpuModel()
    {
        foreach (string line in File.ReadLines("/proc/cpuinfo"))
        {
            if (line.StartsWith("model name", StringComparison.Ordinal))
            {
                return line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
            }
        }
        return "unknown";
    }

    private static (long L1d, long L2, long L3, string Source) ReadCaches()
    {
        (long l1, long l2, long l3) = (0, 0, 0);
        // sysfs first (what lscpu reads); virtual machines often leave it out.
        string dir = "/sys/devices/system/cpu/cpu0/cache";
        if (Directory.Exists(dir))
        {
            foreach (string index in Directory.EnumerateDirectories(dir, "index*"))
            {
                if (!int.TryParse(Read(index, "level"), NumberStyles.None, CultureInfo.InvariantCulture, out int level))
                {
                    continue;
                }
                string type = Read(index, "type");
                long size = ParseSize(Read(index, "size"));
                Assign(level, type is "Data" or "Unified", size, ref l1, ref l2, ref l3);
            }
            if (l1 + l2 + l3 > 0)
            {
                return (l1, l2, l3, "sysfs");
            }
        }
        if (!X86Base.IsSupported)
        {
            return (0, 0, 0, "unknown");
        }
        // CPUID deterministic cache parameters: leaf 4 (Intel) or 0x8000001D (AMD), same layout.
        (int maxExtended, _, _, _) = X86Base.CpuId(unchecked((int)0x80000000), 0);
        (_, int ebx0, int ecx0, int edx0) = X86Base.CpuId(0, 0);
        bool amd = ebx0 == 0x68747541 && edx0 == 0x69746E65 && ecx0 == 0x444D4163; // "AuthenticAMD"
        int leaf = amd && (uint)maxExtended >= 0x8000001D ? unchecked((int)0x8000001D) : 4;
        for (int sub = 0; sub < 16; sub++)
        {
            (int eax, int ebx, int ecx, _) = X86Base.CpuId(leaf, sub);
            int type = eax & 0x1F;
            if (type == 0)
            {
                break;
            }
            int level = (eax >> 5) & 0x7;
            long ways = ((ebx >> 22) & 0x3FF) + 1L;
            long partitions = ((ebx >> 12) & 0x3FF) + 1L;
            long line = (ebx & 0xFFF) + 1L;
            long sets = (uint)ecx + 1L;
            Assign(level, type is 1 or 3, ways * partitions * line * sets, ref l1, ref l2, ref l3);
        }
        if (l1 + l2 + l3 > 0)
        {
            return (l1, l2, l3, amd ? "cpuid 0x8000001d" : "cpuid 4");
        }
        if ((uint)maxExtended >= 0x80000006)
        {
            // The older extended leaves: L1d in 0x80000005 ECX[31:24] KiB, L2 in 0x80000006 ECX[31:16]
            // KiB, L3 in 0x80000006 EDX[31:18] units of 512 KiB.
            (_, _, int ecx5, _) = X86Base.CpuId(unchecked((int)0x80000005), 0);
            (_, _, int ecx6, int edx6) = X86Base.CpuId(unchecked((int)0x80000006), 0);
            l1 = ((long)((uint)ecx5 >> 24)) << 10;
            l2 = ((long)((uint)ecx6 >> 16)) << 10;
            l3 = ((long)((uint)edx6 >> 18)) * (512L << 10);
        }
        return (l1, l2, l3, l1 + l2 + l3 > 0 ? "cpuid 0x80000005/6" : "unknown");
    }

    private static void Assign(int level, bool dataOrUnified, long size, ref long l1, ref long l2, ref long l3)
    {
        if (!dataOrUnified)
        {
            return;
        }
        switch (level)
        {
            case 1: l1 = size; break;
            case 2: l2 = size; break;
            case 3: l3 = size; break;
        }
    }

    private static string Read(string dir, string name)
    {
        string path = Path.Join(dir, name);
        return File.Exists(path) ? File.ReadAllText(path).Trim() : "";
    }

    private static long ParseSize(string text)
    {
        if (text.Length == 0)
        {
            return 0;
        }
        long multiplier = char.ToUpperInvariant(text[^1]) switch { 'K' => 1024, 'M' => 1024 * 1024, _ => 1 };
        string digits = multiplier == 1 ? text : text[..^1];
        return long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long value) ? value * multiplier : 0;
    }
}
