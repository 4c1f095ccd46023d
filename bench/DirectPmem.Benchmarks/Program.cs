using BenchmarkDotNet.Running;

// One idea per file; pick suites with --filter (BenchmarkDotNet's samples/ layout).
if (args.Length >= 2 && args[0] == "--interleaved")
{
    return DirectPmem.Benchmarks.Interleaved.Run(args);
}
if (args.Length >= 1 && args[0] == "--safe-read")
{
    return DirectPmem.Benchmarks.Mapping.SafeReadCost.Run(args);
}
if (args.Length >= 1 && args[0] == "--floor")
{
    return DirectPmem.Benchmarks.Floor.Run(args);
}
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
