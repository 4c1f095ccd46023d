using System.CommandLine;
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Tool.Cli;
using Spectre.Console;

namespace DirectPmem.Tool.Commands;

/// <summary><c>dpmem create PATH --size S [--align A] [--labels]</c>: an emulated device-DAX device in a file.</summary>
internal static class CreateCommand
{
    internal static Command Create()
    {
        var path = new Argument<string>("path") { Description = "The file to create for the emulated device (it must not exist)." };
        var size = new Option<string>("--size", "-s") { Description = "Device size, e.g. 512M or 4G; a multiple of --align.", Required = true };
        var align = new Option<string>("--align", "-a") { Description = "Fault granularity: 4K, 2M or 1G.", DefaultValueFactory = _ => "2M" };
        var labels = new Option<bool>("--labels") { Description = "Also format an empty label table (DaxRangeAllocator.Format)." };
        var command = new Command("create", "Create an emulated device-DAX device in a file.") { path, size, align, labels };
        CommandRunner.SetAction(command, parse => Run(parse.GetValue(path)!, parse.GetValue(size)!, parse.GetValue(align)!, parse.GetValue(labels)));
        return command;
    }

    private static int Run(string path, string sizeText, string alignText, bool labels)
    {
        if (!Sizes.TryParse(sizeText, out long bytes) || bytes <= 0)
        {
            throw new ToolException($"--size '{sizeText}' is not a size (examples: 512M, 4G).");
        }
        if (!Sizes.TryParsePageSize(alignText, out PageSize pageSize))
        {
            throw new ToolException($"--align '{alignText}' is not 4K, 2M or 1G.");
        }
        using DaxDevice device = DaxDevice.CreateEmulated(path, bytes, pageSize);
        if (labels)
        {
            DaxRangeAllocator.Format(device).Dispose();
        }
        AnsiConsole.MarkupLineInterpolated($"created emulated device [bold]{device.DevicePath}[/]: {Sizes.Format(device.Size)}, align {device.Align.ToDisplayString()}, {device.Persistence}{(labels ? ", empty label table" : "")}");
        return 0;
    }
}
