namespace DirectPmem.Storage.Tests.Transactions.KeyValue;

/// <summary>
/// The deterministic operation sequence of the kill -9 children (<see cref="KeyValueTests"/>) and of the crash tests that check it:
/// operation <c>i</c> puts or deletes one of 64 keys, so a checker can replay the first N operations
/// into a dictionary and compare.
/// </summary>
internal static class StressOps
{
    /// <summary>The key and value of operation <paramref name="index"/>; a null value means delete.</summary>
    /// <param name="seed">The sequence's seed.</param>
    /// <param name="index">The operation number, from 0.</param>
    /// <returns>The key (16 bytes) and the value (1 to 100 bytes) or null.</returns>
    public static (byte[] Key, byte[]? Value) Op(ulong seed, long index) => Op(seed, index, -1);

    /// <summary>
    /// The key and value of operation <paramref name="index"/> of thread <paramref name="thread"/> in
    /// the two-thread child: the same sequence as <see cref="Op(ulong, long)"/>, on keys of that thread only.
    /// </summary>
    /// <param name="seed">The sequence's seed.</param>
    /// <param name="index">The operation number, from 0.</param>
    /// <param name="thread">0 to 9, or -1 for the single-threaded keys.</param>
    /// <returns>The key (16 bytes) and the value (1 to 100 bytes) or null.</returns>
    public static (byte[] Key, byte[]? Value) Op(ulong seed, long index, int thread)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(thread, -1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(thread, 9);
        ulong x = Mix(seed ^ (ulong)index * 0x9E3779B97F4A7C15);
        byte[] key = System.Text.Encoding.ASCII.GetBytes(thread < 0 ? $"key-{x % 64,12:D12}" : $"k{thread}y-{x % 64,12:D12}");
        if ((x >> 8) % 5 == 0)
        {
            return (key, null);
        }
        var value = new byte[1 + (int)((x >> 16) % 100)];
        for (int i = 0; i < value.Length; i++)
        {
            value[i] = (byte)(index + i * 7); // every byte depends on the operation: a torn value cannot pass
        }
        value[0] = (byte)value.Length;
        return (key, value);
    }

    /// <summary>Applies operation <paramref name="index"/> to a model.</summary>
    /// <param name="model">The expected contents.</param>
    /// <param name="seed">The sequence's seed.</param>
    /// <param name="index">The operation number.</param>
    public static void Apply(Dictionary<string, byte[]> model, ulong seed, long index) => Apply(model, seed, index, -1);

    /// <summary>Applies operation <paramref name="index"/> of thread <paramref name="thread"/> to a model.</summary>
    /// <param name="model">The expected contents.</param>
    /// <param name="seed">The sequence's seed.</param>
    /// <param name="index">The operation number.</param>
    /// <param name="thread">0 to 9, or -1 for the single-threaded keys.</param>
    public static void Apply(Dictionary<string, byte[]> model, ulong seed, long index, int thread)
    {
        ArgumentNullException.ThrowIfNull(model);
        (byte[] key, byte[]? value) = Op(seed, index, thread);
        string k = Convert.ToHexString(key);
        if (value is null)
        {
            model.Remove(k);
        }
        else
        {
            model[k] = value;
        }
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}
