namespace DirectPmem.Persistence;

/// <summary>
/// Receives the flushes and drains of a simulated mapping instead of the CPU. The
/// crash-consistency simulator (DirectPmem.Testing) implements it: stores land in the mapping's
/// volatile memory, and only what is flushed and then drained reaches the simulated media.
/// </summary>
internal interface IPersistenceHook
{
    /// <summary>The cache lines covering <c>[offset, offset + length)</c> of the mapping are written back (CLWB semantics: the data at the time of the flush).</summary>
    void Flush(long offset, long length);

    /// <summary>A fence: every flush issued before it is complete.</summary>
    void Drain();
}
