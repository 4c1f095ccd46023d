#!/usr/bin/env bash
# Checks the packages as a stranger would use them: pack, then in a brand-new project outside the
# solution `dotnet add package DirectPmem --source artifacts/packages`, build and run a program
# that creates an emulated device, maps, persists, reopens and verifies; install the dpmem tool
# from the same folder and run it; publish the quickstart with NativeAOT and run the binary.
# Prints one "consumer: <check> ok|FAILED" line per check and ends with
# "consumer: N passed, N failed". Exit code 0 only when every check passed.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

packages="$repo/artifacts/packages"
work=$(mktemp -d /tmp/directpmem-consumer.XXXXXX)
trap 'rm -rf "$work"' EXIT
# A private package cache: a stale DirectPmem of the same version must never be picked up.
export NUGET_PACKAGES="$work/nuget-packages"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

passed=0 failed=0
check() { # name, command...
  local name=$1; shift
  if "$@" >"$work/$name.log" 2>&1; then
    echo "consumer: $name ok"; passed=$((passed + 1))
  else
    echo "consumer: $name FAILED"; sed 's/^/    /' "$work/$name.log" | tail -40; failed=$((failed + 1))
  fi
}

rm -rf "$packages"
check pack dotnet pack "$repo/DirectPmem.sln" -c Release -o "$packages"
version=$(ls "$packages" | sed -n 's/^DirectPmem\.\([0-9][^/]*\)\.nupkg$/\1/p' | head -n 1)
echo "consumer: packed version ${version:-none}: $(cd "$packages" && ls | tr '\n' ' ')"
# IntelliSense docs ship beside each library (GenerateDocumentationFile must take effect before pack).
has_docs() { # package id
  unzip -l "$packages/$1.$version.nupkg" | grep -qE " lib/net10\.0/$1\.xml$"
}
check docs-in-package bash -c "$(declare -f has_docs); packages='$packages' version='$version'; has_docs DirectPmem && has_docs DirectPmem.Testing"

app="$work/app"
mkdir -p "$app"
cat >"$app/NuGet.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="local" value="$packages" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
  </packageSources>
</configuration>
XML
new_app() {
  (cd "$app" && dotnet new console --framework net10.0 --name Consumer --output . --force) &&
  (cd "$app" && dotnet add package DirectPmem --source "$packages" --version "$version")
}
check new-project-add-package new_app
cp "$repo/tests/package/ConsumerProgram.cs" "$app/Program.cs"
# The README's path with warnings as errors: the one line ConsumerProgram.cs shares with the README
# ([assembly: SupportedOSPlatform("linux")]) is all a consumer needs for zero CA1416 warnings.
check build-and-run bash -c "cd '$app' && dotnet run -c Release -p:TreatWarningsAsErrors=true -- '$work/device.dax'"

tools="$work/tools"
check tool-install dotnet tool install DirectPmem.Tool --tool-path "$tools" --add-source "$packages" --version "$version"
check tool-version bash -c "'$tools/dpmem' --version | grep -F '$version'"
check tool-list-json bash -c "'$tools/dpmem' list --json | tee /dev/stderr | head -c 1 | grep -q '\['"
check tool-list-fixture bash -c "'$tools/dpmem' list --json --sysfs '$repo/tests/DirectPmem.Tests/Fixtures/sysfs/good' | grep -q '\"chardev\"'"

aot="$work/aot"
check aot-publish bash -c "dotnet publish '$repo/samples/DirectPmem.Quickstart' -c Release -r linux-x64 -p:PublishAot=true -o '$aot' 2>&1 | tee /dev/stderr | grep -E 'warning (IL|AOT)[0-9]+' && exit 1; test -x '$aot/DirectPmem.Quickstart'"
check aot-run "$aot/DirectPmem.Quickstart"

echo "consumer: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
