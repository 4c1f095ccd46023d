using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using DirectPmem.Interop;
using DirectPmem.Persistence;

namespace DirectPmem.Mapping;

/// <summary>
/// The poison-safe copy out of a mapping (the kernel's <c>copy_mc</c> with its exception-table
/// fixup, in user space). A copy routine whose loads may fault, and a SIGBUS handler that turns a
/// fault at one of those loads into a short copy, are x86-64 machine code in one private page,
/// written while PROT_READ|PROT_WRITE and then switched to PROT_READ|PROT_EXEC (never both, as
/// <see cref="FlushCode"/>). The handler is machine code because a signal handler must be
/// async-signal-safe: managed code never runs in it.
/// </summary>
/// <remarks>
/// <para>
/// The handler is installed once per process, on first use, with <c>sigaction(SIGBUS)</c>: the
/// flags of the handler it replaces (SA_ONSTACK, SA_RESTART, SA_NODEFER) plus SA_SIGINFO, and the
/// same mask. It redirects a SIGBUS only when all hold: the kernel raised it for a consumed memory
/// error (<c>BUS_MCEERR_AR</c>) or an access past the end of a mapped file (<c>BUS_ADRERR</c>),
/// and the interrupted instruction lies in the copy routine. Then it sets the saved RIP to the
/// routine's fixup, which returns the number of bytes not copied and stores the fault address and
/// code. Every other SIGBUS goes to the handler that was installed before (the .NET runtime's):
/// a jump to it with the same three arguments; when there was none (SIG_DFL or SIG_IGN) it
/// restores SIG_DFL and returns, so the faulting instruction runs again and the default action
/// ends the process, exactly as without this handler. <c>BUS_MCEERR_AO</c> (the kernel telling a
/// process that a page it maps went bad, not that an instruction consumed it) is not a fault of
/// the copy and is always passed on.
/// </para>
/// <para>
/// Layout of the code page, System V x86-64 ABI:
/// <c>nuint Copy(byte* destination (rdi), byte* source (rsi), nuint length (rdx), Fault* fault (rcx), nuint repThreshold (r8))</c>
/// copies with 32-byte SSE2 loads (then 8-byte, then 1-byte) below <c>repThreshold</c> and with
/// <c>rep movsb</c> from it on. In both paths rcx counts the bytes not yet stored and rsi points at
/// the next byte to load, so at a fault rcx is exactly what was not copied (<c>rep movsb</c> keeps
/// its registers exact at a fault, which is what the kernel's
/// <c>copy_mc_enhanced_fast_string</c> relies on). Handler at <see cref="HandlerOffset"/>; the
/// handler's data (the previous handler, a zeroed kernel sigaction for SIG_DFL) is on the next
/// page, which stays PROT_READ|PROT_WRITE and is never executable.
/// </para>
/// </remarks>
internal static unsafe class SafeCopy
{
    //   copy:
    //   0x00 mov r9, rcx             49 89 C9       ; r9 = fault record
    //   0x03 mov rcx, rdx            48 89 D1       ; rcx = bytes not yet copied
    //   0x06 cmp rcx, r8             4C 39 C1
    //   0x09 jae rep                 73 54
    //   loop32:
    //   0x0B cmp rcx, 32             48 83 F9 20
    //   0x0F jb loop8                72 20
    //   0x11 movdqu xmm0, [rsi]      F3 0F 6F 06    ; load
    //   0x15 movdqu xmm1, [rsi+16]   F3 0F 6F 4E 10 ; load
    //   0x1A movdqu [rdi], xmm0      F3 0F 7F 07
    //   0x1E movdqu [rdi+16], xmm1   F3 0F 7F 4F 10
    //   0x23 add rsi, 32             48 83 C6 20
    //   0x27 add rdi, 32             48 83 C7 20
    //   0x2B sub rcx, 32             48 83 E9 20
    //   0x2F jmp loop32              EB DA
    //   loop8:
    //   0x31 cmp rcx, 8              48 83 F9 08
    //   0x35 jb loop1                72 14
    //   0x37 mov rax, [rsi]          48 8B 06       ; load
    //   0x3A mov [rdi], rax          48 89 07
    //   0x3D add rsi, 8              48 83 C6 08
    //   0x41 add rdi, 8              48 83 C7 08
    //   0x45 sub rcx, 8              48 83 E9 08
    //   0x49 jmp loop8               EB E6
    //   loop1:
    //   0x4B test rcx, rcx           48 85 C9
    //   0x4E jz done                 74 11
    //   0x50 mov al, [rsi]           8A 06          ; load
    //   0x52 mov [rdi], al           88 07
    //   0x54 inc rsi                 48 FF C6
    //   0x57 inc rdi                 48 FF C7
    //   0x5A dec rcx                 48 FF C9
    //   0x5D jmp loop1               EB EC
    //   rep:
    //   0x5F rep movsb               F3 A4          ; load (and store)
    //   done:
    //   0x61 xor eax, eax            31 C0          ; everything copied
    //   0x63 ret                     C3
    //   fixup (the handler sets rdx = si_addr, rsi = si_code | si_addr_lsb << 32):
    //   0x64 mov [r9], rdx           49 89 11
    //   0x67 mov [r9+8], rsi         49 89 71 08
    //   0x6B mov rax, rcx            48 89 C8       ; bytes not copied
    //   0x6E ret                     C3
    private static readonly byte[] s_copy =
    [
        0x49, 0x89, 0xC9, 0x48, 0x89, 0xD1, 0x4C, 0x39, 0xC1, 0x73, 0x54,
        0x48, 0x83, 0xF9, 0x20, 0x72, 0x20, 0xF3, 0x0F, 0x6F, 0x06, 0xF3, 0x0F, 0x6F, 0x4E, 0x10,
        0xF3, 0x0F, 0x7F, 0x07, 0xF3, 0x0F, 0x7F, 0x4F, 0x10, 0x48, 0x83, 0xC6, 0x20, 0x48, 0x83, 0xC7, 0x20,
        0x48, 0x83, 0xE9, 0x20, 0xEB, 0xDA,
        0x48, 0x83, 0xF9, 0x08, 0x72, 0x14, 0x48, 0x8B, 0x06, 0x48, 0x89, 0x07, 0x48, 0x83, 0xC6, 0x08,
        0x48, 0x83, 0xC7, 0x08, 0x48, 0x83, 0xE9, 0x08, 0xEB, 0xE6,
        0x48, 0x85, 0xC9, 0x74, 0x11, 0x8A, 0x06, 0x88, 0x07, 0x48, 0xFF, 0xC6, 0x48, 0xFF, 0xC7, 0x48, 0xFF, 0xC9, 0xEB, 0xEC,
        0xF3, 0xA4,
        0x31, 0xC0, 0xC3,
        0x49, 0x89, 0x11, 0x49, 0x89, 0x71, 0x08, 0x48, 0x89, 0xC8, 0xC3,
    ];

    /// <summary>Where the fixup starts: every instruction before it is part of the copy (the handler's range).</summary>
    internal const int FixupOffset = 0x64;

    /// <summary>Where the signal handler starts.</summary>
    internal const int HandlerOffset = 0x80;

    //   handler (edi = signal, rsi = siginfo_t*, rdx = ucontext_t*):
    //   0x80 mov eax, [rsi+8]        8B 46 08             ; si_code
    //   0x83 cmp eax, 2              83 F8 02             ; BUS_ADRERR
    //   0x86 je check                74 05
    //   0x88 cmp eax, 4              83 F8 04             ; BUS_MCEERR_AR
    //   0x8B jne chain               75 45
    //   check:
    //   0x8D mov rax, [rdx+168]      48 8B 82 A8 00 00 00 ; uc_mcontext.gregs[REG_RIP]
    //   0x94 lea rcx, [rip-0x9B]     48 8D 0D 65 FF FF FF ; copy
    //   0x9B sub rax, rcx            48 29 C8
    //   0x9E cmp rax, FixupOffset    48 3D 64 00 00 00
    //   0xA4 jae chain               73 2C                ; not in the copy: not ours
    //   0xA6 lea rax, [rip-0x49]     48 8D 05 B7 FF FF FF ; fixup
    //   0xAD mov [rdx+168], rax      48 89 82 A8 00 00 00 ; RIP = fixup
    //   0xB4 mov rax, [rsi+16]       48 8B 46 10          ; si_addr
    //   0xB8 mov [rdx+136], rax      48 89 82 88 00 00 00 ; gregs[REG_RDX]
    //   0xBF movzx eax, word [rsi+24] 0F B7 46 18         ; si_addr_lsb
    //   0xC3 shl rax, 32             48 C1 E0 20
    //   0xC7 mov ecx, [rsi+8]        8B 4E 08             ; si_code
    //   0xCA or rax, rcx             48 09 C8
    //   0xCD mov [rdx+112], rax      48 89 42 70          ; gregs[REG_RSI]
    //   0xD1 ret                     C3                   ; resume at the fixup
    //   chain:
    //   0xD2 mov rax, [rip+data]     48 8B 05 d32         ; the previous handler
    //   0xD9 cmp rax, 1              48 83 F8 01
    //   0xDD jbe default             76 02                ; SIG_DFL (0) or SIG_IGN (1)
    //   0xDF jmp rax                 FF E0                ; same rdi, rsi, rdx, same stack
    //   default:
    //   0xE1 lea rsi, [rip+data+64]  48 8D 35 d32         ; a zeroed kernel sigaction: SIG_DFL
    //   0xE8 xor edx, edx            31 D2                ; no old action
    //   0xEA mov r10d, 8             41 BA 08 00 00 00    ; sizeof(kernel sigset_t)
    //   0xF0 mov eax, 13             B8 0D 00 00 00       ; rt_sigaction (edi is still SIGBUS)
    //   0xF5 syscall                 0F 05
    //   0xF7 ret                     C3                   ; the instruction faults again and the default action ends the process
    private static readonly byte[] s_handler =
    [
        0x8B, 0x46, 0x08, 0x83, 0xF8, 0x02, 0x74, 0x05, 0x83, 0xF8, 0x04, 0x75, 0x45,
        0x48, 0x8B, 0x82, 0xA8, 0x00, 0x00, 0x00, 0x48, 0x8D, 0x0D, 0x65, 0xFF, 0xFF, 0xFF, 0x48, 0x29, 0xC8,
        0x48, 0x3D, FixupOffset, 0x00, 0x00, 0x00, 0x73, 0x2C,
        0x48, 0x8D, 0x05, 0xB7, 0xFF, 0xFF, 0xFF, 0x48, 0x89, 0x82, 0xA8, 0x00, 0x00, 0x00,
        0x48, 0x8B, 0x46, 0x10, 0x48, 0x89, 0x82, 0x88, 0x00, 0x00, 0x00,
        0x0F, 0xB7, 0x46, 0x18, 0x48, 0xC1, 0xE0, 0x20, 0x8B, 0x4E, 0x08, 0x48, 0x09, 0xC8, 0x48, 0x89, 0x42, 0x70, 0xC3,
        0x48, 0x8B, 0x05, 0x00, 0x00, 0x00, 0x00, 0x48, 0x83, 0xF8, 0x01, 0x76, 0x02, 0xFF, 0xE0,
        0x48, 0x8D, 0x35, 0x00, 0x00, 0x00, 0x00, 0x31, 0xD2, 0x41, 0xBA, 0x08, 0x00, 0x00, 0x00,
        0xB8, Libc.SYS_rt_sigaction, 0x00, 0x00, 0x00, 0x0F, 0x05, 0xC3,
    ];

    // Where in s_handler the two data displacements go, and the address that follows each instruction.
    private const int PreviousHandlerDisplacement = 0xD5 - HandlerOffset;
    private const int PreviousHandlerNext = 0xD9;
    private const int DefaultActionDisplacement = 0xE4 - HandlerOffset;
    private const int DefaultActionNext = 0xE8;

    // The data page: the previous handler at 0, the zeroed kernel sigaction (handler, flags, restorer, mask: 32 bytes) at 64.
    private const int PreviousHandlerData = 0;
    private const int DefaultActionData = 64;

    /// <summary>
    /// From this length on the copy uses <c>rep movsb</c>; below it, the 32-byte SSE2 loop. Measured
    /// (bench/README.md, "Poison-safe read"): the loop wins for short copies, where <c>rep movsb</c>
    /// pays its start-up cost, and <c>rep movsb</c> from a few KiB.
    /// </summary>
    internal const nuint DefaultRepThreshold = 2048;

    /// <summary>Copies from this length on are called with a GC transition: a long copy must not hold up a garbage collection.</summary>
    internal const nuint SuppressTransitionLimit = 64 * 1024;

    private static readonly SafeCopyState s_state = Install(PersistenceSettings.Current.NoGeneratedCode);

    /// <summary>The copy routine, or null when it cannot be had (<see cref="Failure"/> says why).</summary>
    internal static readonly delegate* unmanaged[SuppressGCTransition]<byte*, byte*, nuint, Fault*, nuint, nuint> Routine =
        (delegate* unmanaged[SuppressGCTransition]<byte*, byte*, nuint, Fault*, nuint, nuint>)s_state.Code;

    /// <summary>The same routine, called with a GC transition (for long copies).</summary>
    internal static readonly delegate* unmanaged<byte*, byte*, nuint, Fault*, nuint, nuint> RoutineWithTransition =
        (delegate* unmanaged<byte*, byte*, nuint, Fault*, nuint, nuint>)s_state.Code;

    /// <summary>Why the safe copy is unavailable, or null when it is available.</summary>
    internal static string? Failure => s_state.Failure;

    /// <summary>The code page's address (0 when unavailable), for the tests.</summary>
    internal static nint CodeAddress => s_state.Code;

    /// <summary>What the fixup stores: the fault's address and the signal's code.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Fault
    {
        /// <summary>si_addr: the address whose load faulted.</summary>
        internal nuint Address;

        /// <summary>si_code in the low 32 bits, si_addr_lsb (meaningful for BUS_MCEERR_*) in the high 32.</summary>
        internal ulong CodeAndLsb;

        internal readonly int Code => (int)(uint)CodeAndLsb;

        internal readonly int AddressLsb => (int)(CodeAndLsb >> 32);
    }

    /// <summary>
    /// Copies <paramref name="length"/> bytes; returns how many were not copied (0: all), and on a
    /// fault fills <paramref name="fault"/>. The caller keeps both ranges mapped for the call.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static nuint Copy(byte* destination, byte* source, nuint length, out Fault fault, nuint repThreshold = DefaultRepThreshold)
    {
        fault = default;
        nuint notCopied;
        fixed (Fault* record = &fault)
        {
            notCopied = length < SuppressTransitionLimit
                ? Routine(destination, source, length, record, repThreshold)
                : RoutineWithTransition(destination, source, length, record, repThreshold);
        }
        return notCopied == 0 ? 0 : CopyUpToFault(destination, source, length, notCopied, ref fault);
    }

    // A wide load that straddles the fault (a 16-byte load of which only the first bytes are
    // readable) stores nothing: the bytes between what was stored and the fault address are
    // readable and are copied now with byte loads, so that what a caller gets is exactly "every byte
    // before the fault". rep movsb already stops exactly at the fault, and then there is no gap.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static nuint CopyUpToFault(byte* destination, byte* source, nuint length, nuint notCopied, ref Fault fault)
    {
        nuint copied = length - notCopied;
        nuint faultIndex = (nuint)((byte*)fault.Address - source);
        if (faultIndex <= copied || faultIndex > length)
        {
            return notCopied; // nothing readable in between (or the fault was not in the source)
        }
        nuint gap = faultIndex - copied;
        Fault second;
        nuint gapNotCopied = Routine(destination + copied, source + copied, gap, &second, nuint.MaxValue);
        if (gapNotCopied != 0)
        {
            fault = second;
        }
        return length - faultIndex + gapNotCopied;
    }

    /// <summary>Builds the code page image (exposed for the tests that check the encoding).</summary>
    internal static void Assemble(Span<byte> code, int dataOffset)
    {
        code.Fill(0xCC); // int3 everywhere else
        s_copy.CopyTo(code);
        Span<byte> handler = code[HandlerOffset..];
        s_handler.CopyTo(handler);
        BitConverter.TryWriteBytes(handler[PreviousHandlerDisplacement..], dataOffset + PreviousHandlerData - PreviousHandlerNext);
        BitConverter.TryWriteBytes(handler[DefaultActionDisplacement..], dataOffset + DefaultActionData - DefaultActionNext);
    }

    private static SafeCopyState Install(bool disabled)
    {
        if (disabled)
        {
            return new SafeCopyState(0, $"generated code is disabled ({PersistenceSettings.NoGeneratedCodeVariable}=1)");
        }
        if (!X86Base.X64.IsSupported)
        {
            return new SafeCopyState(0, "the poison-safe copy is x86-64 machine code and this process does not run on x86-64");
        }
        int page = Environment.SystemPageSize;
        nuint size = (nuint)(2 * page);
        nint address = Libc.MMap(0, size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS, -1, 0);
        if (address == Libc.MAP_FAILED)
        {
            return new SafeCopyState(0, $"mmap of the code page failed with {Errno.Name(Marshal.GetLastPInvokeError())}");
        }
        // Best effort: a forked child has no use for it (its signal handler would point into nothing, but a child of
        // a .NET process execs at once).
        _ = Libc.MAdvise(address, size, Libc.MADV_DONTFORK);
        Assemble(new Span<byte>((void*)address, page), page);
        // SAFETY: W^X: the code page goes from RW to RX and is never written again; the data page stays RW, never X.
        if (Libc.MProtect(address, (nuint)page, Libc.PROT_READ | Libc.PROT_EXEC) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            _ = Libc.MUnmap(address, size);
            return new SafeCopyState(0, $"mprotect(PROT_READ|PROT_EXEC) of the code page failed with {Errno.Name(errno)} (the system refuses executable memory)");
        }
        nint* previousHandler = (nint*)(address + page + PreviousHandlerData);

        // glibc fills only the first 8 bytes of the mask (the kernel's 64 signals): start from zeros.
        Libc.SigActionData current = default;
        if (Libc.SigAction(Libc.SIGBUS, null, &current) != 0)
        {
            return Unavailable(address, size, "sigaction(SIGBUS) to read the installed handler");
        }
        // The data is in place before the handler can run: a SIGBUS between here and the install goes to `current`.
        Volatile.Write(ref *previousHandler, current.Handler);
        Libc.SigActionData action = current; // same mask
        action.Handler = address + HandlerOffset;
        action.Flags = (current.Flags & ~(Libc.SA_RESETHAND | Libc.SA_RESTORER)) | Libc.SA_SIGINFO;
        action.Restorer = 0;
        Libc.SigActionData replaced = default;
        if (Libc.SigAction(Libc.SIGBUS, &action, &replaced) != 0)
        {
            return Unavailable(address, size, "sigaction(SIGBUS) to install the handler");
        }
        if (replaced.Handler != current.Handler)
        {
            // Another thread installed a handler in between: chain to that one instead.
            Volatile.Write(ref *previousHandler, replaced.Handler);
        }
        return new SafeCopyState(address, null);
    }

    private static SafeCopyState Unavailable(nint address, nuint size, string what)
    {
        int errno = Marshal.GetLastPInvokeError();
        _ = Libc.MUnmap(address, size);
        return new SafeCopyState(0, $"{what} failed with {Errno.Name(errno)}");
    }

    private sealed record SafeCopyState(nint Code, string? Failure);
}
