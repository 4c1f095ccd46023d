using System.Diagnostics;
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
/// The handler is installed once per process, on first use, for SIGBUS and SIGSEGV with
/// <c>sigaction</c>: the flags of the handler it replaces (SA_ONSTACK, SA_RESTART, SA_NODEFER)
/// plus SA_SIGINFO, and the same mask. It redirects a signal only when both hold: the kernel
/// raised it for a consumed memory error (<c>BUS_MCEERR_AR</c>), an access past the end of a
/// mapped file (<c>BUS_ADRERR</c>) or an access to memory that is unmapped or without access
/// (<c>SEGV_MAPERR</c>, <c>SEGV_ACCERR</c>: the mapping was disposed during the copy, and its
/// range is a PROT_NONE reservation), and the interrupted instruction lies in one of the copy
/// routines. Then it sets the saved RIP to the routines' fixup, which returns the number of bytes
/// not copied and stores the fault address, code and signal. Every other signal goes to the
/// handler that was installed before (the .NET runtime's, which turns a SIGSEGV in managed code
/// into NullReferenceException and detects stack overflow): a jump to it with the same three
/// arguments and stack. When there was none it does what the kernel would have done: under
/// SIG_DFL it restores SIG_DFL and raises the signal again with the same siginfo
/// (rt_tgsigqueueinfo), so the default action ends the process at the handler's return; under
/// SIG_IGN a fault is treated the same way (the kernel never lets a fault be ignored), and a
/// signal sent by a process or a <c>BUS_MCEERR_AO</c> is ignored. The routines touch no stack (no push, no call), so a stack
/// overflow never faults inside them. <c>BUS_MCEERR_AO</c> (the kernel telling a process that a
/// page it maps went bad, not that an instruction consumed it) is not a fault of the copy and is
/// always passed on.
/// </para>
/// <para>
/// Layout of the code page, System V x86-64 ABI: two copies,
/// <c>nuint Copy(byte* destination (rdi), byte* source (rsi), nuint length (rdx), Fault* fault (rcx), nuint repThreshold (r8))</c>,
/// one with SSE2 (4 x 16-byte loads, then 16, 8 and 1) and one with AVX2, both storing to an aligned
/// destination in their main loop (a split store costs more than the overlapping head that aligns
/// it), each with <c>rep movsb</c> from <c>repThreshold</c> on, and their shared fixup. The AVX2 copy
/// does 16 to 256 bytes without a loop (two, four or eight loads that may overlap, then the
/// stores, as glibc's memmove does; 16 to 64 bytes test their size before the <c>rep movsb</c>
/// threshold and return where they store, since a jump to the shared exit cost 0.7 ns of a 64-byte
/// read on the AMD EPYC this was measured on), and from 257 bytes on runs 4 x 32-byte loads forward, then 32, 8 and 1;
/// or backward when the destination is 0 to 255 bytes ahead of the source modulo 4 KiB, where
/// each forward load would wait on the store before it (4 KiB aliasing; glibc's memmove turns
/// backward on the same test).
/// In every path rcx counts the bytes not yet stored, so at a fault rcx is what was not stored
/// (<c>rep movsb</c> keeps its registers exact at a fault, which the kernel's
/// <c>copy_mc_enhanced_fast_string</c> relies on; the loops store a group only after all its loads,
/// and <see cref="Copy"/> then copies the readable bytes between the group and the fault). The
/// backward loop keeps rcx at the whole length: a fault in it counts nothing as stored, and
/// <see cref="Copy"/> copies forward up to the fault (with <c>rep movsb</c>, exact), so a caller
/// again gets every byte before the first bad one. The fixup does not run VZEROUPPER (the SSE2 path may run on a CPU
/// without AVX): after a fault in the AVX2 copy the upper halves stay dirty until the runtime's
/// next VZEROUPPER, a cost on the error path only. Handler at <see cref="HandlerOffset"/>; the
/// handler's data (the previous handler, a zeroed kernel sigaction for SIG_DFL) is on the next
/// page, which stays PROT_READ|PROT_WRITE and is never executable.
/// </para>
/// </remarks>
internal static unsafe class SafeCopy
{
    // The image below is GNU as output for the listing in the comments (`gcc -c`, then objdump),
    // checked byte for byte when it was written; ReadSafeTests check the offsets the handler and
    // Assemble rely on. Offsets are from the page start. To change a copy, regenerate its whole
    // array from its listing: the `// label:` lines as labels and each comment's instruction (its
    // `; ...` text as a `#` comment, `rep movs ...` as `rep movsb`) into a file after
    // `.intel_syntax noprefix`, `as --64` it, and take each instruction's bytes and offset from
    // `objdump -d` (plus the copy's offset); then check that every copy still ends before
    // FixupOffset and update the int3 filler ranges in TheCodePageLayoutMatchesTheOffsetsTheHandlerUses.
    // (Round 5 did so for the AVX2 copy, and the unchanged listings reassembled byte for byte.)
    private static readonly byte[] s_copySse =
    [
        // copy_sse:
        0x49, 0x89, 0xC9,                           // 0x000 mov r9,rcx ; r9 = fault record
        0x48, 0x89, 0xD1,                           // 0x003 mov rcx,rdx ; rcx = bytes not yet stored
        0x4C, 0x39, 0xC1,                           // 0x006 cmp rcx,r8
        0x0F, 0x83, 0xA2, 0x00, 0x00, 0x00,         // 0x009 jae .Srep
        0x48, 0x83, 0xF9, 0x40,                     // 0x00F cmp rcx,0x40
        0x72, 0x52,                                 // 0x013 jb .Smid
        0xF3, 0x0F, 0x6F, 0x06,                     // 0x015 movdqu xmm0,[rsi] ; load
        0xF3, 0x0F, 0x7F, 0x07,                     // 0x019 movdqu [rdi],xmm0
        0x89, 0xF8,                                 // 0x01D mov eax,edi ; align the destination:
        0xF7, 0xD8,                                 // 0x01F neg eax
        0x83, 0xE0, 0x0F,                           // 0x021 and eax,0xf ; eax = bytes to the next 16-byte boundary (the head above stored them)
        0x48, 0x01, 0xC6,                           // 0x024 add rsi,rax
        0x48, 0x01, 0xC7,                           // 0x027 add rdi,rax
        0x48, 0x29, 0xC1,                           // 0x02A sub rcx,rax
        // .Sbig:
        0x48, 0x83, 0xF9, 0x40,                     // 0x02D cmp rcx,0x40
        0x72, 0x34,                                 // 0x031 jb .Smid
        0xF3, 0x0F, 0x6F, 0x06,                     // 0x033 movdqu xmm0,[rsi] ; load
        0xF3, 0x0F, 0x6F, 0x4E, 0x10,               // 0x037 movdqu xmm1,[rsi+0x10] ; load
        0xF3, 0x0F, 0x6F, 0x56, 0x20,               // 0x03C movdqu xmm2,[rsi+0x20] ; load
        0xF3, 0x0F, 0x6F, 0x5E, 0x30,               // 0x041 movdqu xmm3,[rsi+0x30] ; load
        0xF3, 0x0F, 0x7F, 0x07,                     // 0x046 movdqu [rdi],xmm0
        0xF3, 0x0F, 0x7F, 0x4F, 0x10,               // 0x04A movdqu [rdi+0x10],xmm1
        0xF3, 0x0F, 0x7F, 0x57, 0x20,               // 0x04F movdqu [rdi+0x20],xmm2
        0xF3, 0x0F, 0x7F, 0x5F, 0x30,               // 0x054 movdqu [rdi+0x30],xmm3
        0x48, 0x83, 0xC6, 0x40,                     // 0x059 add rsi,0x40
        0x48, 0x83, 0xC7, 0x40,                     // 0x05D add rdi,0x40
        0x48, 0x83, 0xE9, 0x40,                     // 0x061 sub rcx,0x40
        0xEB, 0xC6,                                 // 0x065 jmp .Sbig
        // .Smid:
        0x48, 0x83, 0xF9, 0x10,                     // 0x067 cmp rcx,0x10
        0x72, 0x16,                                 // 0x06B jb .Sloop8
        0xF3, 0x0F, 0x6F, 0x06,                     // 0x06D movdqu xmm0,[rsi] ; load
        0xF3, 0x0F, 0x7F, 0x07,                     // 0x071 movdqu [rdi],xmm0
        0x48, 0x83, 0xC6, 0x10,                     // 0x075 add rsi,0x10
        0x48, 0x83, 0xC7, 0x10,                     // 0x079 add rdi,0x10
        0x48, 0x83, 0xE9, 0x10,                     // 0x07D sub rcx,0x10
        0xEB, 0xE4,                                 // 0x081 jmp .Smid
        // .Sloop8:
        0x48, 0x83, 0xF9, 0x08,                     // 0x083 cmp rcx,0x8
        0x72, 0x14,                                 // 0x087 jb .Sloop1
        0x48, 0x8B, 0x06,                           // 0x089 mov rax,[rsi] ; load
        0x48, 0x89, 0x07,                           // 0x08C mov [rdi],rax
        0x48, 0x83, 0xC6, 0x08,                     // 0x08F add rsi,0x8
        0x48, 0x83, 0xC7, 0x08,                     // 0x093 add rdi,0x8
        0x48, 0x83, 0xE9, 0x08,                     // 0x097 sub rcx,0x8
        0xEB, 0xE6,                                 // 0x09B jmp .Sloop8
        // .Sloop1:
        0x48, 0x85, 0xC9,                           // 0x09D test rcx,rcx
        0x74, 0x11,                                 // 0x0A0 je .Sdone
        0x8A, 0x06,                                 // 0x0A2 mov al,[rsi] ; load
        0x88, 0x07,                                 // 0x0A4 mov [rdi],al
        0x48, 0xFF, 0xC6,                           // 0x0A6 inc rsi
        0x48, 0xFF, 0xC7,                           // 0x0A9 inc rdi
        0x48, 0xFF, 0xC9,                           // 0x0AC dec rcx
        0xEB, 0xEC,                                 // 0x0AF jmp .Sloop1
        // .Srep:
        0xF3, 0xA4,                                 // 0x0B1 rep movs es:[rdi],ds:[rsi] ; load
        // .Sdone:
        0x31, 0xC0,                                 // 0x0B3 xor eax,eax ; everything copied
        0xC3,                                       // 0x0B5 ret
    ];

    private static readonly byte[] s_copyAvx2 =
    [
        // copy_avx:
        0x49, 0x89, 0xC9,                           // 0x100 mov r9,rcx ; r9 = fault record
        0x48, 0x89, 0xD1,                           // 0x103 mov rcx,rdx ; rcx = bytes not yet stored
        0x48, 0x83, 0xF9, 0x40,                     // 0x106 cmp rcx,0x40
        0x77, 0x4A,                                 // 0x10A ja .Aover64 ; over 64 bytes: the rep movsb threshold is tested there
        0x4C, 0x39, 0xC1,                           // 0x10C cmp rcx,r8
        0x0F, 0x83, 0x2F, 0x02, 0x00, 0x00,         // 0x10F jae .Arep ; a threshold of 64 or less (the exact forward copy up to a fault)
        0x48, 0x83, 0xF9, 0x20,                     // 0x115 cmp rcx,0x20
        0x72, 0x1A,                                 // 0x119 jb .Aunder32
        0xC5, 0xFE, 0x6F, 0x06,                     // 0x11B vmovdqu ymm0,[rsi] ; load: 32..64 bytes: two loads that may overlap, then the stores
        0xC5, 0xFE, 0x6F, 0x4C, 0x0E, 0xE0,         // 0x11F vmovdqu ymm1,[rsi+rcx*1-0x20] ; load
        0xC5, 0xFE, 0x7F, 0x07,                     // 0x125 vmovdqu [rdi],ymm0
        0xC5, 0xFE, 0x7F, 0x4C, 0x0F, 0xE0,         // 0x129 vmovdqu [rdi+rcx*1-0x20],ymm1
        0xC5, 0xF8, 0x77,                           // 0x12F vzeroupper
        0x31, 0xC0,                                 // 0x132 xor eax,eax ; everything copied
        0xC3,                                       // 0x134 ret
        // .Aunder32:
        0x48, 0x83, 0xF9, 0x10,                     // 0x135 cmp rcx,0x10
        0x0F, 0x82, 0x3C, 0x01, 0x00, 0x00,         // 0x139 jb .Aloop8
        0xC5, 0xFA, 0x6F, 0x06,                     // 0x13F vmovdqu xmm0,[rsi] ; load: 16..31 bytes, likewise
        0xC5, 0xFA, 0x6F, 0x4C, 0x0E, 0xF0,         // 0x143 vmovdqu xmm1,[rsi+rcx*1-0x10] ; load
        0xC5, 0xFA, 0x7F, 0x07,                     // 0x149 vmovdqu [rdi],xmm0
        0xC5, 0xFA, 0x7F, 0x4C, 0x0F, 0xF0,         // 0x14D vmovdqu [rdi+rcx*1-0x10],xmm1
        0x31, 0xC0,                                 // 0x153 xor eax,eax ; everything copied (no ymm register written)
        0xC3,                                       // 0x155 ret
        // .Aover64:
        0x4C, 0x39, 0xC1,                           // 0x156 cmp rcx,r8
        0x0F, 0x83, 0xE5, 0x01, 0x00, 0x00,         // 0x159 jae .Arep
        0x48, 0x81, 0xF9, 0x80, 0x00, 0x00, 0x00,   // 0x15F cmp rcx,0x80
        0x77, 0x2F,                                 // 0x166 ja .Aover128
        0xC5, 0xFE, 0x6F, 0x06,                     // 0x168 vmovdqu ymm0,[rsi] ; load: 65..128 bytes: four loads, then the stores
        0xC5, 0xFE, 0x6F, 0x4E, 0x20,               // 0x16C vmovdqu ymm1,[rsi+0x20] ; load
        0xC5, 0xFE, 0x6F, 0x54, 0x0E, 0xC0,         // 0x171 vmovdqu ymm2,[rsi+rcx*1-0x40] ; load
        0xC5, 0xFE, 0x6F, 0x5C, 0x0E, 0xE0,         // 0x177 vmovdqu ymm3,[rsi+rcx*1-0x20] ; load
        0xC5, 0xFE, 0x7F, 0x07,                     // 0x17D vmovdqu [rdi],ymm0
        0xC5, 0xFE, 0x7F, 0x4F, 0x20,               // 0x181 vmovdqu [rdi+0x20],ymm1
        0xC5, 0xFE, 0x7F, 0x54, 0x0F, 0xC0,         // 0x186 vmovdqu [rdi+rcx*1-0x40],ymm2
        0xC5, 0xFE, 0x7F, 0x5C, 0x0F, 0xE0,         // 0x18C vmovdqu [rdi+rcx*1-0x20],ymm3
        0xE9, 0xAF, 0x01, 0x00, 0x00,               // 0x192 jmp .Adone
        // .Aover128:
        0x48, 0x81, 0xF9, 0x00, 0x01, 0x00, 0x00,   // 0x197 cmp rcx,0x100
        0x77, 0x5B,                                 // 0x19E ja .Aover256
        0xC5, 0xFE, 0x6F, 0x06,                     // 0x1A0 vmovdqu ymm0,[rsi] ; load: 129..256 bytes: eight loads, then the stores
        0xC5, 0xFE, 0x6F, 0x4E, 0x20,               // 0x1A4 vmovdqu ymm1,[rsi+0x20] ; load
        0xC5, 0xFE, 0x6F, 0x56, 0x40,               // 0x1A9 vmovdqu ymm2,[rsi+0x40] ; load
        0xC5, 0xFE, 0x6F, 0x5E, 0x60,               // 0x1AE vmovdqu ymm3,[rsi+0x60] ; load
        0xC5, 0xFE, 0x6F, 0x64, 0x0E, 0x80,         // 0x1B3 vmovdqu ymm4,[rsi+rcx*1-0x80] ; load
        0xC5, 0xFE, 0x6F, 0x6C, 0x0E, 0xA0,         // 0x1B9 vmovdqu ymm5,[rsi+rcx*1-0x60] ; load
        0xC5, 0xFE, 0x6F, 0x74, 0x0E, 0xC0,         // 0x1BF vmovdqu ymm6,[rsi+rcx*1-0x40] ; load
        0xC5, 0xFE, 0x6F, 0x7C, 0x0E, 0xE0,         // 0x1C5 vmovdqu ymm7,[rsi+rcx*1-0x20] ; load
        0xC5, 0xFE, 0x7F, 0x07,                     // 0x1CB vmovdqu [rdi],ymm0
        0xC5, 0xFE, 0x7F, 0x4F, 0x20,               // 0x1CF vmovdqu [rdi+0x20],ymm1
        0xC5, 0xFE, 0x7F, 0x57, 0x40,               // 0x1D4 vmovdqu [rdi+0x40],ymm2
        0xC5, 0xFE, 0x7F, 0x5F, 0x60,               // 0x1D9 vmovdqu [rdi+0x60],ymm3
        0xC5, 0xFE, 0x7F, 0x64, 0x0F, 0x80,         // 0x1DE vmovdqu [rdi+rcx*1-0x80],ymm4
        0xC5, 0xFE, 0x7F, 0x6C, 0x0F, 0xA0,         // 0x1E4 vmovdqu [rdi+rcx*1-0x60],ymm5
        0xC5, 0xFE, 0x7F, 0x74, 0x0F, 0xC0,         // 0x1EA vmovdqu [rdi+rcx*1-0x40],ymm6
        0xC5, 0xFE, 0x7F, 0x7C, 0x0F, 0xE0,         // 0x1F0 vmovdqu [rdi+rcx*1-0x20],ymm7
        0xE9, 0x4B, 0x01, 0x00, 0x00,               // 0x1F6 jmp .Adone
        // .Aover256:
        0x89, 0xF8,                                 // 0x1FB mov eax,edi ; the destination 0..255 bytes ahead of the source modulo 4 KiB?
        0x29, 0xF0,                                 // 0x1FD sub eax,esi
        0xA9, 0x00, 0x0F, 0x00, 0x00,               // 0x1FF test eax,0xf00
        0x0F, 0x84, 0xA3, 0x00, 0x00, 0x00,         // 0x204 je .Aback ; then copy backward (forward, each load would wait on the store before it: 4 KiB aliasing)
        0xC5, 0xFE, 0x6F, 0x06,                     // 0x20A vmovdqu ymm0,[rsi] ; load
        0xC5, 0xFE, 0x7F, 0x07,                     // 0x20E vmovdqu [rdi],ymm0
        0x89, 0xF8,                                 // 0x212 mov eax,edi ; align the destination: eax = -destination
        0xF7, 0xD8,                                 // 0x214 neg eax
        0x83, 0xE0, 0x1F,                           // 0x216 and eax,0x1f ; modulo 32 = bytes to the next 32-byte boundary (the head above stored them)
        0x48, 0x01, 0xC6,                           // 0x219 add rsi,rax
        0x48, 0x01, 0xC7,                           // 0x21C add rdi,rax
        0x48, 0x29, 0xC1,                           // 0x21F sub rcx,rax
        // .Abig:
        0x48, 0x81, 0xF9, 0x80, 0x00, 0x00, 0x00,   // 0x222 cmp rcx,0x80
        0x72, 0x34,                                 // 0x229 jb .Amid
        0xC5, 0xFE, 0x6F, 0x06,                     // 0x22B vmovdqu ymm0,[rsi] ; load
        0xC5, 0xFE, 0x6F, 0x4E, 0x20,               // 0x22F vmovdqu ymm1,[rsi+0x20] ; load
        0xC5, 0xFE, 0x6F, 0x56, 0x40,               // 0x234 vmovdqu ymm2,[rsi+0x40] ; load
        0xC5, 0xFE, 0x6F, 0x5E, 0x60,               // 0x239 vmovdqu ymm3,[rsi+0x60] ; load
        0xC5, 0xFE, 0x7F, 0x07,                     // 0x23E vmovdqu [rdi],ymm0
        0xC5, 0xFE, 0x7F, 0x4F, 0x20,               // 0x242 vmovdqu [rdi+0x20],ymm1
        0xC5, 0xFE, 0x7F, 0x57, 0x40,               // 0x247 vmovdqu [rdi+0x40],ymm2
        0xC5, 0xFE, 0x7F, 0x5F, 0x60,               // 0x24C vmovdqu [rdi+0x60],ymm3
        0x48, 0x83, 0xEE, 0x80,                     // 0x251 sub rsi,0xffffffffffffff80
        0x48, 0x83, 0xEF, 0x80,                     // 0x255 sub rdi,0xffffffffffffff80
        0x48, 0x83, 0xC1, 0x80,                     // 0x259 add rcx,0xffffffffffffff80
        0xEB, 0xC3,                                 // 0x25D jmp .Abig
        // .Amid:
        0x48, 0x83, 0xF9, 0x20,                     // 0x25F cmp rcx,0x20
        0x72, 0x16,                                 // 0x263 jb .Aloop8
        0xC5, 0xFE, 0x6F, 0x06,                     // 0x265 vmovdqu ymm0,[rsi] ; load
        0xC5, 0xFE, 0x7F, 0x07,                     // 0x269 vmovdqu [rdi],ymm0
        0x48, 0x83, 0xC6, 0x20,                     // 0x26D add rsi,0x20
        0x48, 0x83, 0xC7, 0x20,                     // 0x271 add rdi,0x20
        0x48, 0x83, 0xE9, 0x20,                     // 0x275 sub rcx,0x20
        0xEB, 0xE4,                                 // 0x279 jmp .Amid
        // .Aloop8:
        0x48, 0x83, 0xF9, 0x08,                     // 0x27B cmp rcx,0x8
        0x72, 0x14,                                 // 0x27F jb .Aloop1
        0x48, 0x8B, 0x06,                           // 0x281 mov rax,[rsi] ; load
        0x48, 0x89, 0x07,                           // 0x284 mov [rdi],rax
        0x48, 0x83, 0xC6, 0x08,                     // 0x287 add rsi,0x8
        0x48, 0x83, 0xC7, 0x08,                     // 0x28B add rdi,0x8
        0x48, 0x83, 0xE9, 0x08,                     // 0x28F sub rcx,0x8
        0xEB, 0xE6,                                 // 0x293 jmp .Aloop8
        // .Aloop1:
        0x48, 0x85, 0xC9,                           // 0x295 test rcx,rcx
        0x0F, 0x84, 0xA8, 0x00, 0x00, 0x00,         // 0x298 je .Adone
        0x8A, 0x06,                                 // 0x29E mov al,[rsi] ; load
        0x88, 0x07,                                 // 0x2A0 mov [rdi],al
        0x48, 0xFF, 0xC6,                           // 0x2A2 inc rsi
        0x48, 0xFF, 0xC7,                           // 0x2A5 inc rdi
        0x48, 0xFF, 0xC9,                           // 0x2A8 dec rcx
        0xEB, 0xE8,                                 // 0x2AB jmp .Aloop1
        // .Aback:
        0x4C, 0x8D, 0x14, 0x0E,                     // 0x2AD lea r10,[rsi+rcx*1] ; backward; rcx stays the whole length (a fault stores nothing the caller counts: it copies forward up to the fault)
        0x4C, 0x8D, 0x1C, 0x0F,                     // 0x2B1 lea r11,[rdi+rcx*1] ; r10, r11 = source and destination ends
        0xC4, 0xC1, 0x7E, 0x6F, 0x62, 0xE0,         // 0x2B5 vmovdqu ymm4,[r10-0x20] ; load: the last 32 bytes
        0xC5, 0xFE, 0x6F, 0x2E,                     // 0x2BB vmovdqu ymm5,[rsi] ; load: the first 32 bytes, stored last
        0x44, 0x89, 0xD8,                           // 0x2BF mov eax,r11d
        0x83, 0xE0, 0x1F,                           // 0x2C2 and eax,0x1f ; eax = bytes after the destination's last 32-byte boundary (the store below covers them)
        0xC4, 0xC1, 0x7E, 0x7F, 0x63, 0xE0,         // 0x2C5 vmovdqu [r11-0x20],ymm4
        0x49, 0x29, 0xC2,                           // 0x2CB sub r10,rax
        0x49, 0x29, 0xC3,                           // 0x2CE sub r11,rax
        0x48, 0x89, 0xCA,                           // 0x2D1 mov rdx,rcx
        0x48, 0x29, 0xC2,                           // 0x2D4 sub rdx,rax ; rdx = bytes left at the front
        // .Abbig:
        0x48, 0x81, 0xFA, 0x80, 0x00, 0x00, 0x00,   // 0x2D7 cmp rdx,0x80
        0x72, 0x3E,                                 // 0x2DE jb .Abmid
        0xC4, 0xC1, 0x7E, 0x6F, 0x42, 0xE0,         // 0x2E0 vmovdqu ymm0,[r10-0x20] ; load
        0xC4, 0xC1, 0x7E, 0x6F, 0x4A, 0xC0,         // 0x2E6 vmovdqu ymm1,[r10-0x40] ; load
        0xC4, 0xC1, 0x7E, 0x6F, 0x52, 0xA0,         // 0x2EC vmovdqu ymm2,[r10-0x60] ; load
        0xC4, 0xC1, 0x7E, 0x6F, 0x5A, 0x80,         // 0x2F2 vmovdqu ymm3,[r10-0x80] ; load
        0xC4, 0xC1, 0x7E, 0x7F, 0x43, 0xE0,         // 0x2F8 vmovdqu [r11-0x20],ymm0
        0xC4, 0xC1, 0x7E, 0x7F, 0x4B, 0xC0,         // 0x2FE vmovdqu [r11-0x40],ymm1
        0xC4, 0xC1, 0x7E, 0x7F, 0x53, 0xA0,         // 0x304 vmovdqu [r11-0x60],ymm2
        0xC4, 0xC1, 0x7E, 0x7F, 0x5B, 0x80,         // 0x30A vmovdqu [r11-0x80],ymm3
        0x49, 0x83, 0xC2, 0x80,                     // 0x310 add r10,0xffffffffffffff80
        0x49, 0x83, 0xC3, 0x80,                     // 0x314 add r11,0xffffffffffffff80
        0x48, 0x83, 0xC2, 0x80,                     // 0x318 add rdx,0xffffffffffffff80
        0xEB, 0xB9,                                 // 0x31C jmp .Abbig
        // .Abmid:
        0x48, 0x83, 0xFA, 0x20,                     // 0x31E cmp rdx,0x20
        0x76, 0x1A,                                 // 0x322 jbe .Abhead
        0xC4, 0xC1, 0x7E, 0x6F, 0x42, 0xE0,         // 0x324 vmovdqu ymm0,[r10-0x20] ; load
        0xC4, 0xC1, 0x7E, 0x7F, 0x43, 0xE0,         // 0x32A vmovdqu [r11-0x20],ymm0
        0x49, 0x83, 0xEA, 0x20,                     // 0x330 sub r10,0x20
        0x49, 0x83, 0xEB, 0x20,                     // 0x334 sub r11,0x20
        0x48, 0x83, 0xEA, 0x20,                     // 0x338 sub rdx,0x20
        0xEB, 0xE0,                                 // 0x33C jmp .Abmid
        // .Abhead:
        0xC5, 0xFE, 0x7F, 0x2F,                     // 0x33E vmovdqu [rdi],ymm5 ; the first 32 bytes cover the 32 or fewer left
        0xEB, 0x02,                                 // 0x342 jmp .Adone
        // .Arep:
        0xF3, 0xA4,                                 // 0x344 rep movs [rdi],[rsi] ; load
        // .Adone:
        0xC5, 0xF8, 0x77,                           // 0x346 vzeroupper
        0x31, 0xC0,                                 // 0x349 xor eax,eax ; everything copied
        0xC3,                                       // 0x34B ret
    ];

    private static readonly byte[] s_fixup =
    [
        // fixup:
        0x49, 0x89, 0x11,                           // 0x360 mov [r9],rdx ; fault address (rdx set by the handler)
        0x49, 0x89, 0x71, 0x08,                     // 0x363 mov [r9+0x8],rsi ; signal, si_code, si_addr_lsb (rsi set by the handler)
        0x48, 0x89, 0xC8,                           // 0x367 mov rax,rcx ; return the bytes not copied
        0xC3,                                       // 0x36A ret
    ];

    private static readonly byte[] s_handler =
    [
        // handler:
        0x8B, 0x46, 0x08,                           // 0x380 mov eax,[rsi+0x8] ; si_code
        0x83, 0xFF, 0x0B,                           // 0x383 cmp edi,0xb ; SIGSEGV?
        0x74, 0x0C,                                 // 0x386 je handler+0x14
        0x83, 0xF8, 0x02,                           // 0x388 cmp eax,0x2 ; SIGBUS: BUS_ADRERR
        0x74, 0x11,                                 // 0x38B je handler+0x1e
        0x83, 0xF8, 0x04,                           // 0x38D cmp eax,0x4 ; BUS_MCEERR_AR
        0x74, 0x0C,                                 // 0x390 je handler+0x1e
        0xEB, 0x58,                                 // 0x392 jmp handler+0x6c ; any other SIGBUS: chain
        0x83, 0xF8, 0x01,                           // 0x394 cmp eax,0x1 ; SIGSEGV: SEGV_MAPERR
        0x74, 0x05,                                 // 0x397 je handler+0x1e
        0x83, 0xF8, 0x02,                           // 0x399 cmp eax,0x2 ; SEGV_ACCERR
        0x75, 0x4E,                                 // 0x39C jne handler+0x6c
        0x48, 0x8B, 0x82, 0xA8, 0x00, 0x00, 0x00,   // 0x39E mov rax,[rdx+0xa8] ; uc_mcontext.gregs[REG_RIP]
        0x48, 0x8D, 0x0D, 0x54, 0xFC, 0xFF, 0xFF,   // 0x3A5 lea rcx,[rip+disp] ; the first copy: start of the load range
        0x48, 0x29, 0xC8,                           // 0x3AC sub rax,rcx
        0x48, 0x3D, 0x60, 0x03, 0x00, 0x00,         // 0x3AF cmp rax,0x360 ; FixupOffset: end of the load range
        0x73, 0x35,                                 // 0x3B5 jae handler+0x6c
        0x48, 0x8D, 0x05, 0xA2, 0xFF, 0xFF, 0xFF,   // 0x3B7 lea rax,[rip+disp] ; the fixup
        0x48, 0x89, 0x82, 0xA8, 0x00, 0x00, 0x00,   // 0x3BE mov [rdx+0xa8],rax ; RIP = fixup
        0x48, 0x8B, 0x46, 0x10,                     // 0x3C5 mov rax,[rsi+0x10] ; si_addr
        0x48, 0x89, 0x82, 0x88, 0x00, 0x00, 0x00,   // 0x3C9 mov [rdx+0x88],rax ; gregs[REG_RDX]
        0x0F, 0xB7, 0x46, 0x18,                     // 0x3D0 movzx eax,word [rsi+0x18] ; si_addr_lsb
        0x48, 0xC1, 0xE0, 0x20,                     // 0x3D4 shl rax,0x20
        0x8B, 0x4E, 0x08,                           // 0x3D8 mov ecx,[rsi+0x8] ; si_code
        0x48, 0x09, 0xC8,                           // 0x3DB or rax,rcx
        0x89, 0xF9,                                 // 0x3DE mov ecx,edi ; the signal number
        0x48, 0xC1, 0xE1, 0x30,                     // 0x3E0 shl rcx,0x30
        0x48, 0x09, 0xC8,                           // 0x3E4 or rax,rcx
        0x48, 0x89, 0x42, 0x70,                     // 0x3E7 mov [rdx+0x70],rax ; gregs[REG_RSI] = si_code | si_addr_lsb << 32 | signal << 48
        0xC3,                                       // 0x3EB ret ; resume at the fixup
        0x48, 0x8D, 0x05, 0x0D, 0x0C, 0x00, 0x00,   // 0x3EC lea rax,[rip+disp] ; chain: the previous handlers (data page)
        0x83, 0xFF, 0x0B,                           // 0x3F3 cmp edi,0xb
        0x75, 0x04,                                 // 0x3F6 jne handler+0x7c
        0x48, 0x83, 0xC0, 0x08,                     // 0x3F8 add rax,0x8 ; SIGSEGV's is the second
        0x48, 0x8B, 0x00,                           // 0x3FC mov rax,[rax] ; the previous handler
        0x48, 0x83, 0xF8, 0x01,                     // 0x3FF cmp rax,0x1 ; SIG_DFL (0) or SIG_IGN (1)?
        0x76, 0x02,                                 // 0x403 jbe handler+0x87
        0xFF, 0xE0,                                 // 0x405 jmp rax ; a handler: same rdi, rsi, rdx and stack
        0x49, 0x89, 0xF0,                           // 0x407 mov r8,rsi ; none: r8 = siginfo
        0x41, 0x89, 0xF9,                           // 0x40A mov r9d,edi ; r9d = signal
        0x48, 0x85, 0xC0,                           // 0x40D test rax,rax ; SIG_DFL: raise it again under SIG_DFL
        0x74, 0x11,                                 // 0x410 je handler+0xa3
        0x8B, 0x4E, 0x08,                           // 0x412 mov ecx,[rsi+0x8] ; SIG_IGN: si_code
        0x85, 0xC9,                                 // 0x415 test ecx,ecx
        0x7E, 0x41,                                 // 0x417 jle handler+0xda ; sent by a process: ignored
        0x83, 0xFF, 0x07,                           // 0x419 cmp edi,0x7
        0x75, 0x05,                                 // 0x41C jne handler+0xa3 ; SIGSEGV: a fault
        0x83, 0xF9, 0x05,                           // 0x41E cmp ecx,0x5 ; BUS_MCEERR_AO: asynchronous: ignored
        0x74, 0x37,                                 // 0x421 je handler+0xda
        0x48, 0x8D, 0x35, 0x16, 0x0C, 0x00, 0x00,   // 0x423 lea rsi,[rip+disp] ; a fault under SIG_IGN: the kernel forces SIG_DFL, and so does this
        0x31, 0xD2,                                 // 0x42A xor edx,edx
        0x41, 0xBA, 0x08, 0x00, 0x00, 0x00,         // 0x42C mov r10d,0x8 ; sizeof(kernel sigset_t)
        0xB8, 0x0D, 0x00, 0x00, 0x00,               // 0x432 mov eax,0xd ; rt_sigaction(signal, SIG_DFL, NULL)
        0x0F, 0x05,                                 // 0x437 syscall
        0xB8, 0x27, 0x00, 0x00, 0x00,               // 0x439 mov eax,0x27 ; getpid
        0x0F, 0x05,                                 // 0x43E syscall
        0x48, 0x89, 0xC7,                           // 0x440 mov rdi,rax ; tgid
        0xB8, 0xBA, 0x00, 0x00, 0x00,               // 0x443 mov eax,0xba ; gettid
        0x0F, 0x05,                                 // 0x448 syscall
        0x48, 0x89, 0xC6,                           // 0x44A mov rsi,rax ; tid
        0x44, 0x89, 0xCA,                           // 0x44D mov edx,r9d ; the signal
        0x4D, 0x89, 0xC2,                           // 0x450 mov r10,r8 ; the same siginfo
        0xB8, 0x29, 0x01, 0x00, 0x00,               // 0x453 mov eax,0x129 ; rt_tgsigqueueinfo: pending, delivered at sigreturn (or at once under SA_NODEFER): the default action ends the process
        0x0F, 0x05,                                 // 0x458 syscall
        0xC3,                                       // 0x45A ret
    ];

    /// <summary>Where the SSE2 copy starts.</summary>
    internal const int SseOffset = 0x000;

    /// <summary>Where the AVX2 copy starts.</summary>
    internal const int Avx2Offset = 0x100;

    /// <summary>Where the fixup starts: every instruction before it belongs to one of the copies (the handler's range).</summary>
    internal const int FixupOffset = 0x360;

    /// <summary>Where the signal handler starts.</summary>
    internal const int HandlerOffset = 0x380;

    // Where in the handler the two data displacements go, and the offset of the instruction after each.
    private const int PreviousHandlersDisplacement = 0x3EF - HandlerOffset;
    private const int PreviousHandlersNext = 0x3F3;
    private const int DefaultActionDisplacement = 0x426 - HandlerOffset;
    private const int DefaultActionNext = 0x42A;

    // The data page: the previous SIGBUS handler at 0, the previous SIGSEGV handler at 8, the zeroed
    // kernel sigaction (handler, flags, restorer, mask: 32 bytes) at 64.
    private const int PreviousBusHandlerData = 0;
    private const int PreviousSegvHandlerData = 8;
    private const int DefaultActionData = 64;

    /// <summary>
    /// From this length on the copy uses <c>rep movsb</c>; below it, the vector loop. Measured
    /// (bench/README.md, "Poison-safe read"): on the AMD EPYC (Zen 2, no ERMS/FSRM) this was built
    /// on, the AVX2 loop is faster than <c>rep movsb</c> at every size from 64 B to 1 MiB, so
    /// <c>rep movsb</c> is never chosen. The path stays (tested, and measured by the benchmark) for
    /// a machine where it wins.
    /// </summary>
    internal static readonly nuint DefaultRepThreshold = nuint.MaxValue;

    /// <summary>
    /// The longest piece copied in one call. Every call suppresses the GC transition (it costs more
    /// than a 64-byte copy), and a garbage collection cannot start while a thread is inside one, so
    /// a long copy is cut into pieces with a GC poll between them: a 64 KiB piece takes a few
    /// microseconds.
    /// </summary>
    internal const nuint MaxPiece = 64 * 1024;

    private static readonly SafeCopyState s_state = Install(PersistenceSettings.Current.NoGeneratedCode);

    /// <summary>The copy routine (AVX2 when the CPU has it, else SSE2), or null when it cannot be had (<see cref="Failure"/> says why).</summary>
    internal static readonly delegate* unmanaged[SuppressGCTransition]<byte*, byte*, nuint, Fault*, nuint, nuint> Routine =
        (delegate* unmanaged[SuppressGCTransition]<byte*, byte*, nuint, Fault*, nuint, nuint>)RoutineAddress(CpuFeatures.Current.Avx2);

    /// <summary>The address of the AVX2 or the SSE2 routine (0 when the safe copy is unavailable).</summary>
    internal static nint RoutineAddress(bool avx2)
        => s_state.Code == 0 ? 0 : s_state.Code + (avx2 ? Avx2Offset : SseOffset);

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

        /// <summary>si_code in bits 0-31, si_addr_lsb (meaningful for BUS_MCEERR_*) in bits 32-47, the signal number in bits 48-63.</summary>
        internal ulong CodeAndLsb;

        internal readonly int Code => (int)(uint)CodeAndLsb;

        internal readonly int Signal => (int)(CodeAndLsb >> 48);

        internal readonly int AddressLsb => (int)(ushort)(CodeAndLsb >> 32);
    }

    /// <summary>
    /// Copies <paramref name="length"/> bytes; returns how many were not copied (0: all), and on a
    /// fault fills <paramref name="fault"/>. The caller keeps both ranges mapped for the call.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static nuint Copy(byte* destination, byte* source, nuint length, out Fault fault)
        => CopyWith(Routine, destination, source, length, out fault, DefaultRepThreshold);

    /// <summary>
    /// The first half of <see cref="Copy"/> for a copy of at most <see cref="MaxPiece"/> bytes: one
    /// call of the routine, nothing else on the path (the fast path of
    /// <see cref="DaxMapping.ReadSafe"/>). When it returns non-zero, <paramref name="fault"/> is filled
    /// and the caller finishes with <see cref="CopyUpToFault(byte*, byte*, nuint, nuint, ref Fault)"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static nuint CopyPiece(byte* destination, byte* source, nuint length, Fault* fault)
    {
        Debug.Assert(length <= MaxPiece);
        return Routine(destination, source, length, fault, DefaultRepThreshold);
    }

    /// <summary>The second half of <see cref="Copy"/> after <see cref="CopyPiece"/> returned <paramref name="notCopied"/> (not 0): copies the readable bytes before the fault; returns how many were not copied.</summary>
    internal static nuint CopyUpToFault(byte* destination, byte* source, nuint length, nuint notCopied, ref Fault fault)
        => CopyUpToFault(Routine, destination, source, length, notCopied, ref fault);

    /// <summary>As <see cref="Copy"/>, through the routine at <paramref name="routine"/> (<see cref="RoutineAddress"/>) with a chosen <c>rep movsb</c> threshold: for the tests and the benchmark.</summary>
    internal static nuint CopyWith(nint routine, byte* destination, byte* source, nuint length, out Fault fault, nuint repThreshold)
        => CopyWith((delegate* unmanaged[SuppressGCTransition]<byte*, byte*, nuint, Fault*, nuint, nuint>)routine, destination, source, length, out fault, repThreshold);

    // One call through the function pointer for a copy up to MaxPiece; the JIT inlines all of it.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static nuint CopyWith(delegate* unmanaged[SuppressGCTransition]<byte*, byte*, nuint, Fault*, nuint, nuint> copy,
        byte* destination, byte* source, nuint length, out Fault fault, nuint repThreshold)
    {
        // The routine fills the record only at a fault, and nothing reads it otherwise: no zeroing
        // on the path every copy takes.
        Unsafe.SkipInit(out fault);
        nuint notCopied;
        fixed (Fault* record = &fault)
        {
            notCopied = length <= MaxPiece
                ? copy(destination, source, length, record, repThreshold)
                : CopyPieces(copy, destination, source, length, record, repThreshold);
        }
        return notCopied == 0 ? 0 : CopyUpToFault(copy, destination, source, length, notCopied, ref fault);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static nuint CopyPieces(delegate* unmanaged[SuppressGCTransition]<byte*, byte*, nuint, Fault*, nuint, nuint> copy,
        byte* destination, byte* source, nuint length, Fault* fault, nuint repThreshold)
    {
        for (nuint done = 0; done < length;)
        {
            nuint piece = Math.Min(MaxPiece, length - done);
            nuint notCopied = copy(destination + done, source + done, piece, fault, repThreshold);
            if (notCopied != 0)
            {
                return length - done - (piece - notCopied);
            }
            done += piece;
        }
        return 0;
    }

    // A wide load that straddles the fault (a 32-byte load of which only the first bytes are
    // readable), or a group of loads of which a later one faults, stores nothing (and the backward
    // loop counts nothing as stored at any fault): the bytes between
    // what was stored and the fault address are readable and are copied now, so that what a caller
    // gets is exactly "every byte before the fault". rep movsb already stops exactly at the fault,
    // and then there is no gap.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static nuint CopyUpToFault(delegate* unmanaged[SuppressGCTransition]<byte*, byte*, nuint, Fault*, nuint, nuint> copy,
        byte* destination, byte* source, nuint length, nuint notCopied, ref Fault fault)
    {
        nuint copied = length - notCopied;
        nuint faultIndex = (nuint)((byte*)fault.Address - source);
        if (faultIndex <= copied || faultIndex > length)
        {
            return notCopied; // nothing readable in between (or the fault was not in the source)
        }
        nuint gap = faultIndex - copied;
        Fault second;
        // rep movsb (threshold 0): forward and exact at a fault, whatever path met the first one (the
        // backward loop reports the highest bad address it met, not the lowest).
        nuint gapNotCopied = copy(destination + copied, source + copied, gap, &second, 0);
        if (gapNotCopied != 0)
        {
            fault = second;
        }
        return length - faultIndex + gapNotCopied;
    }

    /// <summary>Builds the code page image, the data page starting <paramref name="dataOffset"/> bytes after it (exposed for the tests that check the layout).</summary>
    internal static void Assemble(Span<byte> code, int dataOffset)
    {
        code.Fill(0xCC); // int3 everywhere else
        s_copySse.CopyTo(code[SseOffset..]);
        s_copyAvx2.CopyTo(code[Avx2Offset..]);
        s_fixup.CopyTo(code[FixupOffset..]);
        Span<byte> handler = code[HandlerOffset..];
        s_handler.CopyTo(handler);
        BitConverter.TryWriteBytes(handler[PreviousHandlersDisplacement..], dataOffset + PreviousBusHandlerData - PreviousHandlersNext);
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
        nint handler = address + HandlerOffset;
        string? failure = InstallFor(Libc.SIGBUS, handler, (nint*)(address + page + PreviousBusHandlerData))
            ?? InstallFor(Libc.SIGSEGV, handler, (nint*)(address + page + PreviousSegvHandlerData));
        if (failure is not null)
        {
            // A handler already installed stays: it chains every fault it does not own, and its page is never freed.
            return new SafeCopyState(0, failure);
        }
        return new SafeCopyState(address, null);
    }

    // Installs the handler for one signal with the flags and mask of the one it replaces, after
    // writing that one where the handler chains to; null on success, else why not.
    private static string? InstallFor(int signal, nint handler, nint* previous)
    {
        string name = signal == Libc.SIGBUS ? "SIGBUS" : "SIGSEGV";
        // glibc fills only the first 8 bytes of the mask (the kernel's 64 signals): start from zeros.
        Libc.SigActionData current = default;
        if (Libc.SigAction(signal, null, &current) != 0)
        {
            return $"sigaction({name}) to read the installed handler failed with {Errno.Name(Marshal.GetLastPInvokeError())}";
        }
        // The data is in place before the handler can run: a signal between here and the install goes to `current`.
        Volatile.Write(ref *previous, current.Handler);
        Libc.SigActionData action = current; // same mask
        action.Handler = handler;
        action.Flags = (current.Flags & ~(Libc.SA_RESETHAND | Libc.SA_RESTORER)) | Libc.SA_SIGINFO;
        action.Restorer = 0;
        Libc.SigActionData replaced = default;
        if (Libc.SigAction(signal, &action, &replaced) != 0)
        {
            return $"sigaction({name}) to install the handler failed with {Errno.Name(Marshal.GetLastPInvokeError())}";
        }
        if (replaced.Handler != current.Handler)
        {
            // Another thread installed a handler in between: chain to that one instead.
            Volatile.Write(ref *previous, replaced.Handler);
        }
        return null;
    }

    private sealed record SafeCopyState(nint Code, string? Failure);
}
