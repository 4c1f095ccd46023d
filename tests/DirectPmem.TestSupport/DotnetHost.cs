namespace DirectPmem.TestSupport;

/// <summary>
/// The <c>dotnet</c> host to start a framework-dependent child (<c>dotnet some.dll</c>) with. Not
/// <see cref="Environment.ProcessPath"/>: under <c>dotnet test</c> the tests run in their own apphost, which
/// would take the child's dll for one of its own options (it did: exit 3, "unknown option" on stdout).
/// </summary>
/// <remarks>In DirectPmem.TestSupport, referenced by every project under tests/ (Directory.Build.targets).</remarks>
public static class DotnetHost
{
    /// <summary>The host: <c>DOTNET_HOST_PATH</c> (set by the SDK for its children), this process when it is the host, the one beside the running runtime, or <c>dotnet</c> on PATH.</summary>
    public static string Path { get; } = Find();

    private static string Find()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } hostPath && File.Exists(hostPath))
        {
            return hostPath;
        }
        if (Environment.ProcessPath is { } self && System.IO.Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            return self;
        }
        // <root>/shared/Microsoft.NETCore.App/<version>/System.Private.CoreLib.dll -> <root>/dotnet
        string? runtime = System.IO.Path.GetDirectoryName(typeof(object).Assembly.Location);
        string? root = runtime is null ? null : System.IO.Path.GetFullPath(System.IO.Path.Combine(runtime, "..", "..", ".."));
        if (root is not null && File.Exists(System.IO.Path.Combine(root, "dotnet")))
        {
            return System.IO.Path.Combine(root, "dotnet");
        }
        return "dotnet";
    }
}
