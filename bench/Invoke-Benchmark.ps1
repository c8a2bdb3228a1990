#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Benchmarks Invoke-CrCheckpoint (and Invoke-CrRestart, when the module has it) against the raw
    limit of the machine, measured in the same run.
.DESCRIPTION
    For each size (16, 256 and 1024 MiB by default) a target program (memtarget.c) fills that much
    private anonymous memory with incompressible bytes and sleeps. The script then alternates, after
    one warm-up round that is reported but not counted:
      - Invoke-CrCheckpoint -Id <target> -Path <work>/engine.ctx, in this pwsh process (fsync on);
      - rawcopy save: the same bytes read with process_vm_readv in 8 MiB pieces, write() to a file
        in the same directory, fsync of the file and of the directory (rawcopy.c).
    Files are deleted after every round. Medians are reported; the order alternates every round so
    that neither side always runs on a freshly cleaned page cache.

    Peak memory growth of the host: before each checkpoint the peak RSS of this process is reset
    (writing 5 to /proc/self/clear_refs), and afterwards VmHWM minus the VmRSS just before is the
    growth. The worst round is reported.

    A sparse case follows: 4 GiB mapped, 10 MiB touched; the image should be about 10 MiB.

    Restart (only when Invoke-CrRestart exists): each size is checkpointed once with -Kill, then
    rounds alternate Invoke-CrRestart of that image (timed around the cmdlet call; the restored
    program's memory is then verified through SIGUSR1 and killed) with rawcopy load, which reads the
    same image file into fresh anonymous memory. Both read a file the checkpoint has just written
    and synced, so both find it in the page cache: nothing is dropped from the cache (that would be
    global to the machine and would measure the disk, not the engine).

    Threads (unless -NoThreadComparison): two targets with the same memory (64 MiB by default), one with
    64 threads and one with a single thread, run side by side. Rounds alternate between them (which
    one goes first flips every round), first Invoke-CrCheckpoint of each (fsync on), then, after a
    checkpoint of each with -Kill, Invoke-CrRestart of each image (memory verified, then killed). The
    medians of the 64-thread target must be within 1.2x of those of the single-threaded one.

    Tree (unless -NoTreeComparison): a tree of 16 processes with 32 MiB of dirty memory each (memtree.c:
    a root and its children, each filling memory of its own after the fork) and one process with
    16 x 32 = 512 MiB (memtarget), run side by side. Rounds alternate between them (which one goes
    first flips every round): Invoke-CrCheckpoint of each (the tree is the default scope, so the whole
    tree goes into one context file; fsync on), then, after a checkpoint of each with -Kill,
    Invoke-CrRestart of each image (the memory of every process verified, then all killed). The
    medians of the tree must be within 1.3x of those of the single process.

    Results go to the console and to bench/results/latest.md and latest.json. Targets are reported
    as PASS or MISS; a MISS does not fail the script. Every process started here is killed, and
    every file written here removed, on the way out, failure or not.
.PARAMETER SizeMiB
    Sizes of dirty memory to checkpoint.
.PARAMETER Rounds
    Measured rounds per size (after the warm-up). 0: 7.
.PARAMETER Threads
    Threads in each target program of the size sections (main thread included).
.PARAMETER ThreadCompareThreads
    Threads of the many-threaded target of the thread comparison (against a single-threaded one).
.PARAMETER ThreadCompareMiB
    Memory of each target of the thread comparison.
.PARAMETER NoThreadComparison
    Leave out the comparison of many threads against one.
.PARAMETER ThreadComparisonOnly
    Run only the comparison of many threads against one (no warm-up, sizes, sparse case or tree).
.PARAMETER TreeProcesses
    Processes in the tree of the tree comparison (the root included).
.PARAMETER TreeMiB
    Dirty memory of each process of the tree; the single process has TreeProcesses x TreeMiB.
.PARAMETER NoTreeComparison
    Leave out the comparison of a process tree against one process.
.PARAMETER TreeComparisonOnly
    Run only the comparison of a process tree against one process (no warm-up, sizes, sparse case or threads).
.EXAMPLE
    dotnet pwsh ./build.ps1 Bench
.EXAMPLE
    dotnet pwsh -File ./bench/Invoke-Benchmark.ps1 -SizeMiB 64 -Rounds 3 -NoRestart
.EXAMPLE
    dotnet pwsh -File ./bench/Invoke-Benchmark.ps1 -ThreadComparisonOnly -Rounds 9
.EXAMPLE
    dotnet pwsh -File ./bench/Invoke-Benchmark.ps1 -TreeComparisonOnly
#>
[CmdletBinding()]
param(
    [ValidateRange(1, 65536)]
    [int[]] $SizeMiB = @(16, 256, 1024),

    [ValidateRange(0, 100)]
    [int] $Rounds = 0,

    [ValidateRange(1, 4096)]
    [int] $Threads = 1,

    [int] $SparseMappedMiB = 4096,
    [int] $SparseTouchedMiB = 10,

    [ValidateRange(2, 4096)]
    [int] $ThreadCompareThreads = 64,
    [ValidateRange(1, 65536)]
    [int] $ThreadCompareMiB = 64,

    [ValidateRange(2, 1024)]
    [int] $TreeProcesses = 16,
    [ValidateRange(1, 65536)]
    [int] $TreeMiB = 32,

    [switch] $NoSparse,
    [switch] $NoRestart,
    [switch] $NoThreadComparison,
    [switch] $ThreadComparisonOnly,
    [switch] $NoTreeComparison,
    [switch] $TreeComparisonOnly,

    # Where the context files and raw copies are written (one file system for both).
    [string] $WorkDirectory = (Join-Path $PSScriptRoot 'build/work'),
    [string] $ResultsDirectory = (Join-Path $PSScriptRoot 'results')
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$Root = Split-Path $PSScriptRoot -Parent
$BuildDirectory = Join-Path $PSScriptRoot 'build'
$Inv = [Globalization.CultureInfo]::InvariantCulture
$MiB = 1MB
# -ThreadComparisonOnly and -TreeComparisonOnly each leave out every other section.
$OneSectionOnly = $ThreadComparisonOnly -or $TreeComparisonOnly

# ---------------------------------------------------------------- helpers

function Format-Number([double] $Value, [string] $Format = 'F3') {
    if ([double]::IsNaN($Value)) { return 'n/a' }
    $Value.ToString($Format, $Inv)
}

function Get-Median([double[]] $Values) {
    if ($null -eq $Values -or $Values.Count -eq 0) { return [double]::NaN }
    $sorted = [double[]]($Values | Sort-Object)
    $n = $sorted.Count
    if ($n % 2) { return $sorted[($n - 1) / 2] }
    ($sorted[$n / 2 - 1] + $sorted[$n / 2]) / 2
}

function Get-Min([double[]] $Values) {
    if ($null -eq $Values -or $Values.Count -eq 0) { return [double]::NaN }
    ($Values | Measure-Object -Minimum).Minimum
}

function Get-Max([double[]] $Values) {
    if ($null -eq $Values -or $Values.Count -eq 0) { return [double]::NaN }
    ($Values | Measure-Object -Maximum).Maximum
}

function Get-StatusKiB([string] $Field, [string] $ProcessId = 'self') {
    foreach ($line in [IO.File]::ReadAllLines("/proc/$ProcessId/status")) {
        if ($line.StartsWith("${Field}:")) { return [long]($line.Substring($Field.Length + 1).Trim() -replace '\s*kB$', '') }
    }
    throw "no $Field in /proc/$ProcessId/status"
}

function Get-AnonymousBytes([int] $ProcessId) {
    foreach ($line in [IO.File]::ReadAllLines("/proc/$ProcessId/smaps_rollup")) {
        if ($line -match '^Anonymous:\s+(\d+) kB') { return [long]$Matches[1] * 1KB }
    }
    throw "no Anonymous line in /proc/$ProcessId/smaps_rollup"
}

# Resets this process's peak RSS (VmHWM) to its current RSS; false when the kernel refuses.
function Reset-PeakRss {
    try { [IO.File]::WriteAllText('/proc/self/clear_refs', '5'); $true } catch { $false }
}

function Test-Alive([int] $ProcessId) {
    try { $stat = [IO.File]::ReadAllText("/proc/$ProcessId/stat") } catch { return $false }
    # The state follows the command name, which is in parentheses and may contain anything.
    $state = $stat.Substring($stat.LastIndexOf(')') + 2, 1)
    $state -ne 'Z' -and $state -ne 'X'
}

function Invoke-Checked([string] $File, [string[]] $Arguments) {
    $output = & $File @Arguments 2>&1
    if ($LASTEXITCODE -ne 0) { throw "$File $($Arguments -join ' ') failed (exit $LASTEXITCODE): $output" }
    $output
}

if (-not ('CrBench.Native' -as [type])) {
    Add-Type -Namespace CrBench -Name Native -MemberDefinition @'
[System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
public static extern int kill(int pid, int sig);
[System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
public static extern int waitpid(int pid, out int status, int options);
[System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
public static extern int prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5);
'@
}
$SIGKILL = 9; $SIGUSR1 = 10; $WNOHANG = 1; $PR_SET_CHILD_SUBREAPER = 36

$script:Started = [Collections.Generic.HashSet[int]]::new()

# Kills a process and waits until it is gone: reaped if it is ours (this process is a child
# subreaper during the run), or at least a zombie, which holds no memory.
function Stop-BenchProcess([int] $ProcessId) {
    [void][CrBench.Native]::kill($ProcessId, $SIGKILL)
    $deadline = [DateTime]::UtcNow.AddSeconds(10)
    while ([DateTime]::UtcNow -lt $deadline) {
        $status = 0
        $r = [CrBench.Native]::waitpid($ProcessId, [ref]$status, $WNOHANG)
        if ($r -eq $ProcessId) { break }                # reaped
        if ($r -eq -1 -and -not (Test-Alive $ProcessId)) { break }   # not our child; dead
        Start-Sleep -Milliseconds 2
    }
    [void]$script:Started.Remove($ProcessId)
}

function Remove-WorkFile([string] $Path) {
    Remove-Item -LiteralPath $Path -Force -ErrorAction Ignore
}

# Only the files this script writes (and the engine's temporary files for them): the work
# directory may be one the user chose.
function Remove-BenchFiles {
    Get-ChildItem -LiteralPath $WorkDirectory -Force -File -ErrorAction Ignore |
        Where-Object Name -match '^\.?(engine|warmup|sparse|restart-\d+|threads-\d+|threads-restart-\d+|tree-(restart-)?(single|tree))\.ctx(\..*\.tmp)?$|^raw\.bin$|^check-(threads-)?\d+\.txt(\.tmp)?$|^tree-check-(single|\d+)\.txt(\.tmp)?$' |
        Remove-Item -Force -ErrorAction Ignore
}

# ---------------------------------------------------------------- programs

$MemTarget = Join-Path $BuildDirectory 'memtarget'
$MemTree = Join-Path $BuildDirectory 'memtree'
$RawCopy = Join-Path $BuildDirectory 'rawcopy'

function Build-Programs {
    New-Item -ItemType Directory -Force $BuildDirectory | Out-Null
    Invoke-Checked gcc @('-O2', '-Wall', '-pthread', '-o', $MemTarget, (Join-Path $PSScriptRoot 'memtarget.c')) | Out-Null
    Invoke-Checked gcc @('-O2', '-Wall', '-o', $RawCopy, (Join-Path $PSScriptRoot 'rawcopy.c')) | Out-Null
    Invoke-Checked gcc @('-O2', '-Wall', '-o', $MemTree, (Join-Path $PSScriptRoot 'memtree.c')) | Out-Null
}

function Start-MemTarget([int] $TouchedMiB, [int] $MappedMiB = $TouchedMiB, [string] $CheckFile, [int] $ThreadCount = $Threads) {
    $arguments = @('-D', '-m', "$TouchedMiB", '-M', "$MappedMiB", '-t', "$ThreadCount", '-s', "$TouchedMiB")
    if ($CheckFile) { $arguments += @('-c', $CheckFile) }
    $line = "$(Invoke-Checked $MemTarget $arguments)".Trim()
    if ($line -notmatch '^READY (\d+) (0x[0-9a-f]+) (\d+) ([0-9a-f]+)$') { throw "memtarget said: $line" }
    $target = [pscustomobject]@{
        Pid = [int]$Matches[1]; Address = $Matches[2]; Bytes = [long]$Matches[3]; Hash = $Matches[4]
        TouchedMiB = $TouchedMiB; MappedMiB = $MappedMiB; CheckFile = $CheckFile; Threads = $ThreadCount
    }
    [void]$script:Started.Add($target.Pid)
    $target
}

# A detached memtree: Pid is its root (what Invoke-CrCheckpoint is given), Pids the whole tree, root first.
function Start-MemTree([int] $Processes, [int] $EachMiB, [string] $CheckPrefix) {
    $line = "$(Invoke-Checked $MemTree @('-D', '-n', "$Processes", '-m', "$EachMiB", '-c', $CheckPrefix))".Trim()
    if ($line -notmatch '^READY (\d+(?: \d+)*)$') { throw "memtree said: $line" }
    $pids = [int[]]@($Matches[1] -split ' ')
    foreach ($p in $pids) { [void]$script:Started.Add($p) }
    if ($pids.Count -ne $Processes) { throw "memtree started $($pids.Count) processes instead of $Processes" }
    [pscustomobject]@{ Pid = $pids[0]; Pids = $pids; Processes = $Processes; EachMiB = $EachMiB; CheckPrefix = $CheckPrefix }
}

# Kills a tree, the root first: its children then belong to this process (a child subreaper), which reaps them.
function Stop-BenchTree([int[]] $Pids) {
    foreach ($p in $Pids) { Stop-BenchProcess $p }
}

# ---------------------------------------------------------------- measurements

function Measure-EngineCheckpoint($Target, [string] $File, [switch] $Kill, [switch] $NoSync) {
    Remove-WorkFile $File
    $rssBefore = Get-StatusKiB VmRSS
    $peakReset = Reset-PeakRss
    $parameters = @{ Id = $Target.Pid; Path = $File; ErrorAction = 'Stop' }
    if ($Kill) { $parameters.Kill = $true }
    if ($NoSync) { $parameters.NoSync = $true }
    $clock = [Diagnostics.Stopwatch]::StartNew()
    $result = Invoke-CrCheckpoint @parameters
    $clock.Stop()
    $peak = Get-StatusKiB VmHWM
    # Phases from the engine's timestamped messages: setup until the pages are planned, the copy, the commit.
    $at = @{}
    foreach ($m in $result.Messages) {
        if ($m -match '^\[\s*([\d.]+) ms\] (read process|wrote|context file)') { $at[$Matches[2]] = [double]::Parse($Matches[1], $Inv) / 1000 }
    }
    $phase = { param($from, $to) if ($at.ContainsKey($from) -and $at.ContainsKey($to)) { $at[$to] - $at[$from] } else { [double]::NaN } }
    [pscustomobject]@{
        Seconds       = $clock.Elapsed.TotalSeconds
        SetupSeconds  = if ($at.ContainsKey('read process')) { $at['read process'] } else { [double]::NaN }
        CopySeconds   = & $phase 'read process' 'wrote'
        SyncSeconds   = & $phase 'wrote' 'context file'
        EngineSeconds = $result.Duration.TotalSeconds
        FrozenSeconds = $result.FrozenFor.TotalSeconds
        Bytes         = [long]$result.Bytes
        MemoryBytes   = [long]$result.MemoryBytes
        PeakGrowthMiB = if ($peakReset) { [math]::Max(0, ($peak - $rssBefore)) / 1KB } else { [double]::NaN }
        Messages      = @($result.Messages)
    }
}

function Measure-RawSave($Target, [string] $File) {
    Remove-WorkFile $File
    try {
        $out = "$(Invoke-Checked $RawCopy @('save', "$($Target.Pid)", $File, "$($Target.Address):$($Target.Bytes)"))".Trim()
    }
    finally { Remove-WorkFile $File }
    $seconds, $bytes, $copy, $sync = $out -split '\s+'
    [pscustomobject]@{
        Seconds = [double]::Parse($seconds, $Inv); Bytes = [long]$bytes
        CopySeconds = [double]::Parse($copy, $Inv); SyncSeconds = [double]::Parse($sync, $Inv)
    }
}

function Measure-RawLoad([string] $File) {
    $out = "$(Invoke-Checked $RawCopy @('load', $File))".Trim()
    $seconds, $bytes = $out -split '\s+'
    [pscustomobject]@{ Seconds = [double]::Parse($seconds, $Inv); Bytes = [long]$bytes }
}

# Asks a restored memtarget to hash its memory; true when it matches what it had before the checkpoint.
function Test-TargetMemory([int] $ProcessId, [string] $CheckFile, [string] $Hash) {
    Remove-WorkFile $CheckFile
    if ([CrBench.Native]::kill($ProcessId, $SIGUSR1) -ne 0) { return "no process $ProcessId" }
    $deadline = [DateTime]::UtcNow.AddSeconds(20)
    while ([DateTime]::UtcNow -lt $deadline) {
        if (Test-Path -LiteralPath $CheckFile) {
            $answer = (Get-Content -Raw -LiteralPath $CheckFile).Trim()
            Remove-WorkFile $CheckFile
            if ($answer -match "^OK \d+ $Hash$") { return 'OK' }
            return $answer
        }
        if (-not (Test-Alive $ProcessId)) { return "process $ProcessId died" }
        Start-Sleep -Milliseconds 5
    }
    'no answer within 20 s'
}

function Measure-EngineRestart($Target, [string] $File) {
    $rssBefore = Get-StatusKiB VmRSS
    $peakReset = Reset-PeakRss
    $clock = [Diagnostics.Stopwatch]::StartNew()
    $result = Invoke-CrRestart -Path $File -ErrorAction Stop
    $clock.Stop()
    $peak = Get-StatusKiB VmHWM
    $pids = @()
    if ($result -and $result.PSObject.Properties['ProcessIds']) { $pids = @($result.ProcessIds | ForEach-Object { [int]$_ }) }
    foreach ($p in $pids) { [void]$script:Started.Add($p) }
    try {
        $check = if ($pids.Count) { Test-TargetMemory $pids[0] $Target.CheckFile $Target.Hash } else { 'no process id returned' }
    }
    finally {
        foreach ($p in $pids) { Stop-BenchProcess $p }
    }
    $duration = if ($result -and $result.PSObject.Properties['Duration'] -and $result.Duration -is [TimeSpan]) { $result.Duration.TotalSeconds } else { [double]::NaN }
    [pscustomobject]@{
        Seconds       = $clock.Elapsed.TotalSeconds
        EngineSeconds = $duration
        Verified      = $check
        PeakGrowthMiB = if ($peakReset) { [math]::Max(0, ($peak - $rssBefore)) / 1KB } else { [double]::NaN }
        Messages      = if ($result -and $result.PSObject.Properties['Messages']) { @($result.Messages) } else { @() }
    }
}

function Get-RoundCount([int] $Size) {
    if ($Rounds -gt 0) { return $Rounds }
    # The 1024 MiB rounds are as noisy as the small ones (see README.md): no fewer of them.
    7
}

# ---------------------------------------------------------------- the runs

function Invoke-CheckpointBenchmark([int] $Size) {
    $engineFile = Join-Path $WorkDirectory 'engine.ctx'
    $rawFile = Join-Path $WorkDirectory 'raw.bin'
    $target = Start-MemTarget -TouchedMiB $Size
    try {
        $dirty = Get-AnonymousBytes $target.Pid
        Write-Host ("  {0} MiB: target {1}, {2} MiB of anonymous memory" -f $Size, $target.Pid, (Format-Number ($dirty / $MiB) 'F1'))
        $rounds = Get-RoundCount $Size
        # Warm-up round: page cache, the file system's allocator. Reported apart, not counted.
        $coldEngine = Measure-EngineCheckpoint $target $engineFile
        Remove-WorkFile $engineFile
        $coldRaw = Measure-RawSave $target $rawFile
        $engine = [Collections.Generic.List[object]]::new()
        $raw = [Collections.Generic.List[object]]::new()
        for ($r = 1; $r -le $rounds; $r++) {
            $engineFirst = ($r % 2) -eq 1
            if (-not $engineFirst) { $raw.Add((Measure-RawSave $target $rawFile)) }
            $engine.Add((Measure-EngineCheckpoint $target $engineFile))
            Remove-WorkFile $engineFile
            if ($engineFirst) { $raw.Add((Measure-RawSave $target $rawFile)) }
            Write-Host ("    round {0}/{1}: engine {2} s, raw {3} s" -f $r, $rounds,
                (Format-Number $engine[-1].Seconds), (Format-Number $raw[-1].Seconds))
        }
    }
    finally {
        Stop-BenchProcess $target.Pid
        Remove-WorkFile $engineFile
        Remove-WorkFile $rawFile
    }

    $engineS = Get-Median ($engine | ForEach-Object Seconds)
    $rawS = Get-Median ($raw | ForEach-Object Seconds)
    $image = Get-Median ($engine | ForEach-Object Bytes)
    $medianRound = $engine | Sort-Object Seconds | Select-Object -Index ([int][math]::Floor(($engine.Count - 1) / 2))
    [pscustomobject]@{
        SizeMiB             = $Size
        Rounds              = $rounds
        CheckpointSeconds   = $engineS
        EngineDuration      = Get-Median ($engine | ForEach-Object EngineSeconds)
        MiBPerSecond        = $Size / $engineS
        RawSeconds          = $rawS
        RawMiBPerSecond     = $Size / $rawS
        Ratio               = $engineS / $rawS
        BestSeconds         = Get-Min ($engine | ForEach-Object Seconds)
        RawBestSeconds      = Get-Min ($raw | ForEach-Object Seconds)
        ColdSeconds         = $coldEngine.Seconds
        ColdRawSeconds      = $coldRaw.Seconds
        ImageMiB            = $image / $MiB
        DirtyMiB            = $dirty / $MiB
        OverheadPercent     = ($image - $dirty) / $dirty * 100
        FrozenSeconds       = Get-Median ($engine | ForEach-Object FrozenSeconds)
        PeakGrowthMiB       = Get-Max ($engine | ForEach-Object PeakGrowthMiB)
        ColdPeakGrowthMiB   = $coldEngine.PeakGrowthMiB
        EngineSetupSeconds  = Get-Median ($engine | ForEach-Object SetupSeconds)
        EngineCopySeconds   = Get-Median ($engine | ForEach-Object CopySeconds)
        EngineSyncSeconds   = Get-Median ($engine | ForEach-Object SyncSeconds)
        RawCopySeconds      = Get-Median ($raw | ForEach-Object CopySeconds)
        RawSyncSeconds      = Get-Median ($raw | ForEach-Object SyncSeconds)
        EngineSamples       = @($engine | ForEach-Object Seconds)
        RawSamples          = @($raw | ForEach-Object Seconds)
        EngineCopySamples   = @($engine | ForEach-Object CopySeconds)
        RawCopySamples      = @($raw | ForEach-Object CopySeconds)
        FrozenSamples       = @($engine | ForEach-Object FrozenSeconds)
        PeakGrowthSamples   = @($engine | ForEach-Object PeakGrowthMiB)
        MedianRoundMessages = @($medianRound.Messages)
        ColdMessages        = @($coldEngine.Messages)
    }
}

# The engine's code starts unoptimized (tiered JIT) and its checksum loop is several times slower
# until the runtime has recompiled it; this shows by how much and gets it over with before the
# measured rounds, which are about the steady state.
function Invoke-JitWarmup {
    $file = Join-Path $WorkDirectory 'warmup.ctx'
    $target = Start-MemTarget -TouchedMiB 64
    try {
        $runs = foreach ($i in 1..8) { Measure-EngineCheckpoint $target $file -NoSync; Remove-WorkFile $file }
    }
    finally {
        Stop-BenchProcess $target.Pid
        Remove-WorkFile $file
    }
    $last = @($runs | Select-Object -Last 3)
    [pscustomobject]@{
        SizeMiB         = 64
        FirstSeconds    = $runs[0].Seconds
        FirstCopy       = $runs[0].CopySeconds
        WarmSeconds     = Get-Median ($last | ForEach-Object Seconds)
        WarmCopy        = Get-Median ($last | ForEach-Object CopySeconds)
        CopySamples     = @($runs | ForEach-Object CopySeconds)
        FirstMessages   = @($runs[0].Messages)
    }
}

function Invoke-SparseBenchmark {
    $file = Join-Path $WorkDirectory 'sparse.ctx'
    $target = Start-MemTarget -TouchedMiB $SparseTouchedMiB -MappedMiB $SparseMappedMiB
    try {
        $dirty = Get-AnonymousBytes $target.Pid
        $runs = foreach ($i in 1..3) { Measure-EngineCheckpoint $target $file; Remove-WorkFile $file }
    }
    finally {
        Stop-BenchProcess $target.Pid
        Remove-WorkFile $file
    }
    [pscustomobject]@{
        MappedMiB         = $SparseMappedMiB
        TouchedMiB        = $SparseTouchedMiB
        DirtyMiB          = $dirty / $MiB
        ImageMiB          = (Get-Median ($runs | ForEach-Object Bytes)) / $MiB
        CheckpointSeconds = Get-Median ($runs | ForEach-Object Seconds)
        FrozenSeconds     = Get-Median ($runs | ForEach-Object FrozenSeconds)
        Messages          = @($runs[-1].Messages)
    }
}

function Invoke-RestartBenchmark([int] $Size) {
    $file = Join-Path $WorkDirectory "restart-$Size.ctx"
    $checkFile = Join-Path $WorkDirectory "check-$Size.txt"
    $target = Start-MemTarget -TouchedMiB $Size -CheckFile $checkFile
    try {
        $checkpoint = Measure-EngineCheckpoint $target $file -Kill
        Stop-BenchProcess $target.Pid   # killed by -Kill; reap it so its pid is free for the restart
        $rounds = Get-RoundCount $Size
        $coldRestart = Measure-EngineRestart $target $file
        $coldRaw = Measure-RawLoad $file
        $engine = [Collections.Generic.List[object]]::new()
        $raw = [Collections.Generic.List[object]]::new()
        for ($r = 1; $r -le $rounds; $r++) {
            $engineFirst = ($r % 2) -eq 1
            if (-not $engineFirst) { $raw.Add((Measure-RawLoad $file)) }
            $engine.Add((Measure-EngineRestart $target $file))
            if ($engineFirst) { $raw.Add((Measure-RawLoad $file)) }
            Write-Host ("    round {0}/{1}: restart {2} s ({3}), raw {4} s" -f $r, $rounds,
                (Format-Number $engine[-1].Seconds), $engine[-1].Verified, (Format-Number $raw[-1].Seconds))
        }
    }
    finally {
        if ($script:Started.Contains($target.Pid)) { Stop-BenchProcess $target.Pid }
        Remove-WorkFile $file
        Remove-WorkFile $checkFile
        Remove-WorkFile "$checkFile.tmp"
    }
    $engineS = Get-Median ($engine | ForEach-Object Seconds)
    $rawS = Get-Median ($raw | ForEach-Object Seconds)
    $all = @($coldRestart) + @($engine)
    [pscustomobject]@{
        SizeMiB         = $Size
        Rounds          = $rounds
        ImageMiB        = $checkpoint.Bytes / $MiB
        RestartSeconds  = $engineS
        EngineDuration  = Get-Median ($engine | ForEach-Object EngineSeconds)
        MiBPerSecond    = $Size / $engineS
        RawSeconds      = $rawS
        RawMiBPerSecond = $Size / $rawS
        Ratio           = $engineS / $rawS
        BestSeconds     = Get-Min ($engine | ForEach-Object Seconds)
        RawBestSeconds  = Get-Min ($raw | ForEach-Object Seconds)
        ColdSeconds     = $coldRestart.Seconds
        ColdRawSeconds  = $coldRaw.Seconds
        Verified        = @($all | Where-Object Verified -ne 'OK').Count -eq 0
        Failures        = @($all | Where-Object Verified -ne 'OK' | ForEach-Object Verified)
        PeakGrowthMiB   = Get-Max ($engine | ForEach-Object PeakGrowthMiB)
        EngineSamples   = @($engine | ForEach-Object Seconds)
        RawSamples      = @($raw | ForEach-Object Seconds)
        Messages        = @($engine[-1].Messages)
        CheckMs         = Get-Median ($engine | ForEach-Object { Get-SelfCheckMs $_.Messages })
    }
}

# The restart's self-check (what was restored, read back and compared), as the engine times it.
function Get-SelfCheckMs([string[]] $Messages) {
    foreach ($m in $Messages) { if ($m -match 'checked what was restored against the context: ([\d.]+) ms') { return [double]$Matches[1] } }
    [double]::NaN
}

# Many threads against one, same memory, same run: checkpoint rounds, then restart rounds, alternating.
function Invoke-ThreadComparison {
    $counts = @(1, $ThreadCompareThreads)
    $targets = @{}
    $files = @{}
    # The two sides differ by a few ms on operations of 30 to 60 ms, as much as the machine's noise:
    # more rounds, for a median that holds from one run to the next (a round takes a fraction of a second).
    $rounds = if ($Rounds -gt 0) { $Rounds } else { 15 }
    $checkpoints = @{}; $restarts = @{}; $coldCheckpoint = @{}; $coldRestart = @{}
    foreach ($n in $counts) {
        $checkpoints[$n] = [Collections.Generic.List[object]]::new()
        $restarts[$n] = [Collections.Generic.List[object]]::new()
    }
    try {
        foreach ($n in $counts) {
            $targets[$n] = Start-MemTarget -TouchedMiB $ThreadCompareMiB -CheckFile (Join-Path $WorkDirectory "check-threads-$n.txt") -ThreadCount $n
            $tasks = @(Get-ChildItem "/proc/$($targets[$n].Pid)/task").Count
            if ($tasks -ne $n) { throw "the $n-thread target $($targets[$n].Pid) has $tasks threads" }
            $files[$n] = Join-Path $WorkDirectory "threads-$n.ctx"
        }
        Write-Host ("  targets: {0} ({1} thread), {2} ({3} threads), {4} MiB each" -f $targets[1].Pid, 1, $targets[$ThreadCompareThreads].Pid, $ThreadCompareThreads, $ThreadCompareMiB)
        # Warm-up round of each, reported apart.
        foreach ($n in $counts) { $coldCheckpoint[$n] = Measure-EngineCheckpoint $targets[$n] $files[$n]; Remove-WorkFile $files[$n] }
        for ($r = 1; $r -le $rounds; $r++) {
            $order = if ($r % 2) { $counts } else { @($counts[1], $counts[0]) }
            foreach ($n in $order) {
                $checkpoints[$n].Add((Measure-EngineCheckpoint $targets[$n] $files[$n]))
                Remove-WorkFile $files[$n]
            }
            Write-Host ("    checkpoint round {0}/{1}: 1 thread {2} s, {3} threads {4} s" -f $r, $rounds,
                (Format-Number $checkpoints[1][-1].Seconds), $ThreadCompareThreads, (Format-Number $checkpoints[$ThreadCompareThreads][-1].Seconds))
        }
        if (-not $NoRestart -and (Get-Command Invoke-CrRestart -ErrorAction Ignore)) {
            foreach ($n in $counts) {
                $files[$n] = Join-Path $WorkDirectory "threads-restart-$n.ctx"
                $null = Measure-EngineCheckpoint $targets[$n] $files[$n] -Kill
                Stop-BenchProcess $targets[$n].Pid   # killed by -Kill; reap it so that its ids are free again
            }
            foreach ($n in $counts) { $coldRestart[$n] = Measure-EngineRestart $targets[$n] $files[$n] }
            for ($r = 1; $r -le $rounds; $r++) {
                $order = if ($r % 2) { $counts } else { @($counts[1], $counts[0]) }
                foreach ($n in $order) { $restarts[$n].Add((Measure-EngineRestart $targets[$n] $files[$n])) }
                Write-Host ("    restart round {0}/{1}: 1 thread {2} s ({3}), {4} threads {5} s ({6})" -f $r, $rounds,
                    (Format-Number $restarts[1][-1].Seconds), $restarts[1][-1].Verified, $ThreadCompareThreads,
                    (Format-Number $restarts[$ThreadCompareThreads][-1].Seconds), $restarts[$ThreadCompareThreads][-1].Verified)
            }
        }
    }
    finally {
        foreach ($n in $counts) {
            if ($targets[$n] -and $script:Started.Contains($targets[$n].Pid)) { Stop-BenchProcess $targets[$n].Pid }
            if ($files[$n]) { Remove-WorkFile $files[$n] }
            Remove-WorkFile (Join-Path $WorkDirectory "threads-$n.ctx")
            Remove-WorkFile (Join-Path $WorkDirectory "check-threads-$n.txt")
            Remove-WorkFile (Join-Path $WorkDirectory "check-threads-$n.txt.tmp")
        }
    }
    $rows = foreach ($n in $counts) {
        $all = @($coldRestart[$n]) + @($restarts[$n]) | Where-Object { $null -ne $_ }
        [pscustomobject]@{
            Threads               = $n
            Rounds                = $rounds
            CheckpointSeconds     = Get-Median ($checkpoints[$n] | ForEach-Object Seconds)
            CheckpointBestSeconds = Get-Min ($checkpoints[$n] | ForEach-Object Seconds)
            CheckpointColdSeconds = $coldCheckpoint[$n].Seconds
            SetupSeconds          = Get-Median ($checkpoints[$n] | ForEach-Object SetupSeconds)
            FrozenSeconds         = Get-Median ($checkpoints[$n] | ForEach-Object FrozenSeconds)
            ImageMiB              = (Get-Median ($checkpoints[$n] | ForEach-Object Bytes)) / $MiB
            RestartSeconds        = if ($restarts[$n].Count) { Get-Median ($restarts[$n] | ForEach-Object Seconds) } else { [double]::NaN }
            RestartBestSeconds    = if ($restarts[$n].Count) { Get-Min ($restarts[$n] | ForEach-Object Seconds) } else { [double]::NaN }
            RestartColdSeconds    = if ($coldRestart[$n]) { $coldRestart[$n].Seconds } else { [double]::NaN }
            Verified              = $restarts[$n].Count -gt 0 -and @($all | Where-Object Verified -ne 'OK').Count -eq 0
            Failures              = @($all | Where-Object Verified -ne 'OK' | ForEach-Object Verified)
            CheckpointSamples     = @($checkpoints[$n] | ForEach-Object Seconds)
            RestartSamples        = @($restarts[$n] | ForEach-Object Seconds)
            CheckpointMessages    = @($checkpoints[$n] | Select-Object -Last 1 | ForEach-Object Messages)
            RestartMessages       = @($restarts[$n] | Select-Object -Last 1 | ForEach-Object Messages)
        }
    }
    $one = $rows | Where-Object Threads -eq 1
    $many = $rows | Where-Object Threads -eq $ThreadCompareThreads
    [pscustomobject]@{
        MiB             = $ThreadCompareMiB
        Threads         = $ThreadCompareThreads
        Rows            = @($rows)
        CheckpointRatio = $many.CheckpointSeconds / $one.CheckpointSeconds
        RestartRatio    = $many.RestartSeconds / $one.RestartSeconds
        Restarted       = $restarts[1].Count -gt 0
    }
}

# Asks every process of a (restored) memtree to hash its memory: SIGUSR1 to the root, which passes it on.
# 'OK' when each of them answered that its memory is what it was; otherwise the first problem.
function Test-TreeMemory([int[]] $Pids, [string] $CheckPrefix) {
    foreach ($p in $Pids) { Remove-WorkFile "$CheckPrefix-$p.txt" }
    if ([CrBench.Native]::kill($Pids[0], $SIGUSR1) -ne 0) { return "no process $($Pids[0])" }
    $deadline = [DateTime]::UtcNow.AddSeconds(30)
    $pending = [Collections.Generic.List[int]]::new([int[]]$Pids)
    while ($pending.Count -and [DateTime]::UtcNow -lt $deadline) {
        foreach ($p in @($pending)) {
            $file = "$CheckPrefix-$p.txt"
            if (-not (Test-Path -LiteralPath $file)) {
                if (-not (Test-Alive $p)) { return "process $p died" }
                continue
            }
            $answer = (Get-Content -Raw -LiteralPath $file).Trim()
            Remove-WorkFile $file
            if ($answer -notmatch "^OK $p [0-9a-f]{16}$") { return $answer }
            [void]$pending.Remove($p)
        }
        if ($pending.Count) { Start-Sleep -Milliseconds 5 }
    }
    if ($pending.Count) { return "no answer within 30 s from $($pending -join ', ')" }
    'OK'
}

# Invoke-CrRestart of a memtree image, timed around the cmdlet; then the memory of every process is
# verified and the whole tree killed (root first), so that the next round gets the same pids.
function Measure-TreeRestart($Tree, [string] $File) {
    $clock = [Diagnostics.Stopwatch]::StartNew()
    $result = Invoke-CrRestart -Path $File -ErrorAction Stop
    $clock.Stop()
    $pids = @($result.ProcessIds | ForEach-Object { [int]$_ })
    foreach ($p in $pids) { [void]$script:Started.Add($p) }
    try {
        $check = if ($pids.Count -ne $Tree.Processes) { "$($pids.Count) processes restarted instead of $($Tree.Processes)" }
                 elseif ($pids[0] -ne $Tree.Pid) { "the first restarted process is $($pids[0]), not the root $($Tree.Pid)" }
                 else { Test-TreeMemory $pids $Tree.CheckPrefix }
    }
    finally {
        Stop-BenchTree $pids
    }
    [pscustomobject]@{
        Seconds       = $clock.Elapsed.TotalSeconds
        EngineSeconds = $result.Duration.TotalSeconds
        Verified      = $check
        Messages      = @($result.Messages)
    }
}

# A tree of TreeProcesses x TreeMiB against one process of the same total memory, same run: checkpoint
# rounds, then restart rounds, alternating between the two.
function Invoke-TreeComparison {
    $singleMiB = $TreeProcesses * $TreeMiB
    $kinds = @('single', 'tree')
    $rounds = Get-RoundCount $singleMiB
    $targets = @{}; $files = @{}
    $checkpoints = @{}; $restarts = @{}; $coldCheckpoint = @{}; $coldRestart = @{}
    foreach ($k in $kinds) {
        $checkpoints[$k] = [Collections.Generic.List[object]]::new()
        $restarts[$k] = [Collections.Generic.List[object]]::new()
    }
    $measureRestart = @{
        single = { param($file) Measure-EngineRestart $targets.single $file }
        tree   = { param($file) Measure-TreeRestart $targets.tree $file }
    }
    try {
        $targets.single = Start-MemTarget -TouchedMiB $singleMiB -CheckFile (Join-Path $WorkDirectory 'tree-check-single.txt') -ThreadCount 1
        $targets.tree = Start-MemTree -Processes $TreeProcesses -EachMiB $TreeMiB -CheckPrefix (Join-Path $WorkDirectory 'tree-check')
        foreach ($k in $kinds) { $files[$k] = Join-Path $WorkDirectory "tree-$k.ctx" }
        Write-Host ("  targets: {0} (one process, {1} MiB), {2} (root of {3} processes, {4} MiB each)" -f $targets.single.Pid, $singleMiB, $targets.tree.Pid, $TreeProcesses, $TreeMiB)
        # Warm-up round of each, reported apart.
        foreach ($k in $kinds) { $coldCheckpoint[$k] = Measure-EngineCheckpoint $targets[$k] $files[$k]; Remove-WorkFile $files[$k] }
        for ($r = 1; $r -le $rounds; $r++) {
            $order = if ($r % 2) { $kinds } else { @($kinds[1], $kinds[0]) }
            foreach ($k in $order) {
                $checkpoints[$k].Add((Measure-EngineCheckpoint $targets[$k] $files[$k]))
                Remove-WorkFile $files[$k]
            }
            Write-Host ("    checkpoint round {0}/{1}: one process {2} s, tree {3} s" -f $r, $rounds,
                (Format-Number $checkpoints.single[-1].Seconds), (Format-Number $checkpoints.tree[-1].Seconds))
        }
        if (-not $NoRestart -and (Get-Command Invoke-CrRestart -ErrorAction Ignore)) {
            foreach ($k in $kinds) {
                $files[$k] = Join-Path $WorkDirectory "tree-restart-$k.ctx"
                $null = Measure-EngineCheckpoint $targets[$k] $files[$k] -Kill
            }
            # Killed by -Kill; reap them (root first) so that their pids are free again.
            Stop-BenchProcess $targets.single.Pid
            Stop-BenchTree $targets.tree.Pids
            foreach ($k in $kinds) { $coldRestart[$k] = & $measureRestart[$k] $files[$k] }
            for ($r = 1; $r -le $rounds; $r++) {
                $order = if ($r % 2) { $kinds } else { @($kinds[1], $kinds[0]) }
                foreach ($k in $order) { $restarts[$k].Add((& $measureRestart[$k] $files[$k])) }
                Write-Host ("    restart round {0}/{1}: one process {2} s ({3}), tree {4} s ({5})" -f $r, $rounds,
                    (Format-Number $restarts.single[-1].Seconds), $restarts.single[-1].Verified,
                    (Format-Number $restarts.tree[-1].Seconds), $restarts.tree[-1].Verified)
            }
        }
    }
    finally {
        if ($targets.single -and $script:Started.Contains($targets.single.Pid)) { Stop-BenchProcess $targets.single.Pid }
        if ($targets.tree) { Stop-BenchTree @($targets.tree.Pids | Where-Object { $script:Started.Contains($_) }) }
        foreach ($k in $kinds) {
            Remove-WorkFile (Join-Path $WorkDirectory "tree-$k.ctx")
            Remove-WorkFile (Join-Path $WorkDirectory "tree-restart-$k.ctx")
        }
        Get-ChildItem -LiteralPath $WorkDirectory -Force -File -ErrorAction Ignore |
            Where-Object Name -match '^tree-check-(single|\d+)\.txt(\.tmp)?$' | Remove-Item -Force -ErrorAction Ignore
    }
    $rows = foreach ($k in $kinds) {
        $all = @($coldRestart[$k]) + @($restarts[$k]) | Where-Object { $null -ne $_ }
        [pscustomobject]@{
            Target                = $k
            Processes             = if ($k -eq 'tree') { $TreeProcesses } else { 1 }
            MiBEach               = if ($k -eq 'tree') { $TreeMiB } else { $singleMiB }
            Rounds                = $rounds
            CheckpointSeconds     = Get-Median ($checkpoints[$k] | ForEach-Object Seconds)
            CheckpointBestSeconds = Get-Min ($checkpoints[$k] | ForEach-Object Seconds)
            CheckpointColdSeconds = $coldCheckpoint[$k].Seconds
            SetupSeconds          = Get-Median ($checkpoints[$k] | ForEach-Object SetupSeconds)
            FrozenSeconds         = Get-Median ($checkpoints[$k] | ForEach-Object FrozenSeconds)
            ImageMiB              = (Get-Median ($checkpoints[$k] | ForEach-Object Bytes)) / $MiB
            PeakGrowthMiB         = Get-Max ($checkpoints[$k] | ForEach-Object PeakGrowthMiB)
            RestartSeconds        = if ($restarts[$k].Count) { Get-Median ($restarts[$k] | ForEach-Object Seconds) } else { [double]::NaN }
            RestartBestSeconds    = if ($restarts[$k].Count) { Get-Min ($restarts[$k] | ForEach-Object Seconds) } else { [double]::NaN }
            RestartColdSeconds    = if ($coldRestart[$k]) { $coldRestart[$k].Seconds } else { [double]::NaN }
            Verified              = $restarts[$k].Count -gt 0 -and @($all | Where-Object Verified -ne 'OK').Count -eq 0
            Failures              = @($all | Where-Object Verified -ne 'OK' | ForEach-Object Verified)
            CheckpointSamples     = @($checkpoints[$k] | ForEach-Object Seconds)
            RestartSamples        = @($restarts[$k] | ForEach-Object Seconds)
            CheckpointMessages    = @($checkpoints[$k] | Select-Object -Last 1 | ForEach-Object Messages)
            RestartMessages       = @($restarts[$k] | Select-Object -Last 1 | ForEach-Object Messages)
        }
    }
    $one = $rows | Where-Object Target -eq 'single'
    $tree = $rows | Where-Object Target -eq 'tree'
    [pscustomobject]@{
        Processes       = $TreeProcesses
        MiBEach         = $TreeMiB
        SingleMiB       = $singleMiB
        Rows            = @($rows)
        CheckpointRatio = $tree.CheckpointSeconds / $one.CheckpointSeconds
        RestartRatio    = $tree.RestartSeconds / $one.RestartSeconds
        Restarted       = $restarts.single.Count -gt 0
    }
}

# ---------------------------------------------------------------- report

function Format-MarkdownTable([string[]] $Header, [object[]] $Rows, [int] $TextColumns = 0) {
    # The first $TextColumns columns are text (left aligned), the others numbers (right aligned).
    $Rows = @($Rows | Where-Object { $null -ne $_ })
    $widths = for ($i = 0; $i -lt $Header.Count; $i++) {
        [math]::Max($Header[$i].Length, (@($Rows | ForEach-Object { "$($_[$i])".Length }) + 0 | Measure-Object -Maximum).Maximum)
    }
    $line = {
        param($cells)
        '| ' + (@(for ($i = 0; $i -lt $cells.Count; $i++) {
                    if ($i -lt $TextColumns) { "$($cells[$i])".PadRight($widths[$i]) } else { "$($cells[$i])".PadLeft($widths[$i]) }
                }) -join ' | ') + ' |'
    }
    & $line $Header
    '|' + (@(for ($i = 0; $i -lt $widths.Count; $i++) {
                if ($i -lt $TextColumns) { ':' + '-' * ($widths[$i] + 1) } else { '-' * ($widths[$i] + 1) + ':' }
            }) -join '|') + '|'
    foreach ($row in $Rows) { & $line $row }
}

function Get-Verdict([bool] $Met) { if ($Met) { 'PASS' } else { 'MISS' } }

# ---------------------------------------------------------------- main

$runStarted = [DateTime]::UtcNow
$subreaper = $false
$createdWorkDirectory = $false
$checkpoints = @()
$sparse = $null
$jit = $null
$restarts = @()
$restartNote = $null
$threadComparison = $null
$treeComparison = $null
$errors = [Collections.Generic.List[string]]::new()

try {
    if (-not (Get-Command Invoke-CrCheckpoint -ErrorAction Ignore)) {
        Import-Module (Join-Path $Root 'CrCheckpoint.psd1') -Force
    }
    Build-Programs
    $WorkDirectory = [IO.Path]::GetFullPath($WorkDirectory)
    $createdWorkDirectory = -not (Test-Path -LiteralPath $WorkDirectory)
    New-Item -ItemType Directory -Force $WorkDirectory | Out-Null
    Remove-BenchFiles
    # Orphans (the detached targets, restored programs) come back to this process, so they can be reaped.
    $subreaper = [CrBench.Native]::prctl($PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) -eq 0
    if (-not (Reset-PeakRss)) { Write-Warning 'cannot reset the peak RSS (/proc/self/clear_refs): peak memory growth is not measured' }

    if (-not $OneSectionOnly) {
        Write-Host 'Warm-up: eight checkpoints of 64 MiB (-NoSync)'
        try { $jit = Invoke-JitWarmup }
        catch { $errors.Add("warm-up: $_"); Write-Warning "warm-up failed: $_" }

        Write-Host "Checkpoint: engine (Invoke-CrCheckpoint, fsync) against raw process_vm_readv + write + fsync, $Threads thread(s) per target"
        $checkpoints = foreach ($size in $SizeMiB) {
            try { Invoke-CheckpointBenchmark $size }
            catch { $errors.Add("checkpoint $size MiB: $_"); Write-Warning "checkpoint $size MiB failed: $_" }
        }
    }

    if (-not $NoSparse -and -not $OneSectionOnly) {
        Write-Host "Sparse: $SparseMappedMiB MiB mapped, $SparseTouchedMiB MiB touched"
        try { $sparse = Invoke-SparseBenchmark }
        catch { $errors.Add("sparse: $_"); Write-Warning "sparse case failed: $_" }
    }

    if ($NoRestart) {
        $restartNote = 'restart section skipped (-NoRestart)'
    }
    elseif ($ThreadComparisonOnly) {
        $restartNote = 'restart section skipped (-ThreadComparisonOnly)'
    }
    elseif ($TreeComparisonOnly) {
        $restartNote = 'restart section skipped (-TreeComparisonOnly)'
    }
    elseif (-not (Get-Command Invoke-CrRestart -ErrorAction Ignore)) {
        $restartNote = 'restart section skipped: this build of the module has no Invoke-CrRestart yet'
    }
    else {
        Write-Host 'Restart: engine (Invoke-CrRestart) against raw read of the same image into fresh anonymous memory'
        $restarts = foreach ($size in $SizeMiB) {
            try { Invoke-RestartBenchmark $size }
            catch { $errors.Add("restart $size MiB: $_"); Write-Warning "restart $size MiB failed: $_" }
        }
    }

    if (-not $NoThreadComparison -and -not $TreeComparisonOnly) {
        Write-Host "Threads: $ThreadCompareThreads threads against 1, $ThreadCompareMiB MiB each, checkpoint and restart rounds alternating"
        try { $threadComparison = Invoke-ThreadComparison }
        catch { $errors.Add("threads: $_"); Write-Warning "thread comparison failed: $_" }
    }

    if (-not $NoTreeComparison -and -not $ThreadComparisonOnly) {
        Write-Host "Tree: $TreeProcesses processes of $TreeMiB MiB against one process of $($TreeProcesses * $TreeMiB) MiB, checkpoint and restart rounds alternating"
        try { $treeComparison = Invoke-TreeComparison }
        catch { $errors.Add("tree: $_"); Write-Warning "tree comparison failed: $_" }
    }
}
finally {
    foreach ($p in @($script:Started)) { Stop-BenchProcess $p }
    if ($subreaper) { [void][CrBench.Native]::prctl($PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) }
    if (Test-Path -LiteralPath $WorkDirectory) {
        Remove-BenchFiles
        if ($createdWorkDirectory) { Remove-Item -LiteralPath $WorkDirectory -Force -ErrorAction Ignore }   # only if empty
    }
}

# The report, also written to results/latest.md and latest.json.
$cpu = (Get-Content /proc/cpuinfo | Where-Object { $_ -like 'model name*' } | Select-Object -First 1) -replace '^model name\s*:\s*', ''
$memTotalGiB = [math]::Round([long]((Get-Content /proc/meminfo | Where-Object { $_ -like 'MemTotal:*' }) -replace '\D', '') / 1MB)
$commit = try { (& git -C $Root rev-parse --short HEAD 2>$null) } catch { $null }
$md = [Collections.Generic.List[string]]::new()
$md.Add('# CrCheckpoint benchmark')
$md.Add('')
$md.Add(('{0:u}, commit {1}, kernel {2}, {3} x {4}, {5} GiB; {6} thread(s) per target' -f $runStarted, $commit,
    ([IO.File]::ReadAllText('/proc/sys/kernel/osrelease').Trim()), [Environment]::ProcessorCount, $cpu,
    $memTotalGiB, $Threads))
$md.Add('')
if (-not $OneSectionOnly) {
    $md.Add('## Checkpoint')
    $md.Add('')
    if ($jit) {
        $md.Add(('JIT: the first checkpoint of {0} MiB in this pwsh took {1} s (copy phase {2} ms); after seven more, {3} s (copy phase {4} ms). Copy phases in order (ms): {5}.' -f
                $jit.SizeMiB, (Format-Number $jit.FirstSeconds), (Format-Number ($jit.FirstCopy * 1000) 'F1'), (Format-Number $jit.WarmSeconds),
                (Format-Number ($jit.WarmCopy * 1000) 'F1'), (@($jit.CopySamples | ForEach-Object { Format-Number ($_ * 1000) 'F0' }) -join ', ')))
        $md.Add('')
    }
    $md.Add('Medians of the measured rounds (engine and raw copy alternating); "warm-up s" is the round before them. MiB/s counts the dirty MiB. Peak growth is the worst round.')
    $md.Add('')
    $rows = [Collections.Generic.List[object]]::new()
    foreach ($c in $checkpoints) {
        $rows.Add(@("$($c.SizeMiB)", "$($c.Rounds)", (Format-Number $c.CheckpointSeconds), (Format-Number $c.MiBPerSecond 'F0'),
            (Format-Number $c.RawSeconds), (Format-Number $c.RawMiBPerSecond 'F0'), (Format-Number $c.Ratio 'F2'),
            (Format-Number $c.ColdSeconds), (Format-Number $c.ImageMiB 'F2'), (Format-Number $c.DirtyMiB 'F2'),
            (Format-Number $c.OverheadPercent 'F2'), (Format-Number $c.FrozenSeconds), (Format-Number $c.PeakGrowthMiB 'F1')))
    }
    foreach ($l in (Format-MarkdownTable @('MiB', 'rounds', 'checkpoint s', 'MiB/s', 'raw s', 'raw MiB/s', 'engine/raw',
                'warm-up s', 'image MiB', 'dirty MiB', 'overhead %', 'frozen s', 'peak growth MiB') $rows)) { $md.Add($l) }
    $md.Add('')
    $md.Add('Best rounds (the least disturbed by the machine) and phases, medians in ms: the engine from its timestamped messages (setup: until the pages are planned, copy: process_vm_readv + checksum + write, sync: fsync and rename), rawcopy from its own clock (copy: process_vm_readv + write, sync: fsync).')
    $md.Add('')
    $rows = [Collections.Generic.List[object]]::new()
    foreach ($c in $checkpoints) {
        $rows.Add(@("$($c.SizeMiB)", (Format-Number $c.BestSeconds), (Format-Number $c.RawBestSeconds), (Format-Number ($c.BestSeconds / $c.RawBestSeconds) 'F2'),
                (Format-Number ($c.EngineSetupSeconds * 1000) 'F1'), (Format-Number ($c.EngineCopySeconds * 1000) 'F1'),
                (Format-Number ($c.EngineSyncSeconds * 1000) 'F1'), (Format-Number ($c.RawCopySeconds * 1000) 'F1'), (Format-Number ($c.RawSyncSeconds * 1000) 'F1')))
    }
    foreach ($l in (Format-MarkdownTable @('MiB', 'best s', 'raw best s', 'best engine/raw', 'engine setup', 'engine copy', 'engine sync', 'raw copy', 'raw sync') $rows)) { $md.Add($l) }
    $md.Add('')
    if ($sparse) {
        $md.Add(('Sparse: {0} MiB mapped, {1} MiB touched ({2} MiB anonymous in the process): image {3} MiB, checkpoint {4} s, frozen {5} s.' -f
                $sparse.MappedMiB, $sparse.TouchedMiB, (Format-Number $sparse.DirtyMiB 'F2'), (Format-Number $sparse.ImageMiB 'F2'),
                (Format-Number $sparse.CheckpointSeconds), (Format-Number $sparse.FrozenSeconds)))
        $md.Add('')
    }

    $md.Add('## Restart')
    $md.Add('')
    if ($restartNote) {
        $md.Add($restartNote + '.')
    }
    else {
        $md.Add('Medians; restart s is the wall time of the Invoke-CrRestart call; raw reads the same (cached) image file into fresh anonymous memory; "warm-up s" is the round before them. Verified: every restored program had its memory intact (checksum through SIGUSR1).')
        $md.Add('')
        $rows = [Collections.Generic.List[object]]::new()
        foreach ($r in $restarts) {
            $rows.Add(@("$($r.SizeMiB)", "$($r.Rounds)", (Format-Number $r.RestartSeconds), (Format-Number $r.MiBPerSecond 'F0'),
                (Format-Number $r.RawSeconds), (Format-Number $r.RawMiBPerSecond 'F0'), (Format-Number $r.Ratio 'F2'),
                (Format-Number ($r.BestSeconds / $r.RawBestSeconds) 'F2'), (Format-Number $r.ColdSeconds), $(if ($r.Verified) { 'yes' } else { 'NO' }), (Format-Number $r.PeakGrowthMiB 'F1')))
        }
        foreach ($l in (Format-MarkdownTable @('MiB', 'rounds', 'restart s', 'MiB/s', 'raw s', 'raw MiB/s', 'engine/raw', 'best engine/raw', 'warm-up s', 'verified', 'peak growth MiB') $rows)) { $md.Add($l) }
    }
    $md.Add('')
}

if ($threadComparison) {
    $tc = $threadComparison
    $md.Add('## Threads')
    $md.Add('')
    $md.Add(('{0} threads against 1, {1} MiB of dirty memory each (the extra threads idle in pause()), the two targets alive side by side; rounds alternate between them. Medians of {2} rounds; "warm-up s" is the round before them. Checkpoint with fsync; restart s is the wall time of Invoke-CrRestart, the memory then verified through SIGUSR1.' -f
            $tc.Threads, $tc.MiB, $tc.Rows[0].Rounds))
    $md.Add('')
    $rows = [Collections.Generic.List[object]]::new()
    foreach ($r in $tc.Rows) {
        $rows.Add(@("$($r.Threads)", "$($r.Rounds)", (Format-Number $r.CheckpointSeconds), (Format-Number $r.CheckpointBestSeconds),
                (Format-Number $r.CheckpointColdSeconds), (Format-Number ($r.SetupSeconds * 1000) 'F1'), (Format-Number $r.FrozenSeconds),
                (Format-Number $r.ImageMiB 'F2'), (Format-Number $r.RestartSeconds), (Format-Number $r.RestartBestSeconds),
                (Format-Number $r.RestartColdSeconds), $(if (-not $tc.Restarted) { 'n/a' } elseif ($r.Verified) { 'yes' } else { 'NO' })))
    }
    $rows.Add(@("$($tc.Threads)/1", '', (Format-Number $tc.CheckpointRatio 'F2'), (Format-Number ($tc.Rows[1].CheckpointBestSeconds / $tc.Rows[0].CheckpointBestSeconds) 'F2'),
            '', '', (Format-Number ($tc.Rows[1].FrozenSeconds / $tc.Rows[0].FrozenSeconds) 'F2'), '', (Format-Number $tc.RestartRatio 'F2'),
            (Format-Number ($tc.Rows[1].RestartBestSeconds / $tc.Rows[0].RestartBestSeconds) 'F2'), '', ''))
    foreach ($l in (Format-MarkdownTable @('threads', 'rounds', 'checkpoint s', 'best s', 'warm-up s', 'setup ms', 'frozen s', 'image MiB', 'restart s', 'best s', 'warm-up s', 'verified') $rows 1)) { $md.Add($l) }
    $md.Add('')
    $md.Add('Reference on a machine of this kind (from the issue, not measured here): CRIU 4.2 checkpoints an 8-thread program in 56 ms and restores it in 39 ms.')
    $md.Add('')
}

if ($treeComparison) {
    $tr = $treeComparison
    $md.Add('## Tree')
    $md.Add('')
    $md.Add(('A tree of {0} processes with {1} MiB of dirty memory each (memtree: a root and its children, each filling memory of its own after the fork) against one process with {2} MiB (memtarget), alive side by side; rounds alternate between them. Medians of {3} rounds; "warm-up s" is the round before them. Checkpoint of the root (the whole tree, one context file) with fsync; restart s is the wall time of Invoke-CrRestart, the memory of every process then verified through SIGUSR1.' -f
            $tr.Processes, $tr.MiBEach, $tr.SingleMiB, $tr.Rows[0].Rounds))
    $md.Add('')
    $rows = [Collections.Generic.List[object]]::new()
    foreach ($r in $tr.Rows) {
        $rows.Add(@("$(if ($r.Target -eq 'tree') { "tree, $($r.Processes) x $($r.MiBEach) MiB" } else { "1 process, $($r.MiBEach) MiB" })", "$($r.Rounds)",
                (Format-Number $r.CheckpointSeconds), (Format-Number $r.CheckpointBestSeconds), (Format-Number $r.CheckpointColdSeconds),
                (Format-Number ($r.SetupSeconds * 1000) 'F1'), (Format-Number $r.FrozenSeconds), (Format-Number $r.ImageMiB 'F2'),
                (Format-Number $r.PeakGrowthMiB 'F1'), (Format-Number $r.RestartSeconds), (Format-Number $r.RestartBestSeconds),
                (Format-Number $r.RestartColdSeconds), $(if (-not $tr.Restarted) { 'n/a' } elseif ($r.Verified) { 'yes' } else { 'NO' })))
    }
    $rows.Add(@('tree/single', '', (Format-Number $tr.CheckpointRatio 'F2'), (Format-Number ($tr.Rows[1].CheckpointBestSeconds / $tr.Rows[0].CheckpointBestSeconds) 'F2'),
            '', '', (Format-Number ($tr.Rows[1].FrozenSeconds / $tr.Rows[0].FrozenSeconds) 'F2'), '', '', (Format-Number $tr.RestartRatio 'F2'),
            (Format-Number ($tr.Rows[1].RestartBestSeconds / $tr.Rows[0].RestartBestSeconds) 'F2'), '', ''))
    foreach ($l in (Format-MarkdownTable @('target', 'rounds', 'checkpoint s', 'best s', 'warm-up s', 'setup ms', 'frozen s', 'image MiB', 'peak growth MiB', 'restart s', 'best s', 'warm-up s', 'verified') $rows 1)) { $md.Add($l) }
    $md.Add('')
}

$md.Add('## Targets')
$md.Add('')
$targets = [Collections.Generic.List[object]]::new()
function Add-Target([string] $Name, $Met, [string] $Measured) {
    $verdict = if ($null -eq $Met) { 'n/a' } else { Get-Verdict $Met }
    $targets.Add([pscustomobject]@{ Target = $Name; Verdict = $verdict; Measured = $Measured })
}
if (-not $OneSectionOnly) {
    $big = $checkpoints | Where-Object SizeMiB -eq 1024
    if ($big) { Add-Target 'checkpoint 1024 MiB within 1.2x the raw limit' ($big.Ratio -le 1.2) "median $(Format-Number $big.Ratio 'F2')x (best rounds $(Format-Number ($big.BestSeconds / $big.RawBestSeconds) 'F2')x)" }
    else { Add-Target 'checkpoint 1024 MiB within 1.2x the raw limit' $null 'not measured' }
    if ($checkpoints) {
        $worst = $checkpoints | Sort-Object OverheadPercent -Descending | Select-Object -First 1
        Add-Target 'image at most 2% larger than the dirty memory' ($worst.OverheadPercent -le 2) "worst $(Format-Number $worst.OverheadPercent 'F2')% ($($worst.SizeMiB) MiB)"
        $worstPeak = $checkpoints | Sort-Object { [math]::Max($_.PeakGrowthMiB, $_.ColdPeakGrowthMiB) } -Descending | Select-Object -First 1
        $peakValue = [math]::Max($worstPeak.PeakGrowthMiB, $worstPeak.ColdPeakGrowthMiB)
        Add-Target 'peak memory growth under 128 MiB' ($peakValue -lt 128) "worst $(Format-Number $peakValue 'F1') MiB ($($worstPeak.SizeMiB) MiB, warm-up round included)"
    }
    if ($sparse) {
        Add-Target "$SparseMappedMiB MiB mapped, $SparseTouchedMiB MiB touched: image about $SparseTouchedMiB MiB (within 10%)" ($sparse.ImageMiB -le $SparseTouchedMiB * 1.1) "$(Format-Number $sparse.ImageMiB 'F2') MiB"
    }
    if ($restartNote) {
        Add-Target 'restart 1024 MiB within 1.2x the raw limit' $null $restartNote
        Add-Target 'restart of a 16 MiB program under 50 ms' $null $restartNote
    }
    else {
        $bigR = $restarts | Where-Object SizeMiB -eq 1024
        if ($bigR) { Add-Target 'restart 1024 MiB within 1.2x the raw limit' ($bigR.Ratio -le 1.2 -and $bigR.Verified) "median $(Format-Number $bigR.Ratio 'F2')x (best rounds $(Format-Number ($bigR.BestSeconds / $bigR.RawBestSeconds) 'F2')x)$(if (-not $bigR.Verified) { ', memory NOT verified' })" }
        $smallR = $restarts | Where-Object SizeMiB -eq 16
        if ($smallR) { Add-Target 'restart self-check under 5% of a 16 MiB restart' ($smallR.CheckMs / ($smallR.RestartSeconds * 1000) -lt 0.05) "$(Format-Number $smallR.CheckMs 'F2') ms of $(Format-Number ($smallR.RestartSeconds * 1000) 'F1') ms ($(Format-Number (100 * $smallR.CheckMs / ($smallR.RestartSeconds * 1000)) 'F1')%)" }
        if ($smallR) { Add-Target 'restart of a 16 MiB program under 50 ms' ($smallR.RestartSeconds -lt 0.05 -and $smallR.Verified) "$(Format-Number ($smallR.RestartSeconds * 1000) 'F1') ms (warm-up round $(Format-Number ($smallR.ColdSeconds * 1000) 'F1') ms)$(if (-not $smallR.Verified) { ', memory NOT verified' })" }
    }
}
if ($threadComparison) {
    $tc = $threadComparison
    Add-Target "checkpoint of $($tc.Threads) threads within 1.2x of 1 thread ($($tc.MiB) MiB)" ($tc.CheckpointRatio -le 1.2) "median $(Format-Number $tc.CheckpointRatio 'F2')x ($(Format-Number ($tc.Rows[1].CheckpointSeconds * 1000) 'F1') ms against $(Format-Number ($tc.Rows[0].CheckpointSeconds * 1000) 'F1') ms)"
    if ($tc.Restarted) {
        $verified = @($tc.Rows | Where-Object { -not $_.Verified }).Count -eq 0
        Add-Target "restart of $($tc.Threads) threads within 1.2x of 1 thread ($($tc.MiB) MiB)" ($tc.RestartRatio -le 1.2 -and $verified) "median $(Format-Number $tc.RestartRatio 'F2')x ($(Format-Number ($tc.Rows[1].RestartSeconds * 1000) 'F1') ms against $(Format-Number ($tc.Rows[0].RestartSeconds * 1000) 'F1') ms)$(if (-not $verified) { ', memory NOT verified' })"
    }
    else { Add-Target "restart of $($tc.Threads) threads within 1.2x of 1 thread ($($tc.MiB) MiB)" $null 'restart not measured' }
}
elseif (-not $NoThreadComparison -and -not $TreeComparisonOnly) {
    Add-Target "checkpoint and restart of $ThreadCompareThreads threads within 1.2x of 1 thread" $null 'not measured (see Errors)'
}
if ($treeComparison) {
    $tr = $treeComparison
    $name = "$($tr.Processes) processes x $($tr.MiBEach) MiB within 1.3x of 1 process x $($tr.SingleMiB) MiB"
    Add-Target "checkpoint of a tree of $name" ($tr.CheckpointRatio -le 1.3) "median $(Format-Number $tr.CheckpointRatio 'F2')x ($(Format-Number ($tr.Rows[1].CheckpointSeconds * 1000) 'F1') ms against $(Format-Number ($tr.Rows[0].CheckpointSeconds * 1000) 'F1') ms)"
    if ($tr.Restarted) {
        $verified = @($tr.Rows | Where-Object { -not $_.Verified }).Count -eq 0
        Add-Target "restart of a tree of $name" ($tr.RestartRatio -le 1.3 -and $verified) "median $(Format-Number $tr.RestartRatio 'F2')x ($(Format-Number ($tr.Rows[1].RestartSeconds * 1000) 'F1') ms against $(Format-Number ($tr.Rows[0].RestartSeconds * 1000) 'F1') ms)$(if (-not $verified) { ', memory NOT verified' })"
    }
    else { Add-Target "restart of a tree of $name" $null 'restart not measured' }
}
elseif (-not $NoTreeComparison -and -not $ThreadComparisonOnly) {
    Add-Target "checkpoint and restart of a tree of $TreeProcesses processes x $TreeMiB MiB within 1.3x of 1 process" $null 'not measured (see Errors)'
}
$rows = [Collections.Generic.List[object]]::new()
foreach ($t in $targets) { $rows.Add(@($t.Target, $t.Verdict, $t.Measured)) }
foreach ($l in (Format-MarkdownTable @('target', 'verdict', 'measured') $rows 3)) { $md.Add($l) }
if ($errors.Count) {
    $md.Add('')
    $md.Add('## Errors')
    $md.Add('')
    foreach ($e in $errors) { $md.Add("- $e") }
}

Write-Host ''
$md | ForEach-Object { Write-Host $_ }

New-Item -ItemType Directory -Force $ResultsDirectory | Out-Null
$md -join "`n" | Set-Content -LiteralPath (Join-Path $ResultsDirectory 'latest.md') -Encoding utf8NoBOM
[ordered]@{
    Started     = $runStarted.ToString('o')
    Commit      = $commit
    Threads     = $Threads
    Checkpoints = @($checkpoints)
    JitWarmup   = $jit
    Sparse      = $sparse
    Restarts    = @($restarts)
    RestartNote = $restartNote
    ThreadComparison = $threadComparison
    TreeComparison = $treeComparison
    Targets     = @($targets)
    Errors      = @($errors)
} | ConvertTo-Json -Depth 6 | Set-Content -LiteralPath (Join-Path $ResultsDirectory 'latest.json') -Encoding utf8NoBOM
Write-Host ''
Write-Host "Written to $(Join-Path $ResultsDirectory 'latest.md') and latest.json ($([math]::Round(([DateTime]::UtcNow - $runStarted).TotalSeconds)) s)"
