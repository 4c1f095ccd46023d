using DirectPmem.Geometry;

namespace DirectPmem.Driver;

/// <summary>The rule a sysfs tree, an emulated device descriptor or a device request broke.</summary>
public enum DaxConfigurationRule
{
    /// <summary>A required attribute file is missing or unreadable.</summary>
    MissingAttribute,

    /// <summary>An attribute is not a number (decimal, or hexadecimal with <c>0x</c>).</summary>
    NotANumber,

    /// <summary>A number is negative, zero where it must be positive, or too large.</summary>
    OutOfRange,

    /// <summary>An alignment is not a power of two.</summary>
    NotAPowerOfTwo,

    /// <summary>An alignment is a power of two but not a page size x86-64 maps (4 KiB, 2 MiB, 1 GiB).</summary>
    NotAPageSize,

    /// <summary>A size or range is not a multiple of the device alignment.</summary>
    Unaligned,

    /// <summary>A mapping range ends before it starts or overflows.</summary>
    InvalidRange,

    /// <summary>Two mapping ranges overlap (physically or in device offsets).</summary>
    RangesOverlap,

    /// <summary>The mapping ranges do not add up to the device size, or leave a hole in device offsets.</summary>
    RangesDoNotAddUp,

    /// <summary>A bad-block line is not <c>sector count</c>, or lies outside the region.</summary>
    BadBlockSyntax,

    /// <summary>A character device is not a device-DAX device (its subsystem is not <c>dax</c>), or the path is not a character device.</summary>
    NotDeviceDax,

    /// <summary>No device of that name exists on the bus.</summary>
    NoSuchDevice,

    /// <summary>An emulated device's descriptor is missing, has the wrong magic or version, or fails its checksum.</summary>
    BadDescriptor,

    /// <summary>An emulated device was reopened with a different alignment or size than it was created with, or its file changed size.</summary>
    GeometryMismatch,

    /// <summary>The sysfs root does not exist, is not a directory, or cannot be read.</summary>
    BadSysfsRoot,

    /// <summary>The device is not bound to <c>device_dax</c> (it is in system-ram mode or unbound), so it has no device node to map.</summary>
    NotInDeviceDaxMode,
}

/// <summary>
/// A device-DAX description (a sysfs tree, or an emulated device's descriptor) breaks a rule.
/// <see cref="FilePath"/> names the file that broke it and <see cref="Rule"/> which rule; no device
/// is built from a description that fails.
/// </summary>
public sealed class DaxConfigurationException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="filePath">The file that broke the rule (a sysfs attribute, a device node, an emulated device file).</param>
    /// <param name="rule">The rule that was broken.</param>
    /// <param name="message">What was found and what was expected.</param>
    public DaxConfigurationException(string filePath, DaxConfigurationRule rule, string message)
        : base($"{filePath}: {message} (rule: {rule})", null, 0, filePath)
    {
        FilePath = filePath;
        Rule = rule;
    }

    /// <summary>The file that broke the rule.</summary>
    public string FilePath { get; }

    /// <summary>The rule that was broken.</summary>
    public DaxConfigurationRule Rule { get; }
}

/// <summary>The rule a label slot or a range request broke.</summary>
public enum DaxLabelRule
{
    /// <summary>The label area holds no published table (a device that was never formatted).</summary>
    NotFormatted,

    /// <summary>Format was asked of a device that already holds a published table.</summary>
    AlreadyFormatted,

    /// <summary>The slot's magic number is wrong.</summary>
    BadMagic,

    /// <summary>The slot's format version is not one this library reads.</summary>
    UnsupportedVersion,

    /// <summary>The slot's checksum does not match its contents.</summary>
    BadChecksum,

    /// <summary>The publish word does not match the slot's sequence number.</summary>
    BadCommit,

    /// <summary>The slot says it belongs to another slot index, or another device size or alignment.</summary>
    WrongDevice,

    /// <summary>The entry count is larger than a slot holds, or an unused entry is not zero.</summary>
    BadEntryCount,

    /// <summary>An entry's name is empty, too long, not UTF-8, or not zero-padded.</summary>
    BadName,

    /// <summary>Two entries have the same name.</summary>
    DuplicateName,

    /// <summary>An entry's page size is not a page size, or not a multiple of the device alignment.</summary>
    BadPageSize,

    /// <summary>An entry's offset or length is not a multiple of its page size.</summary>
    Unaligned,

    /// <summary>An entry is empty, overflows, or lies outside the allocatable part of the device.</summary>
    OutOfBounds,

    /// <summary>Two entries overlap.</summary>
    Overlap,

    /// <summary>Both slots hold the same sequence number.</summary>
    SequenceConflict,

    /// <summary>The table has no free entry, or the device no free aligned space of the requested length.</summary>
    Full,

    /// <summary>No entry has the requested name.</summary>
    NoSuchRange,

    /// <summary>The range is still mapped by a mapping made with <see cref="DaxRangeAllocator.Map"/>; dispose it before freeing the range.</summary>
    RangeInUse,

    /// <summary>A <see cref="DaxDevice.Map"/> request reaches into the label area of a device that holds a label table (use <see cref="DaxDevice.MapRaw"/> on purpose).</summary>
    LabelAreaProtected,
}

/// <summary>
/// The label area of a device is corrupt, or a range request breaks a rule. <see cref="Slot"/>
/// names the label slot (0 or 1; -1 when the error is not about one slot) and <see cref="Rule"/>
/// which rule.
/// </summary>
public sealed class DaxLabelException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="slot">The label slot (0 or 1), or -1.</param>
    /// <param name="rule">The rule that was broken.</param>
    /// <param name="message">What was found and what was expected.</param>
    /// <param name="path">The device path, if known.</param>
    public DaxLabelException(int slot, DaxLabelRule rule, string message, string? path = null)
        : base((path is null ? "" : $"'{path}': ") + (slot >= 0 ? $"label slot {slot}: {message} (rule: {rule})" : $"{message} (rule: {rule})"), null, 0, path)
    {
        Slot = slot;
        Rule = rule;
    }

    /// <summary>The label slot (0 or 1) the error is about, or -1.</summary>
    public int Slot { get; }

    /// <summary>The rule that was broken.</summary>
    public DaxLabelRule Rule { get; }
}

/// <summary>
/// A device-DAX device has bad ranges that no program can clear: the kernel offers no recovery
/// write for a character device. <see cref="Ranges"/> names them (device offsets) and
/// <see cref="OperatorSteps"/> what the operator does (ndctl). Nothing was changed.
/// </summary>
public sealed class BadBlocksNotClearableException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What is bad and what the operator does.</param>
    /// <param name="path">The device node.</param>
    /// <param name="ranges">The bad ranges, in device offsets.</param>
    /// <param name="operatorSteps">The steps an operator takes to clear them.</param>
    public BadBlocksNotClearableException(string message, string? path, IReadOnlyList<PmemRange> ranges, string operatorSteps)
        : base(message, null, 0, path)
    {
        Ranges = ranges;
        OperatorSteps = operatorSteps;
    }

    /// <summary>The bad ranges, in device offsets.</summary>
    public IReadOnlyList<PmemRange> Ranges { get; }

    /// <summary>What the operator does to clear them (restore, <c>ndctl clear-errors</c> or recreate the namespace, scrub).</summary>
    public string OperatorSteps { get; }
}
