using System.Buffers;

namespace DirectPmem.Mapping;

/// <summary>Exposes a window of a mapping as <see cref="Memory{T}"/>. Mapped memory never moves, so pinning is free.</summary>
internal sealed unsafe class DaxMemoryManager : MemoryManager<byte>
{
    private readonly DaxMapping _owner;
    private readonly byte* _pointer;
    private readonly int _length;

    internal DaxMemoryManager(DaxMapping owner, byte* pointer, int length)
    {
        _owner = owner;
        _pointer = pointer;
        _length = length;
    }

    public override Span<byte> GetSpan()
    {
        ObjectDisposedException.ThrowIf(_owner.IsDisposed, _owner);
        return new Span<byte>(_pointer, _length);
    }

    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ObjectDisposedException.ThrowIf(_owner.IsDisposed, _owner);
        ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(elementIndex, _length);
        return new MemoryHandle(_pointer + elementIndex);
    }

    public override void Unpin()
    {
    }

    // The mapping owns the memory; disposing the manager releases nothing.
    protected override void Dispose(bool disposing)
    {
    }
}
