using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using CommunityToolkit.HighPerformance.Buffers;

namespace DirectPmem.Storage;

/// <summary>
/// Records to append together with <see cref="PmemLog.Append(LogBatch)"/>: one reservation, one copy,
/// one publish. The frames are built in a pooled <see cref="ArrayPoolBufferWriter{T}"/>, so a batch
/// reused with <see cref="Clear"/> does not allocate. Not thread-safe; dispose to return the buffer.
/// </summary>
public sealed class LogBatch : IDisposable
{
    private readonly ArrayPoolBufferWriter<byte> _frames = new();
    private readonly ArrayPoolBufferWriter<int> _offsets = new();
    private int _pendingStart = -1;

    /// <summary>The number of records.</summary>
    public int Count => _offsets.WrittenCount;

    /// <summary>The bytes the records take in the log, frames included.</summary>
    public int Length => _frames.WrittenCount;

    /// <summary>Adds a record.</summary>
    /// <param name="record">The payload.</param>
    /// <exception cref="InvalidOperationException">A record begun with <see cref="BeginRecord"/> was not ended.</exception>
    public void Add(ReadOnlySpan<byte> record)
    {
        IBufferWriter<byte> writer = BeginRecord();
        writer.Write(record);
        EndRecord();
    }

    /// <summary>Adds a record made of several segments.</summary>
    /// <param name="record">The payload.</param>
    public void Add(in ReadOnlySequence<byte> record)
    {
        IBufferWriter<byte> writer = BeginRecord();
        foreach (ReadOnlyMemory<byte> segment in record)
        {
            writer.Write(segment.Span);
        }
        EndRecord();
    }

    /// <summary>
    /// Starts a record whose payload the caller writes into the returned buffer writer (serialise
    /// straight into the batch); finish it with <see cref="EndRecord"/>.
    /// </summary>
    /// <returns>The writer for the payload.</returns>
    /// <exception cref="InvalidOperationException">Another record is open.</exception>
    public IBufferWriter<byte> BeginRecord()
    {
        if (_pendingStart >= 0)
        {
            throw new InvalidOperationException("EndRecord was not called for the previous record.");
        }
        _pendingStart = _frames.WrittenCount;
        _frames.GetSpan(PmemLog.FrameHeaderSize)[..PmemLog.FrameHeaderSize].Clear();
        _frames.Advance(PmemLog.FrameHeaderSize);
        return _frames;
    }

    /// <summary>Ends the record begun with <see cref="BeginRecord"/>: writes its length and pads it.</summary>
    /// <exception cref="InvalidOperationException">No record is open.</exception>
    public void EndRecord()
    {
        if (_pendingStart < 0)
        {
            throw new InvalidOperationException("BeginRecord was not called.");
        }
        int payload = _frames.WrittenCount - _pendingStart - PmemLog.FrameHeaderSize;
        int padding = PmemLog.FrameLength(payload) - PmemLog.FrameHeaderSize - payload;
        if (padding > 0)
        {
            _frames.GetSpan(padding)[..padding].Clear();
            _frames.Advance(padding);
        }
        BinaryPrimitives.WriteInt32LittleEndian(Frames[_pendingStart..], payload);
        _offsets.GetSpan(1)[0] = _pendingStart;
        _offsets.Advance(1);
        _pendingStart = -1;
    }

    /// <summary>The offset of record <paramref name="index"/> from the batch's first LSN.</summary>
    /// <param name="index">The record's index.</param>
    /// <returns>Add it to the LSN <see cref="PmemLog.Append(LogBatch)"/> returned.</returns>
    public int GetRecordOffset(int index)
    {
        if ((uint)index >= (uint)Count)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, string.Create(CultureInfo.InvariantCulture, $"The batch holds {Count} records."));
        }
        return _offsets.WrittenSpan[index];
    }

    /// <summary>Removes every record, keeping the buffers.</summary>
    public void Clear()
    {
        _frames.Clear();
        _offsets.Clear();
        _pendingStart = -1;
    }

    /// <summary>Returns the pooled buffers.</summary>
    public void Dispose()
    {
        _frames.Dispose();
        _offsets.Dispose();
    }

    // The written frames, writable so that Append can stamp LSNs and checksums in place.
    internal Span<byte> Frames => _frames.DangerousGetArray().AsSpan();

    internal bool HasOpenRecord => _pendingStart >= 0;
}
