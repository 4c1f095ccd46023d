using System.Globalization;
using Xunit;

namespace DirectPmem.TestSupport;

/// <summary>
/// What the size sweeps of every layer require of a refusal: not an <see cref="OverflowException"/>,
/// an <see cref="ArgumentException"/> that names its parameter, and a message that names the value
/// (in decimal or as 0x hex). One rule for the size sweeps of every test project.
/// </summary>
public static class SizeRefusal
{
    /// <summary>Asserts <paramref name="e"/> is a proper refusal of <paramref name="value"/> by <paramref name="what"/>.</summary>
    public static void AssertNamesValue(Exception? e, string what, long value) =>
        AssertNamesValue(e, what, value.ToString(CultureInfo.InvariantCulture), "0x" + value.ToString("x", CultureInfo.InvariantCulture));

    /// <summary>Asserts <paramref name="e"/> is a proper refusal whose message holds one of <paramref name="forms"/>.</summary>
    public static void AssertNamesValue(Exception? e, string what, params string[] forms)
    {
        Assert.NotNull(e);
        Assert.IsNotType<OverflowException>(e);
        if (e is ArgumentException argument)
            Assert.False(string.IsNullOrEmpty(argument.ParamName), $"{what}: the ArgumentException names no parameter: {e.Message}");
        Assert.True(forms.Any(form => e.Message.Contains(form, StringComparison.OrdinalIgnoreCase)),
            $"{what}: the message does not name {forms[0]}: {e.GetType().Name}: {e.Message}");
    }
}
