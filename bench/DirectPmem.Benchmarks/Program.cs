using BenchmarkDotNet.Running;

// One idea per file; pick suites with --filter (BenchmarkDotNet's samples/ layout).
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
