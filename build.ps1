#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Builds, tests, demonstrates and benchmarks CrCheckpoint.
.DESCRIPTION
    The first argument names the task:
      Build  compile the engine and the cmdlets into ./bin (then Import-Module ./CrCheckpoint.psd1 works)
      Test   Build, then run the engine unit tests (xunit) and the end-to-end tests (Pester);
             ends with the line "N passed, N failed"
      Demo   Build, then checkpoint a real running program and show what the context file holds
      Bench  Build, then run the benchmarks in ./bench
      Clean  remove build output
.EXAMPLE
    dotnet tool restore; dotnet pwsh ./build.ps1 Test
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [ValidateSet('Build', 'Test', 'Demo', 'Bench', 'Clean')]
    [string] $Task = 'Build',

    # Passed to Pester's filter: run only tests whose full name matches.
    [string] $TestName,

    [ValidateSet('Release', 'Debug')]
    [string] $Configuration = 'Release'
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$Root = $PSScriptRoot
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'

function Invoke-Native {
    param([string] $File, [string[]] $Arguments)
    & $File @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$File $($Arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

function Invoke-Build {
    Invoke-Native dotnet @('publish', "$Root/src/CrCheckpoint.PowerShell/CrCheckpoint.PowerShell.csproj",
        '-c', $Configuration, '-o', "$Root/bin", '--nologo', '-v', 'quiet', '-clp:ErrorsOnly',
        # ReadyToRun: the first checkpoint in a fresh pwsh should not wait for the JIT.
        '-r', 'linux-x64', '--self-contained', 'false', '-p:PublishReadyToRun=true')
}

function Get-PesterModulePath {
    Invoke-Native dotnet @('restore', "$Root/build/Pester.Restore.csproj", '-v', 'quiet', '--nologo')
    $global = (& dotnet nuget locals global-packages --list) -replace '^global-packages:\s*', ''
    $path = Join-Path $global.Trim() 'pester/6.2.0/tools/Pester.psd1'
    if (-not (Test-Path $path)) { throw "Pester was restored but $path is missing." }
    $path
}

function Invoke-UnitTests {
    $project = "$Root/tests/CrCheckpoint.Engine.Tests/CrCheckpoint.Engine.Tests.csproj"
    if (-not (Test-Path $project)) { return [pscustomobject]@{ Passed = 0; Failed = 0; Skipped = 0 } }
    $results = Join-Path $Root 'tests/CrCheckpoint.Engine.Tests/TestResults'
    Remove-Item -Recurse -Force $results -ErrorAction Ignore
    & dotnet test $project -c $Configuration --nologo -v quiet --logger 'trx;LogFileName=unit.trx' --results-directory $results | Out-Host
    $trx = Join-Path $results 'unit.trx'
    if (-not (Test-Path $trx)) {
        # The build itself failed: count it as one failure so CI cannot pass.
        return [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0 }
    }
    $counters = ([xml](Get-Content -Raw $trx)).TestRun.ResultSummary.Counters
    [pscustomobject]@{
        Passed  = [int]$counters.passed
        Failed  = [int]$counters.failed + [int]$counters.error + [int]$counters.timeout + [int]$counters.aborted
        Skipped = [int]$counters.notExecuted
    }
}

function Invoke-EndToEndTests {
    $pester = Get-PesterModulePath
    # Pester runs in its own pwsh so that the module under test is loaded fresh, exactly as a user loads it.
    $script = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$pester' -RequiredVersion 6.2.0
`$c = New-PesterConfiguration
`$c.Run.Path = '$Root/tests/Pester'
`$c.Run.PassThru = `$true
`$c.Run.Exit = `$false
`$c.Output.Verbosity = 'Detailed'
if ('$TestName') { `$c.Filter.FullName = '*$TestName*' }
`$r = Invoke-Pester -Configuration `$c
if (-not `$r) { 'PESTER-RESULT 0 1 0'; return }
'PESTER-RESULT {0} {1} {2}' -f `$r.PassedCount, (`$r.FailedCount + `$r.FailedBlocksCount + `$r.FailedContainersCount), `$r.SkippedCount
"@
    $env:NO_COLOR = '1'
    $summary = $null
    & dotnet pwsh -NoProfile -NonInteractive -Command $script | ForEach-Object {
        if ($_ -match '^PESTER-RESULT (\d+) (\d+) (\d+)$') { $summary = $Matches } else { Write-Host $_ }
    }
    if (-not $summary) { return [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0 } }
    [pscustomobject]@{ Passed = [int]$summary[1]; Failed = [int]$summary[2]; Skipped = [int]$summary[3] }
}

Push-Location $Root
try {
    switch ($Task) {
        'Clean' {
            Remove-Item -Recurse -Force "$Root/bin", "$Root/tests/programs/build", "$Root/bench/build" -ErrorAction Ignore
            Get-ChildItem $Root -Recurse -Directory -Include obj | Remove-Item -Recurse -Force
        }
        'Build' { Invoke-Build }
        'Test' {
            Invoke-Build
            $unit = Invoke-UnitTests
            $e2e = Invoke-EndToEndTests
            $passed = $unit.Passed + $e2e.Passed
            $failed = $unit.Failed + $e2e.Failed
            $skipped = $unit.Skipped + $e2e.Skipped
            Write-Host "unit: $($unit.Passed) passed, $($unit.Failed) failed; end-to-end: $($e2e.Passed) passed, $($e2e.Failed) failed"
            if ($skipped) { Write-Host "$passed passed, $failed failed, $skipped skipped" } else { Write-Host "$passed passed, $failed failed" }
            if ($failed -gt 0) { exit 1 }
        }
        'Demo' {
            Invoke-Build
            & "$Root/demo/Demo.ps1"
            if (-not $?) { exit 1 }
        }
        'Bench' {
            Invoke-Build
            & "$Root/bench/Invoke-Benchmark.ps1"
        }
    }
}
finally {
    Pop-Location
}
