// SizeRefusal was compiled into this project from DirectPmem.Tests (namespace DirectPmem.Tests.Support); it is in
// DirectPmem.TestSupport now. The namespace stays declared so a file that says `using DirectPmem.Tests.Support;`
// compiles.
namespace DirectPmem.Tests.Support;
