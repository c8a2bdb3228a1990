<#
.SYNOPSIS
    Shared helpers of the end-to-end tests: build and run the test programs in tests/programs, wait for
    conditions, read /proc and the memory of live processes, damage copies of context files.
.DESCRIPTION
    Programs are started through tests/programs/launcher, never as children of this PowerShell process:
    .NET reaps its own children on SIGCHLD with waitpid(), which would race with the engine's waitpid()
    on the same process (see ChildOfSession.Tests.ps1). The launcher is the program's parent: it gives it
    /dev/null as stdin, files as stdout and stderr and no other descriptor, reaps it and records how it
    ended, and dies (with the program) if this PowerShell dies.
#>

Set-StrictMode -Version Latest

$script:RepoRoot = (Resolve-Path "$PSScriptRoot/../..").Path
$script:ProgramsRoot = Join-Path $script:RepoRoot 'tests/programs'
$script:BuildRoot = Join-Path $script:ProgramsRoot 'build'
$script:Started = [System.Collections.Generic.List[object]]::new()

# XxHash3 comes with the module (bin/); load that very file so that the hashes are the engine's.
Add-Type -Path (Join-Path $script:RepoRoot 'bin/System.IO.Hashing.dll')

if (-not ('CrTest.Native' -as [type])) {
    Add-Type -TypeDefinition @'
namespace CrTest
{
    using System.Runtime.InteropServices;
    public static class Native
    {
        [DllImport("libc", SetLastError = true)] public static extern int kill(int pid, int sig);
        [DllImport("libc", SetLastError = true)] public static extern int umask(int mask);
        [DllImport("libc", SetLastError = true)] public static extern int mkfifo(string path, int mode);
    }
}
'@
}

$script:SignalNumbers = @{
    HUP = 1; INT = 2; QUIT = 3; ILL = 4; TRAP = 5; ABRT = 6; BUS = 7; FPE = 8; KILL = 9; USR1 = 10; SEGV = 11
    USR2 = 12; PIPE = 13; ALRM = 14; TERM = 15; CHLD = 17; CONT = 18; STOP = 19; TSTP = 20
}

function Get-RepositoryRoot { $script:RepoRoot }

function Get-SignalNumber {
    param([Parameter(Mandatory)] $Signal)
    if ($Signal -is [int]) { return $Signal }
    $name = "$Signal".ToUpperInvariant() -replace '^SIG', ''
    if (-not $script:SignalNumbers.ContainsKey($name)) { throw "unknown signal $Signal" }
    $script:SignalNumbers[$name]
}

function Send-Signal {
    <# Sends a signal (name such as USR1 or number) to a process. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id, [Parameter(Mandatory, Position = 1)] $Signal)
    $n = Get-SignalNumber $Signal
    if ([CrTest.Native]::kill($Id, $n) -ne 0) {
        throw "kill($Id, $n) failed: errno $([System.Runtime.InteropServices.Marshal]::GetLastPInvokeError())"
    }
}

function Wait-Until {
    <#
    .SYNOPSIS
        Polls a condition until it is true (returns its value) or the time is up (throws, saying what was awaited).
    #>
    param(
        [Parameter(Mandatory, Position = 0)] [scriptblock] $Condition,
        [double] $TimeoutSec = 15,
        [string] $Because
    )
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    while ($true) {
        $value = & $Condition
        if ($value) { return $value }
        if ($clock.Elapsed.TotalSeconds -ge $TimeoutSec) {
            $what = if ($Because) { $Because } else { "{ $($Condition.ToString().Trim()) }" }
            throw "Timed out after $TimeoutSec s waiting for $what"
        }
        Start-Sleep -Milliseconds 20
    }
}

function New-TestDirectory {
    <# A fresh empty directory under the temp directory. #>
    param([string] $Prefix = 'crtest')
    $path = Join-Path ([System.IO.Path]::GetTempPath()) ("$Prefix-" + [System.IO.Path]::GetRandomFileName().Replace('.', ''))
    (New-Item -ItemType Directory -Path $path).FullName
}

function Build-TestProgram {
    <#
    .SYNOPSIS
        Compiles tests/programs/NAME.c (gcc -O0 -g) into tests/programs/build/NAME unless it is up to date; returns its path.
    #>
    param([Parameter(Mandatory, Position = 0)] [string] $Name)
    $source = Join-Path $script:ProgramsRoot "$Name.c"
    if (-not (Test-Path $source)) { throw "there is no test program $source" }
    $output = Join-Path $script:BuildRoot $Name
    $inputs = @(Get-Item $source, (Join-Path $script:ProgramsRoot 'common.h'))
    if ((Test-Path $output) -and ((Get-Item $output).LastWriteTimeUtc -ge ($inputs | Measure-Object -Property LastWriteTimeUtc -Maximum).Maximum)) {
        return $output
    }
    $null = New-Item -ItemType Directory -Force -Path $script:BuildRoot
    # Build beside the target and rename, so that a half-written binary is never run.
    $temporary = "$output.$PID.tmp"
    $messages = & gcc -O0 -g -Wall -Wextra -pthread -o $temporary $source 2>&1
    if ($LASTEXITCODE -ne 0) {
        Remove-Item -Force $temporary -ErrorAction Ignore
        throw "gcc failed to build $Name`n$($messages -join "`n")"
    }
    Move-Item -Force $temporary $output
    $output
}

function Get-ProcStat {
    <# The fields of /proc/PID/stat after the command name: State, PPid, PGrp, Session... or $null when gone. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    try { $text = [System.IO.File]::ReadAllText("/proc/$Id/stat") } catch { return $null }
    $close = $text.LastIndexOf(')')
    $f = $text.Substring($close + 2).Split(' ')
    [pscustomobject]@{
        Id = $Id; Name = $text.Substring($text.IndexOf('(') + 1, $close - $text.IndexOf('(') - 1)
        State = [string]$f[0]; ParentId = [int]$f[1]; ProcessGroupId = [int]$f[2]; SessionId = [int]$f[3]
        Threads = [int]$f[17]
    }
}

function Get-ProcessState {
    <# The state letter of /proc/PID/stat (R S D T t Z X), or $null when the process is gone. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    $s = Get-ProcStat $Id
    if ($s) { $s.State } else { $null }
}

function Get-ProcStatus {
    <# /proc/PID/status as a hashtable of strings (Umask, SigBlk, TracerPid, Threads...). #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    $table = @{}
    foreach ($line in [System.IO.File]::ReadAllLines("/proc/$Id/status")) {
        $i = $line.IndexOf(':')
        if ($i -gt 0) { $table[$line.Substring(0, $i)] = $line.Substring($i + 1).Trim() }
    }
    $table
}

function Get-ProcHexMask {
    <# A mask line of /proc/PID/status (SigBlk, SigCgt, ShdPnd...) as a number. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id, [Parameter(Mandatory, Position = 1)] [string] $Field)
    [System.Convert]::ToUInt64((Get-ProcStatus $Id)[$Field], 16)
}

function Test-ProcessAlive {
    <# True while the process exists and has not exited (a zombie counts as gone). #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    (Get-ProcessState $Id) -notin @($null, 'Z', 'X')
}

function Test-ProcessUntouched {
    <# True when the process is alive, not stopped, and not traced by anyone: as it was before a failed checkpoint. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    $state = Get-ProcessState $Id
    $state -in @('R', 'S', 'D') -and (Get-ProcStatus $Id)['TracerPid'] -eq '0'
}

function Get-ProcFdInfo {
    <# /proc/PID/fdinfo/FD: Position and Flags (octal in /proc, as a number here). #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id, [Parameter(Mandatory, Position = 1)] [int] $Fd)
    $info = @{}
    foreach ($line in [System.IO.File]::ReadAllLines("/proc/$Id/fdinfo/$Fd")) {
        $i = $line.IndexOf(':')
        if ($i -gt 0) { $info[$line.Substring(0, $i)] = $line.Substring($i + 1).Trim() }
    }
    [pscustomobject]@{ Fd = $Fd; Position = [long]$info['pos']; Flags = [System.Convert]::ToInt32($info['flags'], 8) }
}

function Get-ProcFds {
    <# The descriptor numbers open in a process. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    Get-ChildItem "/proc/$Id/fd" | ForEach-Object { [int]$_.Name } | Sort-Object
}

function Get-ProcMaps {
    <# /proc/PID/maps as objects: Start, End (numbers), Protection, Offset, Inode, Path. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    foreach ($line in [System.IO.File]::ReadAllLines("/proc/$Id/maps")) {
        $parts = $line -split '\s+', 6
        $range = $parts[0].Split('-')
        [pscustomobject]@{
            Start = [System.Convert]::ToUInt64($range[0], 16); End = [System.Convert]::ToUInt64($range[1], 16)
            Protection = $parts[1]; Offset = [System.Convert]::ToUInt64($parts[2], 16); Inode = [uint64]$parts[4]
            Path = if ($parts.Count -gt 5) { $parts[5] } else { '' }
        }
    }
}

function Get-ProcSyscall {
    <# /proc/PID/syscall: Number, Arguments, StackPointer, InstructionPointer (Number -1 outside a call). #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    $f = [System.IO.File]::ReadAllText("/proc/$Id/syscall").Trim().Split(' ')
    if ($f[0] -eq 'running') { return [pscustomobject]@{ Number = $null } }
    [pscustomobject]@{
        Number = [long]$f[0]
        StackPointer = [System.Convert]::ToUInt64($f[-2].Substring(2), 16)
        InstructionPointer = [System.Convert]::ToUInt64($f[-1].Substring(2), 16)
    }
}

function Read-ProcessMemory {
    <# Bytes of another process's memory through /proc/PID/mem (works on PROT_NONE pages too, as its tracer or root). #>
    param([Parameter(Mandatory)] [int] $Id, [Parameter(Mandatory)] [uint64] $Address, [Parameter(Mandatory)] [long] $Length)
    $stream = [System.IO.FileStream]::new("/proc/$Id/mem", [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, [System.IO.FileShare]::ReadWrite, 1)
    try {
        $buffer = [byte[]]::new($Length)
        $stream.Position = [long]$Address
        $done = 0
        while ($done -lt $Length) {
            $n = $stream.Read($buffer, $done, $Length - $done)
            if ($n -le 0) { throw "short read of process $Id memory at 0x$('{0:x}' -f ($Address + $done))" }
            $done += $n
        }
        , $buffer
    }
    finally { $stream.Dispose() }
}

function Get-LiveRegionChecksum {
    <#
    .SYNOPSIS
        XxHash3-64 (hex, as MemoryRegionView.DataChecksum) of the live process's bytes at the saved runs of a region.
    #>
    param([Parameter(Mandatory)] [int] $Id, [Parameter(Mandatory)] $Region)
    $hash = [System.IO.Hashing.XxHash3]::new()
    foreach ($run in $Region.SavedRuns) {
        $address = [uint64]$Region.Start + [uint64]$run[0] * 4096
        $remaining = [long]$run[1] * 4096
        while ($remaining -gt 0) {
            $take = [System.Math]::Min($remaining, 8MB)
            $hash.Append((Read-ProcessMemory -Id $Id -Address $address -Length $take))
            $address += [uint64]$take
            $remaining -= $take
        }
    }
    '{0:x16}' -f $hash.GetCurrentHashAsUInt64()
}

function Get-PresentPrivatePages {
    <#
    .SYNOPSIS
        Page indexes (from Start) that /proc/PID/pagemap shows present or swapped and not file-backed/shared:
        the private pages a checkpoint must save.
    #>
    param([Parameter(Mandatory)] [int] $Id, [Parameter(Mandatory)] [uint64] $Start, [Parameter(Mandatory)] [uint64] $End)
    $pages = [long](($End - $Start) / 4096)
    $stream = [System.IO.FileStream]::new("/proc/$Id/pagemap", [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, [System.IO.FileShare]::ReadWrite, 1)
    try {
        $buffer = [byte[]]::new($pages * 8)
        $stream.Position = [long]($Start / 4096) * 8
        $done = 0
        while ($done -lt $buffer.Length) {
            $n = $stream.Read($buffer, $done, $buffer.Length - $done)
            if ($n -le 0) { break }
            $done += $n
        }
    }
    finally { $stream.Dispose() }
    $present = [uint64]1 -shl 63; $swapped = [uint64]1 -shl 62; $fileOrShared = [uint64]1 -shl 61
    $result = [System.Collections.Generic.List[long]]::new()
    for ($i = 0; $i -lt $done / 8; $i++) {
        $e = [System.BitConverter]::ToUInt64($buffer, $i * 8)
        if (($e -band ($present -bor $swapped)) -ne 0 -and (($e -band $fileOrShared) -eq 0 -or ($e -band $swapped) -ne 0)) { $result.Add($i) }
    }
    , $result.ToArray()
}

function Expand-SavedRuns {
    <# The page indexes a region's SavedRuns ([[first, count]...]) cover. #>
    param([Parameter(Mandatory, Position = 0)] [AllowEmptyCollection()] $Runs)
    $pages = [System.Collections.Generic.List[long]]::new()
    foreach ($run in $Runs) { for ($p = [long]$run[0]; $p -lt $run[0] + $run[1]; $p++) { $pages.Add($p) } }
    $pages.ToArray()
}

function Get-FileChecksum {
    <# XxHash3-64 of a whole file, hex: to tell whether a file changed. #>
    param([Parameter(Mandatory, Position = 0)] [string] $Path)
    '{0:x16}' -f [System.IO.Hashing.XxHash3]::HashToUInt64([System.IO.File]::ReadAllBytes($Path))
}

function Start-TestProgram {
    <#
    .SYNOPSIS
        Starts a test program (by name, built on demand) or a real program (-FilePath) through the launcher.
    .OUTPUTS
        An object with Id (the program's pid, so it pipes into Invoke-CrCheckpoint by property name), Name,
        Directory (its working directory, fresh), Output and ErrorOutput (its stdout and stderr files),
        StatusFile (written by the launcher when it ends) and Launcher (the launcher's Process).
    .PARAMETER WaitFor
        A regex that a line of its output must match, or a scriptblock (given the pid) that must return true,
        before this returns. Default: '^READY ' for test programs, nothing for real programs.
    #>
    [CmdletBinding(DefaultParameterSetName = 'Name')]
    param(
        [Parameter(Mandatory, Position = 0, ParameterSetName = 'Name')] [string] $Name,
        [Parameter(Mandatory, ParameterSetName = 'Path')] [string] $FilePath,
        [Parameter(Position = 1)] [string[]] $ArgumentList = @(),
        [switch] $NewSession,
        [object] $WaitFor,
        [double] $TimeoutSec = 15
    )
    if ($PSCmdlet.ParameterSetName -eq 'Name') {
        $exe = Build-TestProgram $Name
        if (-not $PSBoundParameters.ContainsKey('WaitFor')) { $WaitFor = '^READY ' }
        $label = $Name
    }
    else {
        $exe = (Get-Command $FilePath -CommandType Application -ErrorAction Stop | Select-Object -First 1).Source
        $label = [System.IO.Path]::GetFileName($exe)
    }
    $launcherPath = Build-TestProgram launcher
    $dir = New-TestDirectory -Prefix "crtest-$label"
    $info = [System.Diagnostics.ProcessStartInfo]::new($launcherPath)
    if ($NewSession) { $info.ArgumentList.Add('-s') }
    foreach ($a in @("$dir/pid", "$dir/status", "$dir/out", "$dir/err", $exe) + $ArgumentList) { $info.ArgumentList.Add([string]$a) }
    $info.UseShellExecute = $false
    $info.WorkingDirectory = $dir
    $launcher = [System.Diagnostics.Process]::Start($info)
    $program = [pscustomobject]@{
        PSTypeName = 'CrTest.Program'
        Id = 0; Name = $label; Directory = $dir
        Output = "$dir/out"; ErrorOutput = "$dir/err"; StatusFile = "$dir/status"; Launcher = $launcher
    }
    $script:Started.Add($program)
    try {
        Wait-Until { (Test-Path "$dir/pid") -or $launcher.HasExited } -TimeoutSec $TimeoutSec -Because "the launcher of $label to start it" | Out-Null
        if (-not (Test-Path "$dir/pid")) { throw "the launcher of $label ended with exit code $($launcher.ExitCode) without starting it" }
        $program.Id = [int](Get-Content "$dir/pid")
        if ($WaitFor -is [scriptblock]) {
            $id = $program.Id
            $null = Wait-Until { (Test-ProcessExited $program) -or (& $WaitFor $id) } -TimeoutSec $TimeoutSec -Because "$label ($id) to be ready"
            if (Test-ProcessExited $program) { throw "$label ($id) ended before it was ready: $(Get-TestProgramExit $program)`n$(Get-TestProgramReport $program)" }
        }
        elseif ($WaitFor) {
            $null = Wait-TestProgramOutput $program $WaitFor -TimeoutSec $TimeoutSec
        }
    }
    catch {
        Stop-TestProgram $program
        throw
    }
    $program
}

function Test-ProcessExited {
    <# True once the launcher has recorded the program's end. #>
    param([Parameter(Mandatory, Position = 0)] $Program)
    Test-Path $Program.StatusFile
}

function Get-TestProgramExit {
    <# How the program ended, as the launcher wrote it ("EXITED 0", "SIGNALED 9"), or $null while it runs. #>
    param([Parameter(Mandatory, Position = 0)] $Program)
    if (Test-Path $Program.StatusFile) { (Get-Content -Raw $Program.StatusFile).Trim() } else { $null }
}

function Wait-TestProgramExit {
    <# Waits until the program has ended and been reaped; returns "EXITED n" or "SIGNALED n". #>
    param([Parameter(Mandatory, Position = 0)] $Program, [double] $TimeoutSec = 15)
    Wait-Until { Get-TestProgramExit $Program } -TimeoutSec $TimeoutSec -Because "$($Program.Name) ($($Program.Id)) to end"
}

function Get-TestProgramOutput {
    <# The complete lines the program has written to stdout so far. #>
    param([Parameter(Mandatory, Position = 0)] $Program)
    if (-not (Test-Path $Program.Output)) { return @() }
    $text = [System.IO.File]::ReadAllText($Program.Output)
    $end = $text.LastIndexOf("`n")
    if ($end -lt 0) { return @() }
    $text.Substring(0, $end).Split("`n")
}

function Get-TestProgramReport {
    param([Parameter(Mandatory, Position = 0)] $Program)
    $out = (Get-TestProgramOutput $Program | Select-Object -Last 20) -join "`n"
    $err = if (Test-Path $Program.ErrorOutput) { Get-Content -Raw $Program.ErrorOutput } else { '' }
    "stdout (last lines):`n$out`nstderr:`n$err"
}

function Wait-TestProgramOutput {
    <#
    .SYNOPSIS
        Waits for an output line matching Pattern (after the first Skip lines); returns its Match.
    #>
    param(
        [Parameter(Mandatory, Position = 0)] $Program,
        [Parameter(Mandatory, Position = 1)] [string] $Pattern,
        [int] $Skip = 0,
        [double] $TimeoutSec = 15
    )
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    $exited = $false
    while ($true) {
        $lines = @(Get-TestProgramOutput $Program)
        for ($i = $Skip; $i -lt $lines.Count; $i++) {
            $m = [regex]::Match($lines[$i], $Pattern)
            if ($m.Success) { return $m }
        }
        # Seen ended only after one more look at its output: it may have printed the line just before it ended.
        if ($exited) {
            throw "$($Program.Name) ($($Program.Id)) ended ($(Get-TestProgramExit $Program)) without printing a line matching '$Pattern'`n$(Get-TestProgramReport $Program)"
        }
        if (Test-ProcessExited $Program) { $exited = $true; continue }
        if ($clock.Elapsed.TotalSeconds -ge $TimeoutSec) {
            throw "Timed out after $TimeoutSec s waiting for $($Program.Name) ($($Program.Id)) to print a line matching '$Pattern'`n$(Get-TestProgramReport $Program)"
        }
        Start-Sleep -Milliseconds 20
    }
}

function Get-TestProgramValue {
    <# The fields after KEY on the first output line "KEY v1 v2...". #>
    param([Parameter(Mandatory, Position = 0)] $Program, [Parameter(Mandatory, Position = 1)] [string] $Key)
    $line = Get-TestProgramOutput $Program | Where-Object { $_ -like "$Key *" } | Select-Object -First 1
    if (-not $line) { throw "$($Program.Name) printed no $Key line`n$(Get-TestProgramReport $Program)" }
    , @($line.Substring($Key.Length + 1).Split(' '))
}

function ConvertFrom-Hex {
    <# "0x7f..." or "7f..." as a number. #>
    param([Parameter(Mandatory, Position = 0)] [string] $Text)
    [System.Convert]::ToUInt64(($Text -replace '^0x', ''), 16)
}

function Stop-Descendants {
    <#
    .SYNOPSIS
        SIGKILLs every descendant of a live process (its children, theirs...): a program's helpers would
        otherwise outlive it, reparented to init. Call it while the process is alive and one's own (or one's
        launcher's) child, so that no pid it names can have been reused.
    #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    $children = @{}
    foreach ($dir in [System.IO.Directory]::GetDirectories('/proc')) {
        $name = [System.IO.Path]::GetFileName($dir)
        if ($name -notmatch '^\d+$') { continue }
        $s = Get-ProcStat ([int]$name)
        if ($s) { if (-not $children.ContainsKey($s.ParentId)) { $children[$s.ParentId] = [System.Collections.Generic.List[int]]::new() }; $children[$s.ParentId].Add($s.Id) }
    }
    $pending = [System.Collections.Generic.Queue[int]]::new()
    $pending.Enqueue($Id)
    while ($pending.Count -gt 0) {
        $parent = $pending.Dequeue()
        foreach ($c in @($children[$parent] | Where-Object { $_ })) {
            [void][CrTest.Native]::kill($c, 9)
            $pending.Enqueue($c)
        }
    }
}

function Stop-TestProgram {
    <# Kills the program (if it still runs), waits until its launcher has reaped it, and removes its directory. #>
    param([Parameter(Position = 0, ValueFromPipeline)] [object[]] $Program)
    process {
        foreach ($p in $Program) {
            if ($null -eq $p) { continue }
            # While the launcher runs, the program is its unreaped child, so its pid cannot have been reused.
            if (-not $p.Launcher.HasExited) {
                if ($p.Id -gt 0) {
                    Stop-Descendants $p.Id
                    [void][CrTest.Native]::kill($p.Id, 9)
                }
                else { $p.Launcher.Kill() }
                if (-not $p.Launcher.WaitForExit(15000)) { Write-Warning "the launcher of $($p.Name) ($($p.Id)) did not end" }
            }
            $p.Launcher.Dispose()
            Remove-Item -Recurse -Force $p.Directory -ErrorAction Ignore
            [void]$script:Started.Remove($p)
        }
    }
}

function Stop-AllTestPrograms {
    <# Stops every program started through this module that is still registered (a safety net for AfterAll). #>
    foreach ($p in @($script:Started)) { Stop-TestProgram $p }
}

function Get-PythonLoopScript {
    <# A single-threaded python3 program that prints READY then "TICK n" about every 20 ms. #>
    @'
import os, sys, time
data = bytearray(os.urandom(1 << 20))
print("READY", os.getpid(), flush=True)
n = 0
while True:
    n += 1
    if n % 2 == 0:
        print("TICK", n, flush=True)
    time.sleep(0.01)
'@
}

function Get-BashLoopScript {
    <#
    A bash loop that runs builtins only (so it has no child when checkpointed): prints READY, then "TICK n"
    about every 20 ms, waiting with `read -t` on a FIFO that nobody writes.
    #>
    @'
mkfifo fifo
exec 3<>fifo
n=0
echo "READY $$"
while :; do
  n=$((n + 1))
  echo "TICK $n"
  read -t 0.02 -u 3 line
done
'@
}

function Start-RealProgram {
    <#
    .SYNOPSIS
        Starts a real (not purpose-built) program in a steady, single-threaded, childless state:
        sleep 1000 (blocked in clock_nanosleep), python3 (Get-PythonLoopScript) or bash (Get-BashLoopScript).
    #>
    param([Parameter(Mandatory, Position = 0)] [ValidateSet('sleep', 'python3', 'bash')] [string] $Kind, [switch] $NewSession)
    switch ($Kind) {
        'sleep' {
            Start-TestProgram -FilePath sleep -ArgumentList 1000 -NewSession:$NewSession -WaitFor {
                param($id)
                $s = Get-ProcStat $id
                $s -and $s.Name -eq 'sleep' -and $s.State -eq 'S'
            }
        }
        'python3' { Start-TestProgram -FilePath python3 -ArgumentList '-c', (Get-PythonLoopScript) -NewSession:$NewSession -WaitFor '^READY ' }
        'bash' { Start-TestProgram -FilePath bash -ArgumentList '-c', (Get-BashLoopScript) -NewSession:$NewSession -WaitFor '^TICK 2$' }
    }
}

function Read-SavedRegionBytes {
    <# The saved bytes of a region (its runs back to back), read from the context file at the region's DataOffset. #>
    param([Parameter(Mandatory)] [string] $ContextPath, [Parameter(Mandatory)] $Region)
    $stream = [System.IO.File]::OpenRead($ContextPath)
    try {
        $buffer = [byte[]]::new($Region.SavedBytes)
        $stream.Position = $Region.DataOffset
        $done = 0
        while ($done -lt $buffer.Length) {
            $n = $stream.Read($buffer, $done, $buffer.Length - $done)
            if ($n -le 0) { throw "$ContextPath ends inside the data of region $($Region.Range)" }
            $done += $n
        }
        , $buffer
    }
    finally { $stream.Dispose() }
}

function Read-LiveRegionBytes {
    <# The live process's bytes at a region's saved runs, back to back (what the context should hold). #>
    param([Parameter(Mandatory)] [int] $Id, [Parameter(Mandatory)] $Region)
    $buffer = [byte[]]::new($Region.SavedBytes)
    $at = 0
    foreach ($run in $Region.SavedRuns) {
        $bytes = Read-ProcessMemory -Id $Id -Address ([uint64]$Region.Start + [uint64]$run[0] * 4096) -Length ([long]$run[1] * 4096)
        [System.Array]::Copy($bytes, 0, $buffer, $at, $bytes.Length)
        $at += $bytes.Length
    }
    , $buffer
}

function Get-SavedAddress {
    <# The address in the process of byte Index of a region's saved data. #>
    param([Parameter(Mandatory)] $Region, [Parameter(Mandatory)] [long] $Index)
    $before = 0L
    foreach ($run in $Region.SavedRuns) {
        $length = [long]$run[1] * 4096
        if ($Index -lt $before + $length) { return [uint64]$Region.Start + [uint64]$run[0] * 4096 + [uint64]($Index - $before) }
        $before += $length
    }
    throw "byte $Index is past the saved data of $($Region.Range)"
}

function Compare-SavedMemory {
    <#
    .SYNOPSIS
        For every region of a ProcessImage with saved pages, compares the DataChecksum with the XxHash3 of the live
        process's bytes at the saved runs; returns one line per region that differs (nothing when all match).
    .DESCRIPTION
        A region whose checksum differs is compared byte by byte with the saved data in the context file, and the
        line names the first differing addresses. Differences inside the rseq areas of the threads are left out:
        the kernel itself rewrites struct rseq (cpu_id_start, cpu_id...) whenever the thread returns to user space
        on another CPU, which the engine's own remote system calls make it do after the pages were copied.
    #>
    param([Parameter(Mandatory)] [int] $Id, [Parameter(Mandatory)] $ProcessImage, [Parameter(Mandatory)] [string] $ContextPath)
    $ignored = @(foreach ($t in $ProcessImage.Threads) { if ($t.Rseq) { , @([uint64]$t.Rseq.Address, ([uint64]$t.Rseq.Address + [uint64]$t.Rseq.Length)) } })
    foreach ($region in $ProcessImage.Regions) {
        if ($region.SavedPages -eq 0) { continue }
        $live = Get-LiveRegionChecksum -Id $Id -Region $region
        if ($live -eq $region.DataChecksum) { continue }
        $saved = Read-SavedRegionBytes -ContextPath $ContextPath -Region $region
        $now = Read-LiveRegionBytes -Id $Id -Region $region
        $differ = [System.Collections.Generic.List[string]]::new()
        $a = [byte[]]::new(4096); $b = [byte[]]::new(4096)
        for ($page = 0; $page -lt $saved.Length / 4096 -and $differ.Count -lt 8; $page++) {
            [System.Array]::Copy($saved, $page * 4096, $a, 0, 4096)
            [System.Array]::Copy($now, $page * 4096, $b, 0, 4096)
            if ([System.IO.Hashing.XxHash3]::HashToUInt64($a) -eq [System.IO.Hashing.XxHash3]::HashToUInt64($b)) { continue }
            for ($i = $page * 4096; $i -lt ($page + 1) * 4096 -and $differ.Count -lt 8; $i++) {
                if ($saved[$i] -eq $now[$i]) { continue }
                $address = Get-SavedAddress $region $i
                if (@($ignored | Where-Object { $address -ge $_[0] -and $address -lt $_[1] }).Count -gt 0) { continue }
                $differ.Add(('{0:x}: saved {1:x2}, now {2:x2}' -f $address, $saved[$i], $now[$i]))
            }
        }
        if ($differ.Count -eq 0) { continue }
        '{0} {1} {2} {3}: {4} pages saved with checksum {5}, the process holds {6}; first differences: {7}' -f $region.Range, $region.Protection, $region.Kind, $region.Path, $region.SavedPages, $region.DataChecksum, $live, ($differ -join ', ')
    }
}

function Read-ContextBytes {
    <# Length bytes of a context file from Offset. #>
    param([Parameter(Mandatory)] [string] $ContextPath, [Parameter(Mandatory)] [long] $Offset, [Parameter(Mandatory)] [long] $Length)
    $stream = [System.IO.File]::OpenRead($ContextPath)
    try {
        $buffer = [byte[]]::new($Length)
        $stream.Position = $Offset
        $done = 0
        while ($done -lt $Length) {
            $n = $stream.Read($buffer, $done, $Length - $done)
            if ($n -le 0) { throw "$ContextPath ends before byte $($Offset + $Length)" }
            $done += $n
        }
        , $buffer
    }
    finally { $stream.Dispose() }
}

function Compare-SharedMemory {
    <#
    .SYNOPSIS
        For every shared anonymous area (shmem, saved once as a FileContent record, maybe sparse), compares the
        bytes the context holds for the area's part of the object with the live process's memory there; returns
        one line per area that differs or whose object is missing (nothing when all match).
    #>
    param([Parameter(Mandatory)] [int] $Id, [Parameter(Mandatory)] $Context, [Parameter(Mandatory)] $ProcessImage)
    foreach ($area in $ProcessImage.Map.Areas | Where-Object { "$($_.Kind)" -eq 'SharedAnonymous' }) {
        $range = '{0:x}-{1:x}' -f $area.Start, $area.End
        $content = @($Context.FileContents | Where-Object { $area.SavedFileKey -and $_.Record.Key -eq $area.SavedFileKey })[0]
        if (-not $content) {
            if ($area.SavedPages -eq 0) { "${range}: a shared anonymous area whose contents are not in the context" }
            continue
        }
        $length = [long]($area.End - $area.Start)
        $objectStart = [long]$area.Offset
        $expected = [byte[]]::new($length)
        $data = Read-ContextBytes -ContextPath $Context.Path -Offset $content.DataOffset -Length $content.DataLength
        $runs = @(if ($content.Record.Runs) { $content.Record.Runs } else { , @(0, $content.DataLength) })
        $at = 0L
        foreach ($run in $runs) {
            $from = [System.Math]::Max([long]$run[0], $objectStart)
            $to = [System.Math]::Min([long]$run[0] + [long]$run[1], $objectStart + $length)
            if ($from -lt $to) { [System.Array]::Copy($data, $at + ($from - $run[0]), $expected, $from - $objectStart, $to - $from) }
            $at += [long]$run[1]
        }
        $live = Read-ProcessMemory -Id $Id -Address $area.Start -Length $length
        if ([System.IO.Hashing.XxHash3]::HashToUInt64($expected) -ne [System.IO.Hashing.XxHash3]::HashToUInt64($live)) {
            "${range}: the shared memory object saved as $($area.SavedFileKey) differs from what the process maps there"
        }
    }
}

function Get-UnsavedPrivatePages {
    <#
    .SYNOPSIS
        For every region of kinds Anonymous, Heap, Stack and PrivateFile, the private pages present in the live
        process (pagemap) that the context did not save; one line per region with such pages.
    #>
    param([Parameter(Mandatory)] [int] $Id, [Parameter(Mandatory)] $ProcessImage)
    foreach ($region in $ProcessImage.Regions) {
        if ("$($region.Kind)" -notin @('Anonymous', 'Heap', 'Stack', 'PrivateFile')) { continue }
        $present = Get-PresentPrivatePages -Id $Id -Start $region.Start -End $region.End
        if ($present.Count -eq 0) { continue }
        $saved = [System.Collections.Generic.HashSet[long]]::new([long[]](Expand-SavedRuns $region.SavedRuns))
        $missing = @($present | Where-Object { -not $saved.Contains($_) })
        if ($missing.Count -gt 0) {
            '{0} {1} {2} {3}: {4} private pages present but not saved (first: page {5})' -f $region.Range, $region.Protection, $region.Kind, $region.Path, $missing.Count, $missing[0]
        }
    }
}

function Invoke-ChildPwsh {
    <#
    .SYNOPSIS
        Runs a script in a new pwsh (the same PowerShell as this one) and waits at most TimeoutSec.
    .DESCRIPTION
        Returns ExitCode, Output (the non-empty lines of stdout) and Errors (stderr). When the script does not finish
        in time, kills it and its children and throws, with what it printed so far. Prefix is a command the pwsh
        runs under (for example setpriv --bounding-set=-all, to run it without any capability).
    #>
    param(
        [Parameter(Mandatory, Position = 0)] [string] $Script,
        [int] $TimeoutSec = 60,
        [string[]] $Prefix = @()
    )
    $file = Join-Path ([System.IO.Path]::GetTempPath()) "crtest-child-$([guid]::NewGuid().ToString('n')).ps1"
    Set-Content -Path $file -Value $Script
    try {
        $hostPath = [System.Environment]::ProcessPath
        $command = @($Prefix) + @($hostPath)
        if ([System.IO.Path]::GetFileNameWithoutExtension($hostPath) -eq 'dotnet') { $command += Join-Path $PSHOME 'pwsh.dll' }
        $command += '-NoProfile', '-NonInteractive', '-File', $file
        $info = [System.Diagnostics.ProcessStartInfo]::new($command[0])
        foreach ($a in $command | Select-Object -Skip 1) { $info.ArgumentList.Add($a) }
        $info.RedirectStandardOutput = $true
        $info.RedirectStandardError = $true
        $info.UseShellExecute = $false
        $info.WorkingDirectory = $script:RepoRoot
        $info.Environment['NO_COLOR'] = '1'
        $child = [System.Diagnostics.Process]::Start($info)
        $stdout = $child.StandardOutput.ReadToEndAsync()
        $stderr = $child.StandardError.ReadToEndAsync()
        if (-not $child.WaitForExit($TimeoutSec * 1000)) {
            $child.Kill($true)
            $child.WaitForExit()
            throw "the script did not finish within $TimeoutSec s (it hangs). Output so far:`n$($stdout.Result)`n$($stderr.Result)"
        }
        $child.WaitForExit()
        [pscustomobject]@{
            ExitCode = $child.ExitCode
            Output = @($stdout.Result -split "`n" | ForEach-Object TrimEnd | Where-Object { $_ })
            Errors = $stderr.Result
        }
    }
    finally { Remove-Item -Force $file -ErrorAction Ignore }
}

function Copy-ContextFile {
    <# Copies a context file to Destination and returns the copy's path. #>
    param([Parameter(Mandatory, Position = 0)] [string] $Path, [Parameter(Mandatory, Position = 1)] [string] $Destination)
    Copy-Item -LiteralPath $Path -Destination $Destination -Force
    $Destination
}

function Invoke-FlipBit {
    <# Flips one bit of the byte at Offset in a file. #>
    param([Parameter(Mandatory, Position = 0)] [string] $Path, [Parameter(Mandatory, Position = 1)] [long] $Offset, [int] $Bit = 0)
    $stream = [System.IO.File]::Open($Path, 'Open', 'ReadWrite')
    try {
        $stream.Position = $Offset
        $b = $stream.ReadByte()
        if ($b -lt 0) { throw "offset $Offset is past the end of $Path" }
        $stream.Position = $Offset
        $stream.WriteByte([byte]($b -bxor (1 -shl $Bit)))
    }
    finally { $stream.Dispose() }
}

function Set-FileLength {
    <# Truncates (or extends with zeros) a file to Length bytes. #>
    param([Parameter(Mandatory, Position = 0)] [string] $Path, [Parameter(Mandatory, Position = 1)] [long] $Length)
    $stream = [System.IO.File]::Open($Path, 'Open', 'ReadWrite')
    try { $stream.SetLength($Length) } finally { $stream.Dispose() }
}

function Write-Fifo {
    <# Writes a line to a FIFO that some process holds open for reading (so the open does not block). #>
    param([Parameter(Mandatory, Position = 0)] [string] $Path, [Parameter(Mandatory, Position = 1)] [string] $Line)
    $stream = [System.IO.FileStream]::new($Path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Write, [System.IO.FileShare]::ReadWrite, 1)
    try {
        $bytes = [System.Text.Encoding]::ASCII.GetBytes("$Line`n")
        $stream.Write($bytes, 0, $bytes.Length)
    }
    finally { $stream.Dispose() }
}

Export-ModuleMember -Function *
