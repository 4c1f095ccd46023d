using Tsavorite.core;

namespace DirectPmem.Garnet;

/// <summary>
/// Creates <see cref="PmemNamedDeviceFactory"/> instances over one <see cref="PmemVolume"/>:
/// set it as <c>GarnetServerOptions.DeviceFactoryCreator</c>. Safe to use from several threads.
/// </summary>
public sealed class PmemNamedDeviceFactoryCreator : INamedDeviceFactoryCreator
{
    private readonly PmemVolume _volume;

    internal PmemNamedDeviceFactoryCreator(PmemVolume volume) => _volume = volume;

    /// <summary>The volume every device lives on.</summary>
    public PmemVolume Volume => _volume;

    /// <summary>A factory whose device names all start with <paramref name="baseName"/> (Garnet passes its log, checkpoint or AOF directory).</summary>
    /// <param name="baseName">A directory-like prefix; '/' and '\' separate its parts, empty parts and "." are dropped.</param>
    /// <returns>The factory.</returns>
    /// <exception cref="PmemVolumeException">The name holds "..".</exception>
    public INamedDeviceFactory Create(string baseName) => new PmemNamedDeviceFactory(_volume, PmemNamedDeviceFactory.Canonical(baseName ?? ""));
}

/// <summary>
/// Named devices on a <see cref="PmemVolume"/> under one base name: Tsavorite's view of a
/// directory tree. A device name is "base/directory/file"; its segments are separate slots.
/// </summary>
/// <remarks>
/// Every method is safe to call concurrently with any other, with I/O on the devices it hands out
/// and with the volume's <see cref="PmemVolume.Dispose"/> (after which it throws
/// <see cref="ObjectDisposedException"/> naming the volume, except <see cref="GetSectorSize"/>, which reads no state).
/// A <see cref="Delete"/> racing I/O on the deleted devices behaves as <see cref="PmemVolume"/> describes.
/// </remarks>
public sealed class PmemNamedDeviceFactory : INamedDeviceFactory
{
    private readonly PmemVolume _volume;
    private readonly string _baseName;

    internal PmemNamedDeviceFactory(PmemVolume volume, string baseName)
    {
        _volume = volume;
        _baseName = baseName;
    }

    /// <summary>The canonical base name every device name starts with.</summary>
    public string BaseName => _baseName;

    /// <summary>The device for <paramref name="fileInfo"/>; its segments are created on first write.</summary>
    /// <param name="fileInfo">The directory (relative to the base name) and file name.</param>
    /// <returns>The device.</returns>
    /// <exception cref="PmemVolumeException">The name is empty, holds "..", or is longer than <see cref="PmemVolume.MaxNameBytes"/>.</exception>
    /// <exception cref="ObjectDisposedException">The volume has been disposed.</exception>
    public IDevice Get(FileDescriptor fileInfo)
    {
        _volume.ThrowIfDisposed();
        string name = Join(_baseName, Canonical(fileInfo.directoryName ?? ""), Canonical(fileInfo.fileName ?? ""));
        if (name.Length == 0 || string.IsNullOrEmpty(fileInfo.fileName))
            throw new PmemVolumeException(PmemVolumeError.BadName, $"A device needs a file name (directory '{fileInfo.directoryName}', file '{fileInfo.fileName}').");
        if (System.Text.Encoding.UTF8.GetByteCount(name) > PmemVolume.MaxNameBytes)
            throw new PmemVolumeException(PmemVolumeError.BadName, $"The device name '{name}' is longer than the {PmemVolume.MaxNameBytes} UTF-8 bytes a slot holds.");
        return new PmemStorageDevice(_volume, name);
    }

    /// <summary>
    /// Deletes the file <paramref name="fileInfo"/> names (every segment of it), or, when its
    /// file name is null, the directory and everything under it.
    /// </summary>
    /// <param name="fileInfo">What to delete.</param>
    public void Delete(FileDescriptor fileInfo)
    {
        string directory = Join(_baseName, Canonical(fileInfo.directoryName ?? ""));
        if (fileInfo.fileName is null)
            _volume.DeleteDirectory(directory);
        else
            _volume.DeleteDevice(Join(directory, Canonical(fileInfo.fileName)));
    }

    /// <summary>
    /// The directories and files directly under <paramref name="path"/>, newest first, as a local
    /// file system lists them: a directory as (name, ""), a file segment as ("", "file.segment").
    /// A file's age is the order its segment was created; a directory's is its newest file's.
    /// </summary>
    /// <param name="path">A directory relative to the base name.</param>
    /// <returns>A snapshot of the listing.</returns>
    public IEnumerable<FileDescriptor> ListContents(string path)
    {
        string directory = Join(_baseName, Canonical(path ?? ""));
        var directories = new Dictionary<string, long>(StringComparer.Ordinal);
        var files = new List<(string Name, long Sequence)>();
        foreach (VolumeSegment segment in _volume.ListUnder(directory))
        {
            string rest = directory.Length == 0 ? segment.Name : segment.Name[(directory.Length + 1)..];
            int slash = rest.IndexOf('/', StringComparison.Ordinal);
            if (slash < 0)
            {
                files.Add(($"{rest}.{segment.Segment}", segment.Sequence));
                continue;
            }
            string child = rest[..slash];
            directories[child] = Math.Max(directories.GetValueOrDefault(child), segment.Sequence);
        }
        var listing = new List<FileDescriptor>(directories.Count + files.Count);
        foreach (KeyValuePair<string, long> child in directories.OrderByDescending(d => d.Value))
            listing.Add(new FileDescriptor(child.Key, ""));
        foreach ((string name, _) in files.OrderByDescending(f => f.Sequence))
            listing.Add(new FileDescriptor("", name));
        return listing;
    }

    /// <summary>The sector size of every device on the volume: <see cref="PmemVolume.SectorSize"/>.</summary>
    /// <param name="fileInfo">Any file.</param>
    /// <returns>512.</returns>
    public uint GetSectorSize(FileDescriptor fileInfo) => PmemVolume.SectorSize;

    internal static string Canonical(string path)
    {
        string[] parts = path.Split(['/', '\\'], StringSplitOptions.RemoveEmptyEntries);
        var kept = new List<string>(parts.Length);
        foreach (string part in parts)
        {
            if (part == ".")
                continue;
            if (part == "..")
                throw new PmemVolumeException(PmemVolumeError.BadName, $"The device path '{path}' holds '..'; names on a volume do not climb.");
            kept.Add(part);
        }
        return string.Join('/', kept);
    }

    private static string Join(params ReadOnlySpan<string> parts)
    {
        string joined = "";
        foreach (string part in parts)
        {
            if (part.Length == 0)
                continue;
            joined = joined.Length == 0 ? part : $"{joined}/{part}";
        }
        return joined;
    }
}
