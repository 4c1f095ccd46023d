using System.CommandLine;

namespace DirectPmem.Tool.Cli;

/// <summary>
/// Runs a command's body: a failure becomes one line on stderr (<c>dpmem: message</c>) and exit
/// code 1; <c>--verbose</c> adds the exception with its stack trace.
/// </summary>
internal static class CommandRunner
{
    /// <summary>Print the stack trace of a failure (every command accepts it).</summary>
    internal static readonly Option<bool> Verbose = new("--verbose", "-v")
    {
        Description = "On failure, print the exception with its stack trace.",
        Recursive = true,
    };

    /// <summary>Exit code of a failure that stopped a command.</summary>
    internal const int Failed = 1;

    internal static void SetAction(Command command, Func<ParseResult, int> body)
        => command.SetAction(parse => Run(parse, body));

    internal static void SetAction(Command command, Func<ParseResult, CancellationToken, Task<int>> body)
        => command.SetAction(async (parse, cancel) =>
        {
            try
            {
                return await body(parse, cancel).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancel.IsCancellationRequested)
            {
                return Report(e, parse.GetValue(Verbose));
            }
        });

    private static int Run(ParseResult parse, Func<ParseResult, int> body)
    {
        try
        {
            return body(parse);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return Report(e, parse.GetValue(Verbose));
        }
    }

    /// <summary>Writes one line about <paramref name="e"/> (or the whole exception when verbose) to stderr.</summary>
    internal static int Report(Exception e, bool verbose)
    {
        string message = e is ToolException ? e.Message : $"{e.GetType().Name}: {e.Message}";
        Console.Error.WriteLine($"dpmem: {message.ReplaceLineEndings(" ")}");
        if (verbose)
        {
            Console.Error.WriteLine(e.ToString());
        }
        return Failed;
    }
}

/// <summary>A usage or environment problem the tool itself reports, printed without a type name.</summary>
internal sealed class ToolException : Exception
{
    public ToolException(string message)
        : base(message)
    {
    }

    public ToolException()
    {
    }

    public ToolException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
