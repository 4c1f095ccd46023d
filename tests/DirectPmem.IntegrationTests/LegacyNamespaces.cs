// ChildProcess was compiled into this project from DirectPmem.Tests (namespace DirectPmem.Tests.Mapping); it is in
// DirectPmem.TestSupport now. The namespace stays declared so a file that still says `using DirectPmem.Tests.Mapping;`
// compiles.
namespace DirectPmem.Tests.Mapping;
