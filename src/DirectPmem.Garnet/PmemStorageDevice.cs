using System.Collections.Concurrent;
using Tsavorite.core;

namespace DirectPmem.Garnet;

/// <summary>
/// A Tsavorite <see cref="IDevice"/> whose segments live on a <see cref="PmemVolume"/>.
/// </summary>
/// <remarks>
/// <para>I/O completes inline: <c>WriteAsync</c> copies with non-temporal stores and persists on
/// the calling thread, then calls the callback on that same thread before returning, as
/// Tsavorite's own <c>LocalMemoryDevice</c> does with inline completion. There is no queue, no
/// completion thread and nothing pending, so <see cref="StorageDeviceBase.TryComplete"/> has
/// nothing to drain. Tsavorite issues device I/O from threads that may hold epoch protection
/// (flushes are issued from epoch-protected <c>BumpCurrentEpoch</c> actions and from commit
/// paths); the callback then runs under the same protection, which Tsavorite's callbacks allow
/// because a completion from a real device can arrive on any thread. The device never takes or
/// releases epoch protection itself, and never blocks on another I/O.</para>
/// <para>Every method is safe to call concurrently with any other and with the volume's
/// <c>Dispose</c>; I/O racing a delete of its segment or the volume's Dispose behaves as
/// <see cref="PmemVolume"/> describes.</para>
/// <para>Errors (misalignment, a full volume, a closed volume) are reported through the
/// callback's error code (an errno: EINVAL 22, ENOSPC 28, EIO 5) with the exception as
/// <c>ioException</c>; the device's own work in <c>ReadAsync</c>/<c>WriteAsync</c> never throws.
/// Reads copy through the poison-safe <see cref="DirectPmem.Mapping.DaxMapping.ReadSafe"/> where the
/// process has it: a read of poisoned media or of a page past the end of a truncated backing file
/// completes with EIO and a <see cref="PmemVolumeException"/> (<see cref="PmemVolumeError.MediaError"/>)
/// naming the device, segment and offsets, and the process goes on.</para>
/// <para>Inline completion is inside Tsavorite's contract: <see cref="IDevice"/> promises only that the
/// callback runs once, on some thread, and Tsavorite's own <c>LocalMemoryDevice</c> completes inline
/// when configured so. The callback is Tsavorite's code and runs outside the device's error
/// handling: an exception it throws (a deserialization failure of a record it read, say) is not a
/// device error and is not turned into one. It reaches the caller of <c>ReadAsync</c>, as with
/// <c>LocalMemoryDevice</c>; an asynchronous device such as the <c>RandomAccess</c> file device
/// drops it in a discarded task and the waiter hangs instead (docs/garnet-known-defects.md).</para>
/// </remarks>
internal sealed class PmemStorageDevice : StorageDeviceBase
{
    private readonly PmemVolume _volume;
    private readonly ConcurrentDictionary<int, VolumeSegment> _segments = new();

    internal PmemStorageDevice(PmemVolume volume, string name)
        : base(name, PmemVolume.SectorSize, volume.ReportedCapacity)
    {
        _volume = volume;
    }

    /// <inheritdoc/>
    public override void Initialize(long segmentSize, LightEpoch epoch = null!, bool omitSegmentIdFromFilename = false)
    {
        // Called at start-up on the caller's thread, not on an I/O path: a refusal here is the
        // "error at start-up" a too-small volume must give.
        if (segmentSize < -1)
            throw new PmemVolumeException(PmemVolumeError.OutOfRange,
                $"'{FileName}': segment size {segmentSize} is negative (Tsavorite passes -1 for segments of any size).");
        if (segmentSize > _volume.DataCapacity)
            throw new PmemVolumeException(PmemVolumeError.TooSmall,
                $"'{FileName}' asks for {segmentSize}-byte segments but {PmemVolume.Describe(_volume.Mapping)} holds only {_volume.DataCapacity} bytes of data; use a larger device or a smaller segment size (Garnet: --segment / --aof-segment-size).");
        if (segmentSize > 0 && segmentSize % PmemVolume.SectorSize != 0)
            throw new PmemVolumeException(PmemVolumeError.Unaligned, $"'{FileName}': segment size {segmentSize} is not a multiple of the {PmemVolume.SectorSize}-byte sector.");
        base.Initialize(segmentSize, epoch, omitSegmentIdFromFilename);
    }

    /// <inheritdoc/>
    public override unsafe void WriteAsync(IntPtr sourceAddress, int segmentId, ulong destinationAddress, uint numBytesToWrite, DeviceIOCompletionCallback callback, object context)
    {
        uint error = 0;
        Exception? failure = null;
        try
        {
            Check(segmentId, destinationAddress, numBytesToWrite, "write");
            var source = new ReadOnlySpan<byte>((void*)sourceAddress, (int)numBytesToWrite);
            // A segment deleted between the lookup and the write is looked up again: the write
            // then begins the segment anew, as a write after the delete.
            while (!_volume.TryWrite(Resolve(segmentId, create: true)!, (long)destinationAddress, source))
            {
            }
        }
#pragma warning disable CA1031 // Every failure goes to the callback: nothing may escape onto a Tsavorite thread.
        catch (Exception e)
#pragma warning restore CA1031
        {
            error = ErrorCode(e);
            failure = e;
        }
        callback(error, error == 0 ? numBytesToWrite : 0, context, failure!);
    }

    /// <inheritdoc/>
    public override unsafe void ReadAsync(int segmentId, ulong sourceAddress, IntPtr destinationAddress, uint readLength, DeviceIOCompletionCallback callback, object context)
    {
        uint error = 0;
        Exception? failure = null;
        try
        {
            Check(segmentId, sourceAddress, readLength, "read");
            var destination = new Span<byte>((void*)destinationAddress, (int)readLength);
            while (!_volume.TryRead(Resolve(segmentId, create: false), (long)sourceAddress, destination))
            {
            }
        }
#pragma warning disable CA1031 // Every failure goes to the callback: nothing may escape onto a Tsavorite thread.
        catch (Exception e)
#pragma warning restore CA1031
        {
            error = ErrorCode(e);
            failure = e;
        }
        callback(error, error == 0 ? readLength : 0, context, failure!);
    }

    /// <inheritdoc/>
    public override void RemoveSegmentAsync(int segment, AsyncCallback callback, IAsyncResult result)
    {
        RemoveSegment(segment);
        callback(result);
    }

    /// <inheritdoc/>
    public override void RemoveSegment(int segment)
    {
        _segments.TryRemove(segment, out _);
        try
        {
            _volume.RemoveSegment(FileName, segment);
        }
        catch (ObjectDisposedException)
        {
            // The volume is closed: its media is no longer ours to change; the segment stays
            // and is freed the next time Tsavorite truncates past it.
        }
    }

    /// <inheritdoc/>
    public override long GetFileSize(int segment)
    {
        VolumeSegment? found = Resolve(segment, create: false);
        return found is null ? 0 : found.AllocatedLength(_volume.ChunkShift);
    }

    /// <inheritdoc/>
    public override void Dispose() => _segments.Clear();

    private void Check(int segmentId, ulong address, uint length, string what)
    {
        if (segmentId < 0)
            throw new PmemVolumeException(PmemVolumeError.OutOfRange, $"'{FileName}': {what} of segment {segmentId}: segments are numbered from 0.");
        if (address % PmemVolume.SectorSize != 0 || length % PmemVolume.SectorSize != 0)
            throw new PmemVolumeException(PmemVolumeError.Unaligned,
                $"'{FileName}': {what} of {length} bytes at offset {address} of segment {segmentId} is not aligned to the {PmemVolume.SectorSize}-byte sector (offset and length must both be multiples).");
        // Compared without adding: an address near 2^64 plus a length would wrap around and pass.
        ulong limit = segmentSize > 0 ? Math.Min((ulong)segmentSize, (ulong)_volume.DataCapacity) : (ulong)_volume.DataCapacity;
        if (length > int.MaxValue || address > limit || length > limit - address)
            throw new PmemVolumeException(PmemVolumeError.OutOfRange,
                $"'{FileName}': {what} of {length} bytes at offset {address} of segment {segmentId} ends beyond the segment ({segmentSize} bytes) or the volume's data area ({_volume.DataCapacity} bytes).");
    }

    private VolumeSegment? Resolve(int segmentId, bool create)
    {
        if (_segments.TryGetValue(segmentId, out VolumeSegment? cached) && !cached.Removed)
            return cached;
        VolumeSegment? found = create ? _volume.FindOrCreate(FileName, segmentId) : _volume.Find(FileName, segmentId);
        if (found is not null)
            _segments[segmentId] = found;
        return found;
    }

    private static uint ErrorCode(Exception e) => e switch
    {
        PmemVolumeException v => (uint)v.Errno,
        ArgumentException => 22,
        _ => 5,
    };
}
