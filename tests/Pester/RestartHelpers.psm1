<#
.SYNOPSIS
    Helpers of the restart tests (Restart*.Tests.ps1), on top of TestHelpers.psm1.
.DESCRIPTION
    A restarted process is a child of this PowerShell process (as with cr_restart), not of the launcher
    that started the original: the launcher has already recorded the original's end ("SIGNALED 9" after a
    checkpoint with -Kill), so the helpers here judge a restarted program by its pid, and every restarted
    pid is registered so that Stop-AllRestartedProcesses can kill it (a restarted process left running
    could hold this PowerShell's standard streams, the pipes of the test run, open for ever).
#>

Set-StrictMode -Version Latest

# The same module instance as the tests import (a module already loaded is not loaded again).
Import-Module "$PSScriptRoot/TestHelpers.psm1"

$script:RepoRoot = (Resolve-Path "$PSScriptRoot/../..").Path
$script:Restarted = [System.Collections.Generic.List[int]]::new()
$script:ChildrenBefore = @()
$script:Piped = [System.Collections.Generic.List[object]]::new()

if (-not ('CrRestartTest.Native' -as [type])) {
    Add-Type -TypeDefinition @'
namespace CrRestartTest
{
    using System.Collections.Generic;
    using System.IO;
    using System.Threading;

    /// <summary>Reads lines from a stream on a thread of its own until end-of-file.</summary>
    public sealed class LineCollector
    {
        private readonly List<string> _lines = new List<string>();
        private readonly Thread _thread;
        private volatile bool _completed;

        public LineCollector(TextReader reader)
        {
            _thread = new Thread(() =>
            {
                try
                {
                    string line;
                    while ((line = reader.ReadLine()) != null) lock (_lines) _lines.Add(line);
                }
                catch (IOException) { }
                catch (System.ObjectDisposedException) { }
                finally { _completed = true; }
            });
            _thread.IsBackground = true;
            _thread.Start();
        }

        public string[] Lines { get { lock (_lines) return _lines.ToArray(); } }
        /// <summary>True once every writer of the pipe has closed it.</summary>
        public bool Completed { get { return _completed; } }
    }

    public static class Native
    {
        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
        private static extern long syscall(long number, long a, long b, long c, long d, long e);

        /// <summary>kcmp(KCMP_FILE): 0 when two descriptors of a process are the same open file (dup), -1 on error.</summary>
        public static long CompareFiles(int pid, int fd1, int fd2) { return syscall(312, pid, pid, 0, fd1, fd2); }

        [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
        private struct Timespec { public long Seconds; public long Nanoseconds; }

        [System.Runtime.InteropServices.DllImport("libc")]
        private static extern int clock_gettime(int clock, out Timespec ts);

        /// <summary>CLOCK_MONOTONIC in milliseconds: the clock the test programs report their times by.</summary>
        public static long MonotonicMs()
        {
            Timespec ts;
            clock_gettime(1, out ts);
            return ts.Seconds * 1000 + ts.Nanoseconds / 1000000;
        }
    }

    public static class Bytes
    {
        /// <summary>The indexes (at most max) where two arrays of the same length differ.</summary>
        public static int[] Differences(byte[] a, byte[] b, int max)
        {
            var found = new List<int>();
            for (var i = 0; i < a.Length && i < b.Length && found.Count < max; i++)
                if (a[i] != b[i]) found.Add(i);
            return found.ToArray();
        }
    }
}
'@
}

function Get-MonotonicMs {
    <# CLOCK_MONOTONIC now, in milliseconds (the clock restart_sleeper reports by). #>
    [CrRestartTest.Native]::MonotonicMs()
}

function Register-RestartedProcess {
    <# Remembers restarted pids, for Stop-AllRestartedProcesses. #>
    param([Parameter(Position = 0)] [AllowEmptyCollection()] [int[]] $Id = @())
    foreach ($i in $Id) { if ($i -gt 0 -and -not $script:Restarted.Contains($i)) { $script:Restarted.Add($i) } }
}

function Test-OwnChild {
    <# True while the pid is a child of this PowerShell (a zombie counts: it still needs reaping). #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    $s = Get-ProcStat $Id
    [bool]($s -and $s.ParentId -eq $PID)
}

function Get-OwnChildren {
    <# Every child of this PowerShell process (launchers, restarted processes), from /proc/*/stat. #>
    foreach ($dir in [System.IO.Directory]::GetDirectories('/proc')) {
        $name = [System.IO.Path]::GetFileName($dir)
        if ($name -notmatch '^\d+$') { continue }
        $s = Get-ProcStat ([int]$name)
        if ($s -and $s.ParentId -eq $PID) { $s }
    }
}

function Get-RestartedChildren {
    <#
    The children of this PowerShell that are not launchers: what restarts have left running (or unreaped);
    -Except leaves out the pids given (those that were there before, perhaps left by other tests).
    #>
    param([int[]] $Except = @())
    @(Get-OwnChildren | Where-Object { $_.Name -ne 'launcher' -and $_.Id -notin $Except })
}

function Get-LeftRunning {
    <# The children of this PowerShell (launchers aside) that appeared during the last Invoke-FailingRestart. #>
    Get-RestartedChildren -Except $script:ChildrenBefore
}

function Stop-RestartedProcess {
    <#
    .SYNOPSIS
        Kills restarted processes (only while they are children of this PowerShell, so a reused pid is never
        hit) and waits until each is gone: reaped by the engine, not merely dead. With -WarnOnly a process
        that does not go is a warning, not an error.
    #>
    param([Parameter(Position = 0)] [AllowEmptyCollection()] [int[]] $Id = @(), [double] $TimeoutSec = 15, [switch] $WarnOnly)
    foreach ($i in $Id) {
        if (Test-OwnChild $i) {
            Stop-Descendants $i
            [void][CrTest.Native]::kill($i, 9)
        }
    }
    foreach ($i in $Id) {
        try { $null = Wait-Until { -not (Test-OwnChild $i) } -TimeoutSec $TimeoutSec -Because "restarted process $i to be killed and reaped" }
        catch { if ($WarnOnly) { Write-Warning $_.Exception.Message } else { throw } }
        [void]$script:Restarted.Remove($i)
    }
}

function Stop-AllRestartedProcesses {
    <#
    .SYNOPSIS
        Kills every registered restarted process, and any other non-launcher child of this PowerShell (a
        restart whose result was lost, or a process another test left behind: one that keeps the test run's
        standard streams open would hang it); then stops the programs of Start-PipedTestProgram.
    #>
    $registered = @($script:Restarted)
    Stop-RestartedProcess $registered
    $strays = @(Get-RestartedChildren | ForEach-Object Id)
    if ($strays.Count) { Stop-RestartedProcess $strays -TimeoutSec 5 -WarnOnly }
    foreach ($p in @($script:Piped)) {
        Stop-TestProgram $p
        [void]$script:Piped.Remove($p)
    }
}

function Invoke-TestRestart {
    <#
    .SYNOPSIS
        Invoke-CrRestart -Path PATH @Parameters -ErrorAction Stop, registering the pids it restarted.
    #>
    param([Parameter(Mandatory, Position = 0)] [string] $Path, [hashtable] $Parameters = @{})
    $result = Invoke-CrRestart -Path $Path @Parameters -ErrorAction Stop
    foreach ($r in @($result)) { Register-RestartedProcess $r.ProcessIds }
    $result
}

function Invoke-FailingRestart {
    <#
    .SYNOPSIS
        Invoke-CrRestart -Path PATH @Parameters, expected to fail; returns its error records (whatever the
        caller's $ErrorActionPreference). Throws if it returned a result (after registering what it restarted,
        so that the cleanup kills it). Get-LeftRunning then tells whether it left a process behind.
    #>
    param([Parameter(Mandatory, Position = 0)] [string] $Path, [hashtable] $Parameters = @{})
    $failures = $null
    $script:ChildrenBefore = @(Get-RestartedChildren | ForEach-Object Id)
    $results = @(Invoke-CrRestart -Path $Path @Parameters -ErrorAction SilentlyContinue -ErrorVariable failures)
    foreach ($r in $results) { if ($r.PSObject.Properties['ProcessIds']) { Register-RestartedProcess $r.ProcessIds } }
    if ($results.Count -gt 0) { throw "the restart of $Path was expected to fail but returned: $($results | Out-String)" }
    , @($failures | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
}

function Invoke-GuardedRestart {
    <#
    .SYNOPSIS
        Invoke-CrRestart (with -Wait: and wait for the restarted process to end), run in a second runspace so
        that a restart that never returns, or a restarted process that never ends, fails the test after
        TimeoutSec instead of hanging the run: then the process ExpectedId is killed and the call stopped.
    .OUTPUTS
        Result (the RestartResult or $null), Errors (ErrorRecords), Seconds (from the moment the restarted
        process ExpectedId appeared to the moment the call returned; $null if it was never seen), TimedOut,
        StartMs and DoneMs (CLOCK_MONOTONIC right before the call and once it had returned).
    #>
    param(
        [Parameter(Mandatory, Position = 0)] [string] $Path,
        [hashtable] $Parameters = @{},
        [int] $ExpectedId,
        [switch] $Wait,
        [double] $TimeoutSec = 30
    )
    $ps = [powershell]::Create()
    try {
        $null = $ps.AddCommand('Import-Module').AddParameter('Name', (Join-Path $script:RepoRoot 'CrCheckpoint.psd1'))
        $null = $ps.Invoke()
        $ps.Commands.Clear()
        $null = $ps.AddCommand('Invoke-CrRestart').AddParameter('Path', $Path)
        if ($Wait) { $null = $ps.AddParameter('Wait', $true) }
        foreach ($k in $Parameters.Keys) { $null = $ps.AddParameter($k, $Parameters[$k]) }
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        $startMs = Get-MonotonicMs
        $async = $ps.BeginInvoke()
        $appeared = $null
        $timedOut = $false
        while (-not $async.IsCompleted) {
            if ($null -eq $appeared -and $ExpectedId -gt 0 -and (Test-OwnChild $ExpectedId)) { $appeared = $clock.Elapsed.TotalSeconds }
            if ($clock.Elapsed.TotalSeconds -ge $TimeoutSec) {
                $timedOut = $true
                if ($ExpectedId -gt 0) { Stop-RestartedProcess $ExpectedId }
                $ps.Stop()
                break
            }
            Start-Sleep -Milliseconds 5
        }
        $done = $clock.Elapsed.TotalSeconds
        $doneMs = Get-MonotonicMs
        $output = @(if (-not $timedOut) { $ps.EndInvoke($async) })
        $result = $output | Select-Object -First 1
        if ($result) { Register-RestartedProcess $result.ProcessIds }
        [pscustomobject]@{
            Result = $result
            Errors = @($ps.Streams.Error)
            Seconds = if ($null -ne $appeared) { $done - $appeared } else { $null }
            TimedOut = $timedOut
            StartMs = $startMs
            DoneMs = $doneMs
        }
    }
    finally { $ps.Dispose() }
}

function Invoke-CheckpointKill {
    <#
    .SYNOPSIS
        Invoke-CrCheckpoint -Kill of a program (started through the launcher, or restarted), waiting until its
        pid is free again; returns the CheckpointResult.
    #>
    param(
        [Parameter(Mandatory, Position = 0)] [int] $Id,
        [Parameter(Mandatory, Position = 1)] [string] $Path,
        [hashtable] $Parameters = @{}
    )
    $result = Invoke-CrCheckpoint -Id $Id -Path $Path -Kill @Parameters -ErrorAction Stop
    $null = Wait-Until { -not (Test-Path "/proc/$Id") } -TimeoutSec 15 -Because "process $Id, checkpointed with -Kill, to be reaped"
    $result
}

function Get-ProgramLines {
    <# The complete output lines of a program: from its output file, or from its pipe (Start-PipedTestProgram). #>
    param([Parameter(Mandatory, Position = 0)] $Program)
    if ($Program.PSObject.Properties['Collector'] -and $Program.Collector) { return $Program.Collector.Lines }
    Get-TestProgramOutput $Program
}

function Wait-ProgramLine {
    <#
    .SYNOPSIS
        Waits for an output line matching Pattern after the first Skip lines; returns the line. Unlike
        Wait-TestProgramOutput it does not look at the launcher (which saw the original die): it gives up
        when the process Id (the restarted one) is gone, or after TimeoutSec.
    #>
    param(
        [Parameter(Mandatory, Position = 0)] $Program,
        [Parameter(Mandatory, Position = 1)] [string] $Pattern,
        [int] $Skip = 0,
        [int] $Id = 0,
        [double] $TimeoutSec = 15
    )
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    $lastChance = $false
    while ($true) {
        $lines = @(Get-ProgramLines $Program)
        for ($i = $Skip; $i -lt $lines.Count; $i++) {
            if ($lines[$i] -match $Pattern) { return $lines[$i] }
        }
        if ($lastChance) {
            throw "$($Program.Name) ($Id) ended without printing a line matching '$Pattern' (after line $Skip)`n$(Get-ProgramReport $Program)"
        }
        if ($Id -gt 0 -and -not (Test-ProcessAlive $Id)) { $lastChance = $true; continue }
        if ($clock.Elapsed.TotalSeconds -ge $TimeoutSec) {
            throw "Timed out after $TimeoutSec s waiting for $($Program.Name) ($Id) to print a line matching '$Pattern' (after line $Skip)`n$(Get-ProgramReport $Program)"
        }
        Start-Sleep -Milliseconds 20
    }
}

function Get-ProgramReport {
    param([Parameter(Mandatory, Position = 0)] $Program)
    $out = (Get-ProgramLines $Program | Select-Object -Last 20) -join "`n"
    $err = if (Test-Path $Program.ErrorOutput) { Get-Content -Raw $Program.ErrorOutput } else { '' }
    "stdout (last lines):`n$out`nstderr:`n$err"
}

function ConvertFrom-KeyValueLine {
    <# "WORD k1=v1 k2=v2..." as a hashtable of the k=v fields. #>
    param([Parameter(Mandatory, Position = 0)] [string] $Line)
    $table = [ordered]@{}
    foreach ($field in $Line.Split(' ')) {
        $i = $field.IndexOf('=')
        if ($i -gt 0) { $table[$field.Substring(0, $i)] = $field.Substring($i + 1) }
    }
    $table
}

function Request-Report {
    <#
    .SYNOPSIS
        Sends a signal (default USR1) to process Id and waits for the next output line starting with Word
        (STATE for restart_state, FILES for restart_files); returns its fields as a hashtable.
    #>
    param(
        [Parameter(Mandatory, Position = 0)] $Program,
        [Parameter(Mandatory)] [int] $Id,
        [string] $Word = 'STATE',
        $Signal = 'USR1'
    )
    $skip = @(Get-ProgramLines $Program).Count
    Send-Signal $Id $Signal
    ConvertFrom-KeyValueLine (Wait-ProgramLine $Program "^$Word " -Skip $skip -Id $Id)
}

function Get-TickNumbers {
    <# The first number of every "TICK n ..." line of a program, in order. #>
    param([Parameter(Mandatory, Position = 0)] $Program)
    , [long[]]@(Get-ProgramLines $Program | Where-Object { $_ -match '^TICK \d+' } | ForEach-Object { [long]$_.Split(' ')[1] })
}

function Wait-Ticks {
    <# Waits until a program's last TICK number reaches At; returns it. #>
    param([Parameter(Mandatory, Position = 0)] $Program, [Parameter(Mandatory, Position = 1)] [long] $At, [int] $Id = 0, [double] $TimeoutSec = 20)
    Wait-Until {
        $t = Get-TickNumbers $Program
        if ($t.Count -gt 0 -and $t[-1] -ge $At) { return $t[-1] }
        if ($Id -gt 0 -and -not (Test-ProcessAlive $Id)) { throw "$($Program.Name) ($Id) is gone before its ticks reached $At`n$(Get-ProgramReport $Program)" }
    } -TimeoutSec $TimeoutSec -Because "$($Program.Name) to tick up to $At"
}

function Get-SequenceProblem {
    <#
    .SYNOPSIS
        Checks that Numbers are First, First+Step, First+2*Step... with nothing missing or repeated; returns a
        description of the first problems (nothing when the sequence is whole).
    #>
    param([Parameter(Mandatory, Position = 0)] [AllowEmptyCollection()] [long[]] $Numbers, [long] $Step = 1, [long] $First = -1)
    if ($Numbers.Count -eq 0) { return 'the sequence is empty' }
    $want = if ($First -ge 0) { $First } else { $Numbers[0] }
    $problems = 0
    for ($i = 0; $i -lt $Numbers.Count -and $problems -lt 5; $i++) {
        if ($Numbers[$i] -ne $want) {
            $kind = if ($Numbers[$i] -lt $want) { 'repeated' } else { 'missing' }
            "entry $i is $($Numbers[$i]), expected $want ($kind; neighbours: $(@($Numbers[[Math]::Max(0, $i - 2)..[Math]::Min($Numbers.Count - 1, $i + 2)]) -join ','))"
            $problems++
            $want = $Numbers[$i]
        }
        $want += $Step
    }
}

function Get-FileNumbers {
    <# The numbers of a file of "n\n" lines (a last line without a newline is left out). #>
    param([Parameter(Mandatory, Position = 0)] [string] $Path)
    $text = [System.IO.File]::ReadAllText($Path)
    $end = $text.LastIndexOf("`n")
    if ($end -lt 0) { return , [long[]]@() }
    , [long[]]@($text.Substring(0, $end).Split("`n") | ForEach-Object { [long]$_ })
}

function Start-PipedTestProgram {
    <#
    .SYNOPSIS
        Starts a test program through the launcher like Start-TestProgram, but with its standard output (and
        with -ErrorToPipe its standard error too) on a pipe that this PowerShell reads: as in `prog | cat`.
    .DESCRIPTION
        The launcher opens /dev/stdout, which is the pipe .NET gave it, and hands it to the program; the
        launcher keeps no copy. Once the program dies, the pipe has no writer left: what it had written can
        still be read, and the collector completes. The object works with Stop-TestProgram; its lines are
        in .Collector.Lines (Get-ProgramLines, Wait-ProgramLine). Stop-AllRestartedProcesses stops it too.
    #>
    param(
        [Parameter(Mandatory, Position = 0)] [string] $Name,
        [Parameter(Position = 1)] [string[]] $ArgumentList = @(),
        [switch] $ErrorToPipe,
        [string] $WaitFor = '^READY ',
        [double] $TimeoutSec = 15
    )
    $exe = Build-TestProgram $Name
    $launcherPath = Build-TestProgram launcher
    $dir = New-TestDirectory -Prefix "crtest-$Name"
    $info = [System.Diagnostics.ProcessStartInfo]::new($launcherPath)
    $errFile = if ($ErrorToPipe) { '/dev/stdout' } else { "$dir/err" }
    foreach ($a in @("$dir/pid", "$dir/status", '/dev/stdout', $errFile, $exe) + $ArgumentList) { $info.ArgumentList.Add([string]$a) }
    $info.UseShellExecute = $false
    $info.RedirectStandardOutput = $true
    $info.WorkingDirectory = $dir
    $launcher = [System.Diagnostics.Process]::Start($info)
    $program = [pscustomobject]@{
        PSTypeName = 'CrTest.Program'
        Id = 0; Name = $Name; Directory = $dir
        Output = "$dir/out"; ErrorOutput = "$dir/err"; StatusFile = "$dir/status"; Launcher = $launcher
        Collector = [CrRestartTest.LineCollector]::new($launcher.StandardOutput)
    }
    $script:Piped.Add($program)
    try {
        $null = Wait-Until { (Test-Path "$dir/pid") -or $launcher.HasExited } -TimeoutSec $TimeoutSec -Because "the launcher of $Name to start it"
        if (-not (Test-Path "$dir/pid")) { throw "the launcher of $Name ended with exit code $($launcher.ExitCode) without starting it" }
        $program.Id = [int](Get-Content "$dir/pid")
        if ($WaitFor) { $null = Wait-ProgramLine $program $WaitFor -Id $program.Id -TimeoutSec $TimeoutSec }
    }
    catch {
        Stop-TestProgram $program
        throw
    }
    $program
}

function Get-FdCount {
    <# How many descriptors a process has open. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    [System.IO.Directory]::GetFileSystemEntries("/proc/$Id/fd").Count
}

function Get-RssKiB {
    <# VmRSS of a process, in KiB. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    [long](((Get-ProcStatus $Id)['VmRSS']) -replace '\s*kB$', '')
}

function Get-ProcLimit {
    <# The soft and hard values of one line of /proc/PID/limits ("Max open files"...), as strings. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id, [Parameter(Mandatory, Position = 1)] [string] $Name)
    $line = [System.IO.File]::ReadAllLines("/proc/$Id/limits") | Where-Object { $_.StartsWith($Name) } | Select-Object -First 1
    $f = $line.Substring(26).Trim() -split '\s+'
    [pscustomobject]@{ Soft = $f[0]; Hard = $f[1] }
}

function Get-FdTarget {
    <# Where /proc/PID/fd/FD points. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id, [Parameter(Mandatory, Position = 1)] [int] $Fd)
    (Get-Item "/proc/$Id/fd/$Fd").LinkTarget
}

function Get-ProcMapsText {
    <# /proc/PID/maps reduced to ranges, protections and paths, one line per area. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    (Get-ProcMaps $Id | ForEach-Object { '{0:x}-{1:x} {2} {3}' -f $_.Start, $_.End, $_.Protection, $_.Path }) -join "`n"
}

function Compare-RestoredMemory {
    <#
    .SYNOPSIS
        Compare-SavedMemory of TestHelpers, with the rseq areas really left out: for every region of a
        ProcessImage with saved pages, the live bytes at the saved runs are compared with the context's; one
        line per region that differs (nothing when all match).
    .DESCRIPTION
        The kernel rewrites struct rseq (cpu_id_start, cpu_id...) whenever the thread returns to user space,
        so those bytes of a restarted process legitimately differ from the saved ones. (In TestHelpers the range
        is built as @(a, a + n) without parentheses, which PowerShell reads as @(a, a) + n: nothing is left out.)
    #>
    param([Parameter(Mandatory)] [int] $Id, [Parameter(Mandatory)] $ProcessImage, [Parameter(Mandatory)] [string] $ContextPath)
    $ignored = [System.Collections.Generic.List[object]]::new()
    foreach ($t in $ProcessImage.Threads) {
        if ($t.Rseq) { $ignored.Add([pscustomobject]@{ Start = [uint64]$t.Rseq.Address; End = [uint64]$t.Rseq.Address + [uint64]$t.Rseq.Length }) }
    }
    foreach ($region in $ProcessImage.Regions) {
        if ($region.SavedPages -eq 0) { continue }
        if ((Get-LiveRegionChecksum -Id $Id -Region $region) -eq $region.DataChecksum) { continue }
        $saved = Read-SavedRegionBytes -ContextPath $ContextPath -Region $region
        $now = Read-LiveRegionBytes -Id $Id -Region $region
        $differ = [System.Collections.Generic.List[string]]::new()
        foreach ($i in [CrRestartTest.Bytes]::Differences($saved, $now, 4096)) {
            if ($differ.Count -ge 8) { break }
            $address = Get-SavedAddress $region $i
            if (@($ignored | Where-Object { $address -ge $_.Start -and $address -lt $_.End }).Count -gt 0) { continue }
            $differ.Add(('{0:x}: saved {1:x2}, now {2:x2}' -f $address, $saved[$i], $now[$i]))
        }
        if ($differ.Count -eq 0) { continue }
        '{0} {1} {2} {3}: {4} pages saved; first differences: {5}' -f $region.Range, $region.Protection, $region.Kind, $region.Path, $region.SavedPages, ($differ -join ', ')
    }
}

function Test-SameOpenFile {
    <# True when two descriptors of a process are one open file description (made by dup), as kcmp(KCMP_FILE) says. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id, [Parameter(Mandatory, Position = 1)] [int] $Fd, [Parameter(Mandatory, Position = 2)] [int] $Other)
    $r = [CrRestartTest.Native]::CompareFiles($Id, $Fd, $Other)
    if ($r -lt 0) { throw "kcmp($Id, KCMP_FILE, $Fd, $Other) failed: errno $([System.Runtime.InteropServices.Marshal]::GetLastPInvokeError())" }
    $r -eq 0
}

function ConvertTo-MergedMapText {
    <#
    .SYNOPSIS
        Memory areas (objects with Start, End, Protection, Path: from Get-ProcMaps or a context's Map.Areas) as
        "start-end protection path" lines, with neighbouring areas of the same protection and path merged (the
        kernel merges such areas when it can, so only the ranges a process has tell), and shared memory
        ("/dev/zero (deleted)", "/memfd:...") named [shmem]. [vsyscall] is left out.
    #>
    param([Parameter(Mandatory, Position = 0)] [AllowEmptyCollection()] [object[]] $Areas)
    $merged = [System.Collections.Generic.List[object]]::new()
    foreach ($m in $Areas | Sort-Object { [uint64]$_.Start }) {
        $path = "$($m.Path)" -replace '^/memfd:.*$', '[shmem]' -replace '^/dev/zero \(deleted\)$', '[shmem]'
        if ($path -eq '[vsyscall]') { continue }
        $last = if ($merged.Count) { $merged[$merged.Count - 1] } else { $null }
        if ($last -and $last.End -eq [uint64]$m.Start -and $last.Protection -eq $m.Protection -and $last.Path -eq $path) { $last.End = [uint64]$m.End; continue }
        $merged.Add([pscustomobject]@{ Start = [uint64]$m.Start; End = [uint64]$m.End; Protection = $m.Protection; Path = $path })
    }
    ($merged | ForEach-Object { '{0:x}-{1:x} {2} {3}' -f $_.Start, $_.End, $_.Protection, $_.Path }) -join "`n"
}

function Get-MergedMaps {
    <# /proc/PID/maps through ConvertTo-MergedMapText. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    ConvertTo-MergedMapText @(Get-ProcMaps $Id)
}

Export-ModuleMember -Function *
