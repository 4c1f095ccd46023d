using System.Text.Json.Serialization;
using DirectPmem.Tool.Bench;
using DirectPmem.Tool.Commands;

namespace DirectPmem.Tool.Cli;

/// <summary>
/// The tool's one JSON path: every <c>--json</c> output is a record serialized by this
/// source-generated context (snake_case names, nulls left out, indented).
/// </summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, WriteIndented = true)]
[JsonSerializable(typeof(DaxDeviceListing[]))]
[JsonSerializable(typeof(DaxRegionListing[]))]
[JsonSerializable(typeof(TierReport))]
[JsonSerializable(typeof(InfoReport))]
[JsonSerializable(typeof(PoolInfoReport))]
[JsonSerializable(typeof(PlatformReport))]
[JsonSerializable(typeof(CheckReport))]
[JsonSerializable(typeof(BenchReport))]
[JsonSerializable(typeof(TierBenchReport))]
[JsonSerializable(typeof(MonitorReport))]
internal sealed partial class ToolJsonContext : JsonSerializerContext
{
}

/// <summary>Writes a report as JSON on stdout.</summary>
internal static class JsonOutput
{
    internal static void Write<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
        => Console.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(value, type));
}
