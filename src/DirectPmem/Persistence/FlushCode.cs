using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using DirectPmem.Interop;

namespace DirectPmem.Persistence;

/// <summary>
/// The cache-flush routines. .NET has no CLWB, CLFLUSHOPT or CLFLUSH intrinsic, so a few bytes of
/// x86-64 machine code per instruction ("flush every cache line of [address, address + length)")
/// are written into one private page while it is PROT_READ|PROT_WRITE, which is then switched to
/// PROT_READ|PROT_EXEC: the page is never writable and executable at once. They are called through
/// unmanaged function pointers with SuppressGCTransition (they never block, allocate or call back),
/// one call per range.
/// </summary>
internal static unsafe class FlushCode
{
    // System V x86-64: rdi = address, rsi = length. Clobbers rdi and rsi only (both caller-saved).
    //   test rsi, rsi        48 85 F6
    //   jz   done            74 rel8
    //   lea  rsi, [rdi+rsi]  48 8D 34 37     ; rsi = end
    //   and  rdi, -64        48 83 E7 C0     ; first line
    // loop:
    //   <flush [rdi]>        66 0F AE 37 (CLWB) | 66 0F AE 3F (CLFLUSHOPT) | 0F AE 3F (CLFLUSH)
    //   add  rdi, 64         48 83 C7 40
    //   cmp  rdi, rsi        48 39 F7
    //   jb   loop            72 rel8
    // done:
    //   ret                  C3
    private static readonly byte[] s_clwb = [0x66, 0x0F, 0xAE, 0x37];
    private static readonly byte[] s_clflushOpt = [0x66, 0x0F, 0xAE, 0x3F];
    private static readonly byte[] s_clflush = [0x0F, 0xAE, 0x3F];

    private const int RoutineStride = 64;

    private static readonly FlushCodePage? s_page = Generate(PersistenceSettings.Current.NoGeneratedCode);

    /// <summary>Where the routines live, or <see langword="null"/> when the system refused executable memory.</summary>
    internal static FlushCodePage? Page => s_page;

    /// <summary>The routine for <paramref name="instruction"/>, or null when it cannot be had.</summary>
    internal static delegate* unmanaged[SuppressGCTransition]<byte*, nuint, void> Get(FlushInstruction instruction)
    {
        FlushCodePage? page = s_page;
        if (page is null || !page.IsAvailable)
        {
            return null;
        }
        return instruction switch
        {
            FlushInstruction.Clwb => (delegate* unmanaged[SuppressGCTransition]<byte*, nuint, void>)(page.Address + 0 * RoutineStride),
            FlushInstruction.ClflushOpt => (delegate* unmanaged[SuppressGCTransition]<byte*, nuint, void>)(page.Address + 1 * RoutineStride),
            FlushInstruction.Clflush => (delegate* unmanaged[SuppressGCTransition]<byte*, nuint, void>)(page.Address + 2 * RoutineStride),
            _ => null,
        };
    }

    /// <summary>Builds the routine for one flush instruction; exposed for the tests that check the encoding.</summary>
    internal static byte[] Assemble(ReadOnlySpan<byte> flush)
    {
        var code = new List<byte>(32) { 0x48, 0x85, 0xF6, 0x74, 0x00, 0x48, 0x8D, 0x34, 0x37, 0x48, 0x83, 0xE7, 0xC0 };
        int loop = code.Count;
        code.AddRange(flush);
        code.AddRange([0x48, 0x83, 0xC7, 0x40, 0x48, 0x39, 0xF7, 0x72]);
        int afterJb = code.Count + 1;
        code.Add(unchecked((byte)(sbyte)(loop - afterJb)));
        int done = code.Count;
        code.Add(0xC3);
        code[4] = (byte)(done - 5); // jz is at 3..4; its displacement counts from 5
        return [.. code];
    }

    private static FlushCodePage? Generate(bool disabled)
    {
        if (disabled || !X86Base.X64.IsSupported)
        {
            return null;
        }
        nuint size = (nuint)Environment.SystemPageSize;
        nint address = Libc.MMap(0, size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS, -1, 0);
        if (address == Libc.MAP_FAILED)
        {
            return new FlushCodePage(0, $"mmap of the code page failed with errno {Marshal.GetLastPInvokeError()}");
        }
        // Best effort: a forked child has no use for the code page (DirectPmem mappings are never inherited).
        _ = Libc.MAdvise(address, size, Libc.MADV_DONTFORK);
        var span = new Span<byte>((void*)address, (int)size);
        span.Fill(0xCC); // int3 everywhere else
        Assemble(s_clwb).CopyTo(span[(0 * RoutineStride)..]);
        Assemble(s_clflushOpt).CopyTo(span[(1 * RoutineStride)..]);
        Assemble(s_clflush).CopyTo(span[(2 * RoutineStride)..]);
        // SAFETY: from here on the page is never written again; W^X: it goes from RW to RX, never RWX.
        if (Libc.MProtect(address, size, Libc.PROT_READ | Libc.PROT_EXEC) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            _ = Libc.MUnmap(address, size);
            return new FlushCodePage(0, $"mprotect(PROT_READ|PROT_EXEC) of the code page failed with {Errno.Name(errno)} (the system refuses executable memory)");
        }
        return new FlushCodePage(address, null);
    }
}

/// <summary>The page holding the flush routines (never freed: function pointers to it live as long as the process).</summary>
/// <param name="Address">The page's address, or 0 when it could not be made.</param>
/// <param name="Failure">Why it could not be made.</param>
internal sealed record FlushCodePage(nint Address, string? Failure)
{
    internal bool IsAvailable => Address != 0;
}
