using System.CommandLine;
using DirectPmem.Tool.Cli;
using DirectPmem.Tool.Commands;

// dpmem: one file per command under Commands/, shared plumbing under Cli/.
var root = new RootCommand("dpmem: device-DAX devices, emulated devices, label tables, persistence cost and live counters, from DirectPmem.")
{
    CommandRunner.Verbose,
};
root.Subcommands.Add(ListCommand.Create());
root.Subcommands.Add(CreateCommand.Create());
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(CheckCommand.Create());
root.Subcommands.Add(PlatformCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(MonitorCommand.Create());
return await root.Parse(args).InvokeAsync().ConfigureAwait(false);
