using System.CommandLine;
using DirectPmem.Persistence;
using DirectPmem.Tool.Cli;
using Spectre.Console;

namespace DirectPmem.Tool.Commands;

/// <summary>What <c>dpmem platform --json</c> prints.</summary>
internal sealed record PlatformReport(
    string FlushInstruction,
    string FlushInstructionReason,
    bool Eadr,
    bool FlushNeeded,
    string PmemGranularity,
    int VectorBits,
    bool NonTemporalStores,
    int NonTemporalThreshold,
    string Cpu,
    bool CountersSupported);

/// <summary><c>dpmem platform</c>: the flush instruction, eADR and the copy engine in use.</summary>
internal static class PlatformCommand
{
    internal static Command Create()
    {
        var json = new Option<bool>("--json", "-j") { Description = "Print JSON." };
        var command = new Command("platform", "Show the CPU's flush instructions, eADR, and the copy engine in use.") { json };
        CommandRunner.SetAction(command, parse => Run(parse.GetValue(json)));
        return command;
    }

    internal static PlatformReport Current() => new(
        Pmem.FlushInstruction.ToString(), Pmem.FlushInstructionReason, Pmem.IsEadr, Pmem.IsFlushNeeded,
        Pmem.PersistentMemoryGranularity.ToString(), Pmem.VectorBits, Pmem.UsesNonTemporalStores, Pmem.NonTemporalThreshold,
        Pmem.Features.ToString(), Diagnostics.PmemCounters.IsSupported);

    private static int Run(bool asJson)
    {
        PlatformReport report = Current();
        if (asJson)
        {
            JsonOutput.Write(report, ToolJsonContext.Default.PlatformReport);
            return 0;
        }
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("CPU features", Markup.Escape(report.Cpu));
        grid.AddRow("flush instruction", $"{report.FlushInstruction} ({Markup.Escape(report.FlushInstructionReason)})");
        grid.AddRow("eADR", report.Eadr ? "yes: caches are in the persistence domain" : "no");
        grid.AddRow("pmem granularity", report.PmemGranularity);
        grid.AddRow("copy engine", $"{report.VectorBits}-bit vectors, non-temporal stores {(report.NonTemporalStores ? $"from {report.NonTemporalThreshold} bytes" : "off")}");
        AnsiConsole.Write(grid);
        return 0;
    }
}
