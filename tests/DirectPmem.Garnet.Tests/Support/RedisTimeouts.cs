using System.Globalization;

namespace DirectPmem.Garnet.Tests.Support;

/// <summary>The StackExchange.Redis connect and sync timeouts of every Garnet test, scaled by <see cref="TestTime"/>.</summary>
internal static class RedisTimeouts
{
    /// <summary>"connectTimeout=N,syncTimeout=N": one minute each by default, times DIRECTPMEM_TEST_TIME_SCALE.</summary>
    public static string Options { get; } = string.Create(CultureInfo.InvariantCulture,
        $"connectTimeout={(int)TestTime.Limit(TimeSpan.FromMinutes(1)).TotalMilliseconds},syncTimeout={(int)TestTime.Limit(TimeSpan.FromMinutes(1)).TotalMilliseconds}");
}
