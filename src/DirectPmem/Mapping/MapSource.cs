using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Internal;
using DirectPmem.Interop;
using DirectPmem.Persistence;

namespace DirectPmem.Mapping;

/// <summary>
/// What a mapping is made from (PMDK's <c>pmem2_source</c>): a device node, a regular file, a DAX
/// file, a memfd or tmpfs file, hugetlb memory, anonymous memory, an emulated device, or a source
/// supplied from outside (the crash simulator). Each source states its size, the alignment it
/// requires, the page size it really faults in, its durability class and its mmap flags, and says
/// which options it can honour; <see cref="MapRequest.Create"/> asks it once per request.
/// </summary>
internal abstract unsafe class MapSource
{
    /// <summary>What the mapping is made from, as reported by <see cref="DaxMapping.Backing"/>.</summary>
    internal abstract MappingBacking Backing { get; }

    /// <summary>The path for messages and <see cref="DaxMapping.Path"/>; null for anonymous memory.</summary>
    internal abstract string? Path { get; }

    /// <summary>The source named in messages: <c>'path'</c> or <c>anonymous memory</c>.</summary>
    internal virtual string What => Path is null ? "anonymous memory" : "'" + Path + "'";

    /// <summary>The smallest page size a mapping can have (the required alignment of offsets and lengths).</summary>
    internal abstract PageSize MinimumPageSize { get; }

    /// <summary>The page size the kernel really faults the source in.</summary>
    internal abstract PageSize FaultGranularity { get; }

    /// <summary>How data in it is made durable, for <see cref="PersistencePlatform.Choose"/>.</summary>
    internal abstract DurabilityClass Durability { get; }

    /// <summary>mmap flags besides MAP_SHARED (MAP_SYNC, MAP_HUGETLB, MAP_ANONYMOUS...).</summary>
    internal abstract int MapFlags { get; }

    /// <summary>Whether a writable mapping can be made.</summary>
    internal virtual bool IsWritable => true;

    /// <summary>Whether the source has a size (files, devices); anonymous memory has none and takes no offset.</summary>
    internal virtual bool HasOffsets => true;

    /// <summary>The current size in bytes, re-read where it can change (a regular file).</summary>
    internal abstract long CurrentSize();

    /// <summary>The page size used when the options name none.</summary>
    internal virtual PageSize DefaultPageSize(DaxMappingOptions options) => MinimumPageSize;

    /// <summary>
    /// The huge-page mode the mapping uses for <paramref name="requested"/>, or a typed refusal
    /// when the source cannot honour it. Files, devices and memfds take their pages from the source.
    /// </summary>
    internal virtual HugePages ResolveHugePages(HugePages requested)
    {
        if (requested == HugePages.None)
        {
            return FaultGranularity == PageSize.Pte ? HugePages.None : HugePages.Hugetlb;
        }
        if (requested == HugePages.Hugetlb && Backing == MappingBacking.Hugetlb)
        {
            return HugePages.Hugetlb;
        }
        if (requested == HugePages.Transparent && Backing == MappingBacking.SharedMemory)
        {
            // MADV_HUGEPAGE on shmem: a hint the kernel follows per shmem_enabled.
            return HugePages.Transparent;
        }
        throw MapRequest.OptionRefused(
            $"HugePages = {requested} cannot be honoured for {What} ({MapSources.Describe(Backing)}): its pages come from the source. " +
            "Use HugePages.None, or a hugetlb memfd or hugetlbfs file for hugetlb pages.");
    }

    /// <summary>A descriptor to map, and whether the caller must dispose it; null for anonymous memory.</summary>
    internal abstract SafeFileDescriptor? AcquireDescriptor(bool readOnly, out bool owned);

    /// <summary>
    /// For a writable mapping of a file: makes sure every block of <c>[offset, offset + length)</c>
    /// exists (fallocate), so that a store never meets a hole the file system cannot fill (SIGBUS).
    /// </summary>
    internal virtual void EnsureBlocks(SafeFileDescriptor fd, long offset, long length)
    {
    }

    /// <summary>The descriptor the page-granularity persist checks for truncation, or null.</summary>
    internal virtual SafeFileDescriptor? TruncationWatch => null;

    /// <summary>The operations of a mapping of this source at <paramref name="mappingBase"/>; null takes the platform's for the granularity.</summary>
    internal virtual PersistOps? CreateOps(byte* mappingBase, long length) => null;

    /// <summary>
    /// The deep-flush control of the NVDIMM region behind the source, resolved once per source, or
    /// null when no region is behind it (anonymous memory, tmpfs, a disk, an outside source).
    /// </summary>
    internal virtual DeepFlushControl? RegionDeepFlush => null;

    /// <summary>The known bad ranges of the whole source, in source offsets, read fresh; memory has no list.</summary>
    /// <remarks>Called by a mapping, which holds a reference on <see cref="ListDescriptor"/> across the call.</remarks>
    internal virtual BadRangeReport BadRanges() => BadRangeReport.None(What + " is memory, which has no bad-block list");

    /// <summary>
    /// The descriptor <see cref="BadRanges"/> reads through (a file's FIEMAP), which a mapping references
    /// for its whole life so that its list can be read after the <see cref="PmemFile"/> was disposed; null
    /// when the list needs no descriptor.
    /// </summary>
    internal virtual SafeFileDescriptor? ListDescriptor => null;

    /// <summary>The granularity a mapping gets, or a refusal of a required one it cannot have.</summary>
    internal virtual PersistGranularity ChooseGranularity(bool forceCacheLine, PersistGranularity? required)
        => PersistencePlatform.Choose(Durability, forceCacheLine, required, What);
}

/// <summary>The sources of this assembly.</summary>
internal static class MapSources
{
    internal static string Describe(MappingBacking backing) => backing switch
    {
        MappingBacking.PageCacheFile => "the page cache of an ordinary file",
        MappingBacking.FsDaxFile => "a file on a DAX file system (extents are not guaranteed 2 MiB-aligned)",
        MappingBacking.SharedMemory => "tmpfs/memfd shared memory (transparent huge pages are best effort)",
        MappingBacking.Anonymous => "anonymous memory without hugetlb pages",
        MappingBacking.Hugetlb => "hugetlb memory",
        MappingBacking.DeviceDax => "a device-DAX device",
        _ => backing.ToString(),
    };

    internal static DurabilityClass DurabilityOf(MappingBacking backing) => backing switch
    {
        MappingBacking.PageCacheFile => DurabilityClass.PageCache,
        MappingBacking.FsDaxFile => DurabilityClass.FileSystemDax,
        MappingBacking.DeviceDax => DurabilityClass.DeviceDax,
        _ => DurabilityClass.Volatile,
    };
}

/// <summary>A regular file (page cache, DAX file system, tmpfs, hugetlbfs) or a memfd, opened through <see cref="PmemFile"/>.</summary>
internal sealed class FileSource(PmemFile file) : MapSource
{
    internal PmemFile File => file;

    internal override MappingBacking Backing => file.Backing;

    internal override string? Path => file.Path;

    internal override PageSize MinimumPageSize => file.MinimumPageSize;

    internal override PageSize FaultGranularity => file.Backing == MappingBacking.Hugetlb ? file.MinimumPageSize : PageSize.Pte;

    internal override DurabilityClass Durability => MapSources.DurabilityOf(file.Backing);

    internal override int MapFlags => file.Backing == MappingBacking.FsDaxFile ? Libc.MAP_SHARED_VALIDATE | Libc.MAP_SYNC : 0;

    internal override bool IsWritable => file.IsWritable;

    internal override long CurrentSize() => file.CurrentSize();

    internal override SafeFileDescriptor AcquireDescriptor(bool readOnly, out bool owned)
    {
        ObjectDisposedException.ThrowIf(file.Handle.IsClosed, file);
        owned = false;
        return file.Handle;
    }

    internal override void EnsureBlocks(SafeFileDescriptor fd, long offset, long length) => PmemFile.EnsureBlocks(fd, file.Path, offset, length);

    internal override SafeFileDescriptor? TruncationWatch => file.Backing == MappingBacking.PageCacheFile ? file.Handle : null;

    // The region behind the file system's block device (fsdax, or a page-cache file system on a pmem namespace).
    internal override DeepFlushControl? RegionDeepFlush => file.RegionDeepFlush;

    internal override BadRangeReport BadRanges() => file.ReadBadRangesForMapping();

    internal override SafeFileDescriptor? ListDescriptor => file.Handle;
}

/// <summary>Shared anonymous memory: base pages, transparent huge pages (verified when required) or hugetlb pages.</summary>
internal sealed class AnonymousSource(HugePages hugePages, PageSize pageSize) : MapSource
{
    internal override MappingBacking Backing => hugePages == HugePages.Hugetlb ? MappingBacking.Hugetlb : MappingBacking.Anonymous;

    internal override string? Path => null;

    internal override PageSize MinimumPageSize => hugePages == HugePages.Hugetlb ? PageSize.Pmd : PageSize.Pte;

    internal override PageSize FaultGranularity => hugePages == HugePages.Hugetlb ? pageSize : PageSize.Pte;

    internal override DurabilityClass Durability => DurabilityClass.Volatile;

    internal override int MapFlags => Libc.MAP_ANONYMOUS | (hugePages == HugePages.Hugetlb
        ? Libc.MAP_HUGETLB | (pageSize == PageSize.Pud ? Libc.MAP_HUGE_1GB : Libc.MAP_HUGE_2MB)
        : 0);

    internal override bool HasOffsets => false;

    internal override long CurrentSize() => long.MaxValue;

    internal override PageSize DefaultPageSize(DaxMappingOptions options) => pageSize;

    internal override HugePages ResolveHugePages(HugePages requested) => requested;

    internal override SafeFileDescriptor? AcquireDescriptor(bool readOnly, out bool owned)
    {
        owned = false;
        return null;
    }
}

/// <summary>
/// An emulated device-DAX device: a window of a file or memfd whose alignment is the device's,
/// faulted in the file's pages (hugetlb pages of the device alignment, 4 KiB otherwise).
/// </summary>
internal sealed class EmulatedDeviceSource(FileSource file, PageSize align, long size) : MapSource
{
    internal override MappingBacking Backing => file.Backing;

    internal override string? Path => file.Path;

    internal override PageSize MinimumPageSize => align;

    internal override PageSize FaultGranularity => file.Backing == MappingBacking.Hugetlb
        ? (PageSize)Math.Min((long)file.MinimumPageSize, (long)align)
        : PageSize.Pte;

    internal override DurabilityClass Durability => file.Durability;

    internal override int MapFlags => file.MapFlags;

    internal override bool IsWritable => file.IsWritable;

    // The descriptor block lives after the data: the device ends at its size, or earlier if the
    // file was truncated behind our back.
    internal override long CurrentSize() => Math.Min(size, file.CurrentSize());

    internal override HugePages ResolveHugePages(HugePages requested) => file.ResolveHugePages(requested);

    internal override SafeFileDescriptor? AcquireDescriptor(bool readOnly, out bool owned) => file.AcquireDescriptor(readOnly, out owned);

    internal override void EnsureBlocks(SafeFileDescriptor fd, long offset, long length) => file.EnsureBlocks(fd, offset, length);

    internal override SafeFileDescriptor? TruncationWatch => file.TruncationWatch;

    // The region behind the file the device is emulated on: none for memfd, tmpfs and hugetlbfs.
    internal override DeepFlushControl? RegionDeepFlush => file.RegionDeepFlush;

    // Device offsets are the file's offsets; the descriptor block after the device is not the device's.
    internal override BadRangeReport BadRanges() => file.BadRanges().Window(0, size, "device offsets are the emulated device's file offsets");

    internal override SafeFileDescriptor? ListDescriptor => file.ListDescriptor;
}

/// <summary>
/// A device-DAX character device; the node is opened for each mapping and closed after mmap. Its
/// region's deep-flush control is resolved by <paramref name="resolveDeepFlush"/> at the first map.
/// </summary>
internal sealed class DeviceNodeSource(string devicePath, long size, PageSize align, Func<bool, SafeFileDescriptor> open,
    Func<DeepFlushControl?> resolveDeepFlush, Func<BadRangeReport> badRanges) : MapSource
{
    // The device (a layer above) knows its region and physical ranges: it supplies the list.
    internal override BadRangeReport BadRanges() => badRanges();

    private readonly Lazy<DeepFlushControl?> _deepFlush = new(resolveDeepFlush);

    internal override DeepFlushControl? RegionDeepFlush => _deepFlush.Value;

    internal override MappingBacking Backing => MappingBacking.DeviceDax;

    internal override string? Path => devicePath;

    internal override PageSize MinimumPageSize => align;

    internal override PageSize FaultGranularity => align;

    internal override DurabilityClass Durability => DurabilityClass.DeviceDax;

    internal override int MapFlags => Libc.MAP_SHARED_VALIDATE | Libc.MAP_SYNC;

    // fstat says 0 for a character device: the size comes from sysfs, and mmap does not check it.
    internal override long CurrentSize() => size;

    internal override HugePages ResolveHugePages(HugePages requested) => requested switch
    {
        HugePages.None => HugePages.None,
        _ => throw MapRequest.OptionRefused(string.Create(CultureInfo.InvariantCulture,
            $"HugePages = {requested} cannot be honoured for {What}: a device-DAX device always faults in its own {align.ToDisplayString()} alignment; use HugePages.None.")),
    };

    internal override SafeFileDescriptor AcquireDescriptor(bool readOnly, out bool owned)
    {
        owned = true;
        return open(readOnly);
    }
}
