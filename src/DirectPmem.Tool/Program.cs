using System.CommandLine;
using DirectPmem.Tool.Cli;
using DirectPmem.Tool.Commands;

// dpmem: one file per command under Commands/, shared plumbing under Cli/.
// Every non-zero exit says why on stderr: commands report their failures (CommandRunner), the parser its usage
// errors, and StandardError.Finish whatever reached the exit in silence.
StandardError stderr = StandardError.Install();
ConsoleWidth.Apply();
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
root.Subcommands.Add(ReconfigureCommand.Create());
int code;
try
{
    code = await root.Parse(args).InvokeAsync().ConfigureAwait(false);
}
catch (Exception e) when (e is not OutOfMemoryException)
{
    code = CommandRunner.Report(e, args.Contains("--verbose") || args.Contains("-v"));
}
return stderr.Finish(code, args);
