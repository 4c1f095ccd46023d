namespace DirectPmem.Persistence;

/// <summary>
/// What this process and machine offer for durability, decided once: the flush instruction
/// (CLWB &gt; CLFLUSHOPT &gt; CLFLUSH, minus what the environment disables), whether flushing is
/// needed at all (eADR), and from those the granularity each backing gets.
/// </summary>
internal static unsafe class PersistencePlatform
{
    internal static readonly PersistenceSettings Settings = PersistenceSettings.Current;
    internal static readonly EadrStatus Eadr = EadrDetector.Current;

    /// <summary>The instruction cache-line mappings flush with, or <see cref="FlushInstruction.None"/> when none can run.</summary>
    internal static readonly FlushInstruction Instruction = ChooseInstruction(CpuFeatures.Current, Settings, FlushCode.Page, out s_instructionReason);

    /// <summary>The routine for <see cref="Instruction"/>; null when there is none.</summary>
    internal static readonly delegate* unmanaged[SuppressGCTransition]<byte*, nuint, void> FlushRoutine = FlushCode.Get(Instruction);

    private static readonly string s_instructionReason;

    /// <summary>Why <see cref="Instruction"/> was chosen (or why there is none).</summary>
    internal static string InstructionReason => s_instructionReason;

    /// <summary>Whether persistent memory needs its cache lines flushed: not under eADR or DIRECTPMEM_NO_FLUSH=1; always under DIRECTPMEM_NO_FLUSH=0.</summary>
    internal static readonly bool FlushNeeded = Settings.NoFlush switch
    {
        true => false,
        false => true,
        null => !Eadr.IsEadr,
    };

    /// <summary>The granularity of real persistent memory (device-DAX, files on a DAX file system) on this platform.</summary>
    internal static PersistGranularity PmemGranularity =>
        !FlushNeeded ? PersistGranularity.Byte : FlushRoutine != null ? PersistGranularity.CacheLine : PersistGranularity.Page;

    internal static FlushInstruction ChooseInstruction(CpuFeatures cpu, PersistenceSettings settings, FlushCodePage? page, out string reason)
    {
        if (page is null || !page.IsAvailable)
        {
            reason = page?.Failure ?? (settings.NoGeneratedCode
                ? $"{PersistenceSettings.NoGeneratedCodeVariable}=1: no flush code is generated"
                : "this is not an x86-64 process");
            return FlushInstruction.None;
        }
        if (cpu.Clwb && !settings.NoClwb)
        {
            reason = "CLWB (CPUID leaf 7 EBX bit 24)";
            return FlushInstruction.Clwb;
        }
        if (cpu.ClflushOpt && !settings.NoClflushOpt)
        {
            reason = settings.NoClwb && cpu.Clwb ? $"CLFLUSHOPT ({PersistenceSettings.NoClwbVariable}=1)" : "CLFLUSHOPT (no CLWB)";
            return FlushInstruction.ClflushOpt;
        }
        if (cpu.Clflush)
        {
            reason = "CLFLUSH (no CLWB or CLFLUSHOPT, or they are disabled)";
            return FlushInstruction.Clflush;
        }
        reason = "the processor reports no CLFLUSH";
        return FlushInstruction.None;
    }

    /// <summary>
    /// The granularity a mapping of memory of <paramref name="durability"/> gets, after the
    /// environment and the options; refuses (PmemCapabilityException) a required granularity that
    /// cannot be had. <paramref name="what"/> names the source in messages ("'/path'", "anonymous memory").
    /// </summary>
    internal static PersistGranularity Choose(DurabilityClass durability, bool forceCacheLine, PersistGranularity? required, string what)
    {
        PersistGranularity granularity;
        string why;
        switch (durability)
        {
            case DurabilityClass.PageCache:
                granularity = PersistGranularity.Page;
                why = "it is an ordinary file behind the page cache, which needs msync: the file system is not mounted with DAX, so MAP_SYNC is not available";
                break;
            case DurabilityClass.FileSystemDax:
            case DurabilityClass.DeviceDax:
                granularity = PmemGranularity;
                why = granularity switch
                {
                    PersistGranularity.Byte => Settings.NoFlush == true ? $"{PersistenceSettings.NoFlushVariable}=1" : "eADR: " + Eadr.Reason,
                    PersistGranularity.CacheLine => "no eADR: " + Eadr.Reason,
                    _ => "no cache flush routine can run (" + InstructionReason + "), so persistence falls back to msync",
                };
                if (granularity == PersistGranularity.Page && durability == DurabilityClass.DeviceDax)
                {
                    throw new PmemCapabilityException(
                        $"{what} is device-DAX, which can only be made durable by flushing cache lines, and {why}.");
                }
                break;
            default:
                granularity = PersistGranularity.None;
                why = "it is volatile memory: nothing written to it survives a restart";
                break;
        }

        PersistGranularity? forced = forceCacheLine ? PersistGranularity.CacheLine : Settings.ForceGranularity;
        if (forced is PersistGranularity f)
        {
            string source = forceCacheLine ? "DaxMappingOptions.ForceCacheLineGranularity" : PersistenceSettings.ForceGranularityVariable;
            if (f == PersistGranularity.CacheLine && FlushRoutine == null)
            {
                granularity = PersistGranularity.Page;
                why = $"{source} asked for cache-line granularity but no cache flush routine can run ({InstructionReason}); msync is used instead";
            }
            else
            {
                granularity = f;
                why = $"forced by {source}";
            }
        }

        if (required is PersistGranularity r && !granularity.IsAtLeastAsFineAs(r))
        {
            throw new PmemCapabilityException(
                $"{what} was required to have {Describe(r)} granularity but can only have {Describe(granularity)}: {why}.");
        }
        return granularity;
    }

    /// <summary>
    /// The granularity a mapping of <paramref name="durability"/> gets without options (after the
    /// environment's DIRECTPMEM_FORCE_GRANULARITY); never throws. For device-DAX without a flush
    /// routine it is <see cref="PersistGranularity.Page"/>, which mapping refuses.
    /// </summary>
    internal static PersistGranularity Natural(DurabilityClass durability)
    {
        if (Settings.ForceGranularity is PersistGranularity forced)
        {
            return forced == PersistGranularity.CacheLine && FlushRoutine == null ? PersistGranularity.Page : forced;
        }
        return durability switch
        {
            DurabilityClass.PageCache => PersistGranularity.Page,
            DurabilityClass.FileSystemDax or DurabilityClass.DeviceDax => PmemGranularity,
            _ => PersistGranularity.None,
        };
    }

    internal static string Describe(PersistGranularity granularity) => granularity switch
    {
        PersistGranularity.Byte => "byte (eADR)",
        PersistGranularity.CacheLine => "cache-line (flush + fence)",
        PersistGranularity.Page => "page (msync)",
        _ => "no (volatile memory)",
    };
}
