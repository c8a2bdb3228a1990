<#
.SYNOPSIS
    Helpers of the multi-threaded checkpoint/restart tests (Threads*.Tests.ps1): restart and always kill again,
    ask a running or restarted program for a report and read it, send a signal to one thread (tgkill).
.DESCRIPTION
    A restarted process is a child of this PowerShell process, not of the launcher, so TestHelpers' waits
    (which stop when the launcher has recorded the end of the program it started) do not apply to it: the
    program's output file is the same (a regular file is reopened at its offset), but its end is watched
    here through /proc. Every process restarted through Restart-ThreadProgram is recorded and
    Stop-RestartedPrograms kills it and waits until it is gone: a restarted process left running would
    keep the test run's pipes open.
    It uses the functions of TestHelpers.psm1, which the test files import first.
#>

Set-StrictMode -Version Latest

if (-not ('CrThreadTest.Native' -as [type])) {
    Add-Type -TypeDefinition @'
namespace CrThreadTest
{
    using System.Runtime.InteropServices;
    public static class Native
    {
        [DllImport("libc", SetLastError = true)] public static extern int tgkill(int tgid, int tid, int sig);
        [DllImport("libc", SetLastError = true)] public static extern int kill(int pid, int sig);
        [DllImport("libc", SetLastError = true)] public static extern int waitpid(int pid, out int status, int options);
    }

    /// <summary>Sends SIGKILL to a process if it is not disposed of within the time given; says whether it fired.</summary>
    public sealed class Watchdog : System.IDisposable
    {
        private readonly System.Threading.Timer timer;
        private volatile bool fired;
        public Watchdog(int pid, int milliseconds)
        {
            timer = new System.Threading.Timer(_ => { fired = true; Native.kill(pid, 9); }, null, milliseconds, System.Threading.Timeout.Infinite);
        }
        public bool Fired { get { return fired; } }
        public void Dispose() { timer.Dispose(); }
    }
}
'@
}

$script:Restarted = [System.Collections.Generic.List[int]]::new()

function Send-ThreadSignal {
    <# Sends a signal (name or number) to one thread of a process with tgkill. #>
    param([Parameter(Mandatory, Position = 0)] [int] $ProcessId, [Parameter(Mandatory, Position = 1)] [int] $ThreadId,
        [Parameter(Mandatory, Position = 2)] $Signal)
    $n = Get-SignalNumber $Signal
    if ([CrThreadTest.Native]::tgkill($ProcessId, $ThreadId, $n) -ne 0) {
        throw "tgkill($ProcessId, $ThreadId, $n) failed: errno $([System.Runtime.InteropServices.Marshal]::GetLastPInvokeError())"
    }
}

function Get-ThreadIds {
    <# The thread ids in /proc/PID/task, sorted. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    @(Get-ChildItem "/proc/$Id/task" | ForEach-Object { [int]$_.Name } | Sort-Object)
}

function Get-ThreadNames {
    <# tid -> name (/proc/PID/task/TID/comm) of every thread of a process. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    $names = @{}
    foreach ($tid in Get-ThreadIds $Id) {
        try { $names[$tid] = [System.IO.File]::ReadAllText("/proc/$Id/task/$tid/comm").TrimEnd("`n") } catch { }
    }
    $names
}

function Invoke-WatchedCheckpoint {
    <#
    .SYNOPSIS
        Invoke-CrCheckpoint (stop on error) that cannot hang the test run: if it has not returned after TimeoutSec,
        the process is killed (SIGKILL), which ends any wait of the engine for it, and this throws.
        With -Kill it returns once the process is gone, and forgets it if it was a restarted one (so that its
        id, free again, is never killed later).
    #>
    param(
        [Parameter(Mandatory, Position = 0)] [int] $Id,
        [Parameter(Mandatory, Position = 1)] [string] $Path,
        [switch] $Kill,
        [switch] $NoSync,
        [int] $TimeoutSec = 60
    )
    $dog = [CrThreadTest.Watchdog]::new($Id, $TimeoutSec * 1000)
    $result = $null
    try {
        $result = Invoke-CrCheckpoint -Id $Id -Path $Path -Kill:$Kill -NoSync:$NoSync -ErrorAction Stop
    }
    catch {
        if (-not $dog.Fired) { throw }
    }
    finally { $dog.Dispose() }
    if ($dog.Fired) {
        $threads = @(Get-ChildItem "/proc/$Id/task" -ErrorAction Ignore).Count
        throw "Invoke-CrCheckpoint -Id $Id did not return within $TimeoutSec s: the engine hung (the process, $threads thread(s) left, was killed to end the wait)"
    }
    if ($Kill) {
        $null = Wait-Until { -not (Test-Path "/proc/$Id") } -Because "process $Id to be gone after the checkpoint with -Kill"
        while ($script:Restarted.Remove($Id)) { }
    }
    $result
}

function Restart-ThreadProgram {
    <#
    .SYNOPSIS
        Invoke-CrRestart of a context (stop on error) with stdout and stderr fallbacks in Directory, recording the
        restarted process so that Stop-RestartedPrograms kills it; returns the RestartResult.
    .DESCRIPTION
        When the restart fails, a process left behind with the original id as a child of this PowerShell (the
        engine says nothing was left running) is recorded too, so that it is killed and reaped, and named in the
        error.
    #>
    param(
        [Parameter(Mandatory, Position = 0)] [string] $Path,
        [Parameter(Mandatory)] [string] $Directory,
        [switch] $NoRestorePid
    )
    try {
        $result = Invoke-CrRestart -Path $Path -NoRestorePid:$NoRestorePid -StandardOutput (Join-Path $Directory 'restart.out') `
            -StandardError (Join-Path $Directory 'restart.err') -ErrorAction Stop
    }
    catch {
        $left = @()
        if (-not $NoRestorePid) {
            foreach ($id in (Get-CrContext -Path $Path).ProcessIds) {
                $stat = Get-ProcStat $id
                if ($stat -and $stat.ParentId -eq $PID) { $script:Restarted.Add([int]$id); $left += "$id (state $($stat.State))" }
            }
        }
        if ($left) { throw "$_ -- and yet left behind, a child of this PowerShell: $($left -join ', ')" }
        throw
    }
    foreach ($id in $result.ProcessIds) { $script:Restarted.Add([int]$id) }
    $result
}

function Stop-RestartedProgram {
    <#
    Kills a restarted process (SIGKILL) and waits until /proc/PID is gone. It is a child of this PowerShell, which
    the engine reaps; a zombie it has not reaped is reaped here (.NET reaps only the children it started).
    #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id, [double] $TimeoutSec = 15)
    [void][CrThreadTest.Native]::kill($Id, 9)
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    while (Test-Path "/proc/$Id") {
        $stat = Get-ProcStat $Id
        if ($stat -and $stat.State -eq 'Z' -and $stat.ParentId -eq $PID -and $clock.Elapsed.TotalSeconds -ge 1) {
            $status = 0
            [void][CrThreadTest.Native]::waitpid($Id, [ref]$status, 1)
        }
        if ($clock.Elapsed.TotalSeconds -ge $TimeoutSec) { throw "restarted process $Id is still there $TimeoutSec s after SIGKILL" }
        Start-Sleep -Milliseconds 10
    }
    [void]$script:Restarted.Remove($Id)
}

function Stop-RestartedPrograms {
    <# Kills every process restarted through Restart-ThreadProgram that is still recorded (for AfterAll/AfterEach). #>
    foreach ($id in @($script:Restarted | Select-Object -Unique)) {
        try { Stop-RestartedProgram $id } catch { Write-Warning "$_" }
        while ($script:Restarted.Remove($id)) { }
    }
}

function Wait-ProgramGone {
    <# After a checkpoint with -Kill: waits until the launcher has recorded the end and the pid is free. #>
    param([Parameter(Mandatory, Position = 0)] $Program)
    $null = Wait-TestProgramExit $Program
    $null = Wait-Until { -not (Test-Path "/proc/$($Program.Id)") } -Because "process $($Program.Id) to be reaped"
}

function Get-ReportLines {
    <# The output lines "KEY SEQ ..." of the program (the launcher's output file, which a restart keeps writing to). #>
    param([Parameter(Mandatory, Position = 0)] $Program, [Parameter(Mandatory, Position = 1)] [string] $Key)
    @(Get-TestProgramOutput $Program | Where-Object { $_ -like "$Key *" })
}

function Get-LastSequence {
    <# The highest SEQ of the "KEY SEQ ..." lines printed so far (0 when none). #>
    param([Parameter(Mandatory, Position = 0)] $Program, [Parameter(Mandatory, Position = 1)] [string] $Key)
    $last = 0
    foreach ($line in Get-ReportLines $Program $Key) {
        $seq = [int]$line.Split(' ')[1]
        if ($seq -gt $last) { $last = $seq }
    }
    $last
}

function Request-Report {
    <#
    .SYNOPSIS
        Sends Signal to process Id (the program's original or restarted pid) and waits for the report it answers
        with, which ends with the line "EndKey SEQ ..." of the next sequence number; returns the lines of that report
        (all "KEY SEQ ..." lines with its SEQ) as a hashtable KEY -> the rest of each line (a string, or an array when
        the key repeats).
    #>
    param(
        [Parameter(Mandatory, Position = 0)] $Program,
        [Parameter(Mandatory)] [int] $Id,
        [Parameter(Mandatory)] [string] $EndKey,
        [Parameter(Mandatory)] [string[]] $Keys,
        $Signal = 'USR1',
        [double] $TimeoutSec = 20
    )
    $seq = (Get-LastSequence $Program $EndKey) + 1
    Send-Signal $Id $Signal
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    while ($true) {
        $lines = @(Get-TestProgramOutput $Program)
        if (@($lines | Where-Object { $_ -like "$EndKey $seq *" -or $_ -eq "$EndKey $seq" }).Count -gt 0) { break }
        if (-not (Test-Path "/proc/$Id") -or (Get-ProcessState $Id) -in @('Z', 'X')) {
            throw "$($Program.Name) ($Id) is gone without answering report $seq`n$(Get-TestProgramReport $Program)"
        }
        if ($clock.Elapsed.TotalSeconds -ge $TimeoutSec) {
            throw "Timed out after $TimeoutSec s waiting for report $seq ($EndKey) of $($Program.Name) ($Id)`n$(Get-TestProgramReport $Program)"
        }
        Start-Sleep -Milliseconds 20
    }
    $report = @{ Seq = $seq }
    foreach ($key in $Keys) {
        $found = @($lines | Where-Object { $_ -like "$key $seq *" } | ForEach-Object { $_.Substring("$key $seq ".Length) })
        $report[$key] = if ($found.Count -eq 1) { $found[0] } else { , $found }
    }
    $report
}

function ConvertFrom-Fields {
    <# "a=1 b=x" -> @{ a = '1'; b = 'x' }; words without '=' are left out. #>
    param([Parameter(Mandatory, Position = 0)] [AllowEmptyString()] [string] $Text)
    $table = @{}
    foreach ($word in $Text.Split(' ', [System.StringSplitOptions]::RemoveEmptyEntries)) {
        $i = $word.IndexOf('=')
        if ($i -gt 0) { $table[$word.Substring(0, $i)] = $word.Substring($i + 1) }
    }
    $table
}

function Wait-OutputLine {
    <#
    .SYNOPSIS
        Waits for an output line of the program matching Pattern (after the first Skip lines) while process Id lives;
        returns its Match. Unlike Wait-TestProgramOutput it does not stop when the launcher has recorded an end, so it
        works for a restarted program.
    #>
    param(
        [Parameter(Mandatory, Position = 0)] $Program,
        [Parameter(Mandatory, Position = 1)] [string] $Pattern,
        [Parameter(Mandatory)] [int] $Id,
        [int] $Skip = 0,
        [double] $TimeoutSec = 20
    )
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    while ($true) {
        $lines = @(Get-TestProgramOutput $Program)
        for ($i = $Skip; $i -lt $lines.Count; $i++) {
            $m = [regex]::Match($lines[$i], $Pattern)
            if ($m.Success) { return $m }
        }
        if (-not (Test-Path "/proc/$Id") -or (Get-ProcessState $Id) -in @('Z', 'X')) {
            throw "$($Program.Name) ($Id) is gone without printing a line matching '$Pattern'`n$(Get-TestProgramReport $Program)"
        }
        if ($clock.Elapsed.TotalSeconds -ge $TimeoutSec) {
            throw "Timed out after $TimeoutSec s waiting for $($Program.Name) ($Id) to print a line matching '$Pattern'`n$(Get-TestProgramReport $Program)"
        }
        Start-Sleep -Milliseconds 20
    }
}

Export-ModuleMember -Function *
