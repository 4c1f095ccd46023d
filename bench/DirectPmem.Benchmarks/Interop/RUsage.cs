using System.Runtime.InteropServices;

namespace DirectPmem.Benchmarks.Interop;

/// <summary>getrusage(2), for the page-fault counts of the prefault benchmark.</summary>
internal static unsafe partial class RUsageNative
{
    /// <summary><c>struct rusage</c> on x86-64 (144 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct RUsage
    {
        public long ru_utime_sec;
        public long ru_utime_usec;
        public long ru_stime_sec;
        public long ru_stime_usec;
        public long ru_maxrss;
        public long ru_ixrss;
        public long ru_idrss;
        public long ru_isrss;
        public long ru_minflt;
        public long ru_majflt;
        public long ru_nswap;
        public long ru_inblock;
        public long ru_oublock;
        public long ru_msgsnd;
        public long ru_msgrcv;
        public long ru_nsignals;
        public long ru_nvcsw;
        public long ru_nivcsw;
    }

    internal const int RUSAGE_SELF = 0;

    [LibraryImport("libc", EntryPoint = "getrusage", SetLastError = true)]
    internal static partial int GetRUsage(int who, RUsage* usage);
}
