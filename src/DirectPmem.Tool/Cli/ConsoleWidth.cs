using System.Globalization;
using Spectre.Console;

namespace DirectPmem.Tool.Cli;

/// <summary>
/// The width every table and grid of the tool is laid out in, set once before a command runs.
/// </summary>
/// <remarks>
/// Spectre.Console asks the terminal, and assumes 80 columns where there is none (a file, a pipe),
/// which wraps every cell of the wider tables. <c>COLUMNS</c>, when set to a number, wins, as it does
/// for other command-line tools; otherwise output that is not a terminal gets <see cref="RedirectedWidth"/>
/// columns, the widest row the tool prints.
/// </remarks>
internal static class ConsoleWidth
{
    /// <summary>The width of output that is not a terminal, when <c>COLUMNS</c> does not say.</summary>
    public const int RedirectedWidth = 160;

    /// <summary>Sets <see cref="AnsiConsole.Profile"/>'s width from <c>COLUMNS</c> or, for redirected output, to <see cref="RedirectedWidth"/>.</summary>
    public static void Apply()
    {
        if (FromEnvironment(Environment.GetEnvironmentVariable("COLUMNS")) is int columns)
        {
            AnsiConsole.Profile.Width = columns;
        }
        else if (Console.IsOutputRedirected && AnsiConsole.Profile.Width < RedirectedWidth)
        {
            AnsiConsole.Profile.Width = RedirectedWidth;
        }
    }

    /// <summary>The width a <c>COLUMNS</c> value asks for, or null when it is unset or not a usable width (20 to 10,000 columns).</summary>
    public static int? FromEnvironment(string? value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int columns) && columns is >= 20 and <= 10_000
            ? columns
            : null;
}
