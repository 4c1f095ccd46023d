using System.Text;

namespace DirectPmem.Tool.Cli;

/// <summary>
/// Standard error, remembering whether anything was written: dpmem never exits non-zero in silence. When a
/// failure reached the exit without a message (a path nobody foresaw), <see cref="Finish"/> writes one.
/// </summary>
internal sealed class StandardError : TextWriter
{
    private readonly TextWriter _inner;
    private volatile bool _wrote;

    private StandardError(TextWriter inner) => _inner = inner;

    /// <inheritdoc/>
    public override Encoding Encoding => _inner.Encoding;

    /// <summary>Puts the tracking writer in place of <see cref="Console.Error"/>.</summary>
    internal static StandardError Install()
    {
        var writer = new StandardError(Console.Error);
        Console.SetError(writer);
        return writer;
    }

    /// <summary>Returns <paramref name="exitCode"/>, first writing a one-line reason when it is non-zero and nothing was said.</summary>
    internal int Finish(int exitCode, IReadOnlyList<string> args)
    {
        if (exitCode != 0 && !_wrote)
        {
            _inner.WriteLine($"dpmem: exit code {exitCode} without a message from 'dpmem {string.Join(' ', args)}' (a defect in dpmem: please report the command line); run it again with --verbose for details.");
            _inner.Flush();
        }
        return exitCode;
    }

    /// <inheritdoc/>
    public override void Write(char value)
    {
        _wrote = true;
        _inner.Write(value);
    }

    /// <inheritdoc/>
    public override void Write(string? value)
    {
        _wrote |= !string.IsNullOrEmpty(value);
        _inner.Write(value);
    }

    /// <inheritdoc/>
    public override void Write(char[] buffer, int index, int count)
    {
        _wrote |= count > 0;
        _inner.Write(buffer, index, count);
    }

    /// <inheritdoc/>
    public override void WriteLine(string? value)
    {
        _wrote = true;
        _inner.WriteLine(value);
    }

    /// <inheritdoc/>
    public override void Flush() => _inner.Flush();
}
