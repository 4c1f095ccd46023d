using DirectPmem.Mapping;
using Xunit;

namespace DirectPmem.Testing.Tests;

/// <summary>The README's crash-test example, as written, and its broken twin.</summary>
public sealed class ReadmeExampleTests
{
    private static void Recover(DaxMapping map)
    {
        long root = map.GetReadOnlyRef<long>(0);
        if (root != 0 && !map.GetReadOnlySpan(root, 11).SequenceEqual("hello, pmem"u8))
            throw new InvalidDataException("published pointer to missing data");
    }

    [Fact]
    public void TheReadmeExamplePasses()
    {
        CrashTestResult result = new CrashTest
        {
            DeviceLength = 64 * 1024,
            Workload = map =>
            {
                "hello, pmem"u8.CopyTo(map.GetSpan(4096, 11));
                map.Persist(4096, 11);              // the data first ...
                map.GetRef<long>(0) = 4096;         // ... then the pointer to it
                map.Persist(0, 8);
            },
            Recover = Recover,
        }.Run();
        TestContext.Current.TestOutputHelper?.WriteLine(result.Summary());
        result.ThrowIfFailed();
        Assert.Equal(3, result.Statistics.CrashPoints);
    }

    [Fact]
    public void TheReadmeExampleWithThePointerPublishedFirstFails()
    {
        CrashTestResult result = new CrashTest
        {
            DeviceLength = 64 * 1024,
            Workload = map =>
            {
                "hello, pmem"u8.CopyTo(map.GetSpan(4096, 11));
                map.GetRef<long>(0) = 4096;
                map.Persist(0, 8);                  // BUG: the pointer before the data
                map.Persist(4096, 11);
            },
            Recover = Recover,
        }.Run();
        TestContext.Current.TestOutputHelper?.WriteLine(result.Summary());
        Assert.False(result.Passed);
        CrashConsistencyException error = Assert.Throws<CrashConsistencyException>(result.ThrowIfFailed);
        Assert.Contains("crash point: before drain 1 completed", error.Message, StringComparison.Ordinal);
        Assert.Contains("word 0x1000: media 0x0000000000000000", error.Message, StringComparison.Ordinal);
        Assert.Contains("-> image 0x0000000000001000 (new, flushed)", error.Message, StringComparison.Ordinal);
        Assert.IsType<InvalidDataException>(error.InnerException);
    }
}
