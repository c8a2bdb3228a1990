<#
.SYNOPSIS
    Helpers of the process-tree tests (Tree*.Tests.ps1), on top of TestHelpers.psm1 and RestartHelpers.psm1.
.DESCRIPTION
    A tree leaves more behind than one process: the children of a program started through the launcher are
    not killed with it, and only the root of a restarted tree is a child of this PowerShell (its children are
    children of the restarted processes, and are orphaned to PID 1 when their parent dies). So every process a
    tree test starts or restarts is tracked here by pid and start time (a pid reused by another process is never
    hit), and Stop-ProcessTree stops a whole tree: each process is stopped first (SIGSTOP, so that nobody forks
    while the tree is collected), its current descendants are collected again and again until none is new, then
    all are killed and awaited until /proc has forgotten them (PID 1 of these machines reaps orphans within about
    a second, so "gone" can take that long).
#>

Set-StrictMode -Version Latest

Import-Module "$PSScriptRoot/TestHelpers.psm1"
Import-Module "$PSScriptRoot/RestartHelpers.psm1"

$script:Tracked = [System.Collections.Generic.Dictionary[int, long]]::new()

if (-not ('CrTreeTest.Native' -as [type])) {
    Add-Type -TypeDefinition @'
namespace CrTreeTest
{
    using System.Runtime.InteropServices;

    public static class Native
    {
        [DllImport("libc", SetLastError = true)]
        private static extern long syscall(long number, long a, long b, long c, long d, long e);

        /// <summary>kcmp(pid1, pid2, KCMP_FILE, fd1, fd2): 0 when both descriptors are one open file description.</summary>
        public static long CompareFiles(int pid1, int fd1, int pid2, int fd2) { return syscall(312, pid1, pid2, 0, fd1, fd2); }

        /// <summary>kcmp(pid1, pid2, KCMP_VM, 0, 0): 0 when both processes share one address space.</summary>
        public static long CompareMemory(int pid1, int pid2) { return syscall(312, pid1, pid2, 1, 0, 0); }
    }
}
'@
}

function Get-ProcStartTime {
    <# Field 22 of /proc/PID/stat (start time in clock ticks since boot), or $null when the process is gone. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    try { $text = [System.IO.File]::ReadAllText("/proc/$Id/stat") } catch { return $null }
    [long]$text.Substring($text.LastIndexOf(')') + 2).Split(' ')[19]
}

function Get-ProcAgeMs {
    <# How long ago the process started, in milliseconds (10 ms resolution: clock ticks of 1/100 s), or $null. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    $start = Get-ProcStartTime $Id
    if ($null -eq $start) { return $null }
    $uptime = [double]::Parse([System.IO.File]::ReadAllText('/proc/uptime').Split(' ')[0], [System.Globalization.CultureInfo]::InvariantCulture)
    $uptime * 1000 - $start * 10
}

function Get-ProcChildIds {
    <# The children of a process (every thread's children file), or nothing when it is gone. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    $children = [System.Collections.Generic.List[int]]::new()
    try { $tasks = [System.IO.Directory]::GetDirectories("/proc/$Id/task") } catch { return }
    foreach ($task in $tasks) {
        try { $text = [System.IO.File]::ReadAllText("$task/children") } catch { continue }
        foreach ($c in $text.Split(' ', [System.StringSplitOptions]::RemoveEmptyEntries)) {
            if (-not $children.Contains([int]$c)) { $children.Add([int]$c) }
        }
    }
    $children
}

function Get-ProcessTreeIds {
    <# A process and all its descendants, parents before children. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    $result = [System.Collections.Generic.List[int]]::new()
    $queue = [System.Collections.Generic.Queue[int]]::new()
    if (Test-Path "/proc/$Id") { $result.Add($Id); $queue.Enqueue($Id) }
    while ($queue.Count -gt 0) {
        foreach ($c in @(Get-ProcChildIds $queue.Dequeue())) {
            if (-not $result.Contains($c)) { $result.Add($c); $queue.Enqueue($c) }
        }
    }
    $result.ToArray()
}

function Get-TreeRelations {
    <# Id, Name, State, ParentId, ProcessGroupId, SessionId of each process (of those still in /proc), in a hashtable by Id. #>
    param([Parameter(Mandatory, Position = 0)] [int[]] $Id)
    $table = @{}
    foreach ($i in $Id) {
        $s = Get-ProcStat $i
        if ($s) { $table[$i] = $s }
    }
    $table
}

function Register-TreeProcess {
    <# Tracks processes (by pid and start time) so that Stop-AllTreeProcesses can kill them and their descendants. #>
    param([Parameter(Position = 0)] [AllowEmptyCollection()] [int[]] $Id = @())
    foreach ($i in $Id) {
        $start = Get-ProcStartTime $i
        if ($null -ne $start) { $script:Tracked[$i] = $start }
    }
}

function Test-TrackedProcess {
    <# True while pid Id is the very process that was tracked (not a process that reused its pid). #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id)
    $start = Get-ProcStartTime $Id
    $null -ne $start -and $script:Tracked.ContainsKey($Id) -and $script:Tracked[$Id] -eq $start
}

function Stop-ProcessTree {
    <#
    .SYNOPSIS
        Stops (SIGSTOP), collects, kills (SIGKILL) and awaits processes and all their descendants.
    .DESCRIPTION
        Id are roots (arrays of them are flattened, $null left out): tracked processes (Register-TreeProcess, checked by start time) or, with -Untracked,
        any pid (the caller vouches for it). Zombies are left to their parents (or PID 1) and awaited too.
        Returns nothing; warns about what did not go away within TimeoutSec.
    #>
    param(
        [Parameter(Position = 0)] [AllowEmptyCollection()] [AllowNull()] [object[]] $Id = @(),
        [switch] $Untracked,
        [double] $TimeoutSec = 20
    )
    $all = [System.Collections.Generic.Dictionary[int, long]]::new()
    $queue = [System.Collections.Generic.Queue[int]]::new()
    # Ids may come as nested arrays (a pid and the ProcessIds of a result): flatten them.
    foreach ($i in @($Id | ForEach-Object { $_ } | Where-Object { $null -ne $_ } | ForEach-Object { [int]$_ })) {
        if ($i -le 1 -or $i -eq $PID) { continue }
        if (-not $Untracked -and -not (Test-TrackedProcess $i)) { continue }
        $start = Get-ProcStartTime $i
        if ($null -eq $start -or $all.ContainsKey($i)) { continue }
        $all[$i] = $start
        $queue.Enqueue($i)
    }
    # Stop parents before listing their children, so that none forks behind our back; a fork already
    # under way finishes before the stop, so the children are listed a few times until nothing is new.
    for ($pass = 0; $pass -lt 4; $pass++) {
        $added = 0
        foreach ($i in @($all.Keys)) { [void][CrTest.Native]::kill($i, 19) }
        foreach ($i in @($all.Keys)) { $queue.Enqueue($i) }
        while ($queue.Count -gt 0) {
            $p = $queue.Dequeue()
            foreach ($c in @(Get-ProcChildIds $p)) {
                if ($all.ContainsKey($c) -or $c -eq $PID) { continue }
                $start = Get-ProcStartTime $c
                if ($null -eq $start) { continue }
                $all[$c] = $start
                [void][CrTest.Native]::kill($c, 19)
                $queue.Enqueue($c)
                $added++
            }
        }
        if ($added -eq 0 -and $pass -gt 0) { break }
        Start-Sleep -Milliseconds 5
    }
    foreach ($i in @($all.Keys)) {
        if ((Get-ProcStartTime $i) -eq $all[$i]) { [void][CrTest.Native]::kill($i, 9) }
    }
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    while ($true) {
        $left = @($all.Keys | Where-Object { (Get-ProcStartTime $_) -eq $all[$_] })
        if ($left.Count -eq 0) { break }
        if ($clock.Elapsed.TotalSeconds -ge $TimeoutSec) {
            Write-Warning "processes still in /proc $TimeoutSec s after they were killed: $(($left | ForEach-Object { $s = Get-ProcStat $_; "$_ ($($s.Name), $($s.State), parent $($s.ParentId))" }) -join ', ')"
            break
        }
        Start-Sleep -Milliseconds 20
    }
    foreach ($i in @($all.Keys)) { [void]$script:Tracked.Remove($i) }
}

function Stop-AllTreeProcesses {
    <#
    Kills every tracked process and its descendants, and every non-launcher child of this PowerShell (a restarted
    root whose restart did not return) with its descendants; then the launchers through Stop-AllTestPrograms.
    #>
    $roots = @($script:Tracked.Keys | Where-Object { Test-TrackedProcess $_ })
    Stop-ProcessTree $roots
    $orphans = @(Get-RestartedChildren | ForEach-Object Id)
    if ($orphans.Count) { Stop-ProcessTree $orphans -Untracked }
    Stop-AllRestartedProcesses
    Stop-AllTestPrograms
}

function Start-TreeProgram {
    <#
    .SYNOPSIS
        Start-TestProgram (through the launcher), tracking the program so that its whole tree is killed at the end.
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
    $program = Start-TestProgram @PSBoundParameters
    Register-TreeProcess $program.Id
    $program
}

function Stop-TreeProgram {
    <# Kills a program started with Start-TreeProgram together with all its descendants, then its launcher. #>
    param([Parameter(Position = 0)] [object[]] $Program)
    foreach ($p in $Program) {
        if ($null -eq $p) { continue }
        if ($p.Id -gt 0) { Stop-ProcessTree $p.Id }
        Stop-TestProgram $p
    }
}

function Get-ProgramFields {
    <#
    .SYNOPSIS
        Every output line "WORD k=v k=v..." of a program as a hashtable of its fields (plus Word, and Role for a
        second word without '='); the lines of one word, in order.
    #>
    param([Parameter(Mandatory, Position = 0)] $Program, [Parameter(Mandatory, Position = 1)] [string] $Word)
    foreach ($line in @(Get-ProgramLines $Program)) {
        if (-not $line.StartsWith("$Word ")) { continue }
        $table = ConvertFrom-KeyValueLine $line
        $second = $line.Split(' ')[1]
        if ($second -notlike '*=*') { $table['Role'] = $second }
        $table
    }
}

function Get-ProgramRoles {
    <# The "KID role pid" lines of a tree program: role -> pid, with P for the program itself. #>
    param([Parameter(Mandatory, Position = 0)] $Program)
    $roles = [ordered]@{ P = $Program.Id }
    foreach ($line in @(Get-ProgramLines $Program)) {
        if ($line -match '^KID (\S+) (\d+)$') { $roles[$Matches[1]] = [int]$Matches[2] }
    }
    $roles
}

function Request-Who {
    <#
    .SYNOPSIS
        Sends SIGUSR1 to each process and waits for its "WHO role pid=... ppid=... pgid=... sid=..." line (what
        getpid, getppid, getpgrp and getsid say inside it); returns the lines' fields by the pid each reported.
        Only lines after those already written count, unless -Anywhere (for processes that write at an offset of
        their own, restored from a checkpoint, while others went on writing the same file).
    #>
    param([Parameter(Mandatory, Position = 0)] $Program, [Parameter(Mandatory, Position = 1)] [int[]] $Id, [double] $TimeoutSec = 15, [switch] $Anywhere)
    $skip = if ($Anywhere) { 0 } else { @(Get-ProgramLines $Program).Count }
    foreach ($i in $Id) { Send-Signal $i USR1 }
    $found = @{}
    $null = Wait-Until {
        foreach ($line in @(Get-ProgramLines $Program | Select-Object -Skip $skip)) {
            if ($line -notlike 'WHO *') { continue }
            $f = ConvertFrom-KeyValueLine $line
            $f['Role'] = $line.Split(' ')[1]
            $found[[int]$f.pid] = $f
        }
        @($Id | Where-Object { -not $found.ContainsKey($_) }).Count -eq 0
    } -TimeoutSec $TimeoutSec -Because "WHO lines from $($Id -join ', ')"
    $found
}

function Invoke-TreeCheckpoint {
    <#
    .SYNOPSIS
        Invoke-CrCheckpoint -Id Id -Path Path @Parameters -ErrorAction Stop; with -Kill (in Parameters), waits
        until every checkpointed process is gone from /proc (its pid free again for the restart).
    #>
    param(
        [Parameter(Mandatory, Position = 0)] [int] $Id,
        [Parameter(Mandatory, Position = 1)] [string] $Path,
        [hashtable] $Parameters = @{ Kill = $true }
    )
    $result = Invoke-CrCheckpoint -Id $Id -Path $Path @Parameters -ErrorAction Stop
    if ($Parameters.ContainsKey('Kill') -and $Parameters.Kill) {
        $null = Wait-Until {
            @($result.ProcessIds | Where-Object { Test-Path "/proc/$_" }).Count -eq 0
        } -TimeoutSec 20 -Because "the processes checkpointed with -Kill ($($result.ProcessIds -join ', ')) to be reaped"
    }
    $result
}

function Invoke-TreeRestart {
    <#
    .SYNOPSIS
        Invoke-CrRestart -Path Path @Parameters -ErrorAction Stop; tracks every process it restarted (and registers
        them with RestartHelpers), so that Stop-ProcessTree / Stop-AllTreeProcesses kill them.
    #>
    param([Parameter(Mandatory, Position = 0)] [string] $Path, [hashtable] $Parameters = @{})
    $result = Invoke-CrRestart -Path $Path @Parameters -ErrorAction Stop
    foreach ($r in @($result)) {
        Register-TreeProcess $r.ProcessIds
        Register-RestartedProcess $r.ProcessIds
    }
    $result
}

function Get-RestartedPidMap {
    <# original pid -> restarted pid, from a RestartResult. #>
    param([Parameter(Mandatory, Position = 0)] $Result)
    $map = @{}
    for ($i = 0; $i -lt $Result.ProcessIds.Count; $i++) { $map[[int]$Result.OriginalProcessIds[$i]] = [int]$Result.ProcessIds[$i] }
    $map
}

function Wait-RestartedExit {
    <#
    .SYNOPSIS
        Waits until the restarted root (a child of this PowerShell) has ended and been reaped by the engine; returns
        its ProcessExit (ExitCode, Signal) from RestartResult.WaitForExit.
    #>
    param([Parameter(Mandatory, Position = 0)] $Result, [double] $TimeoutSec = 30)
    $root = [int]$Result.ProcessIds[0]
    $null = Wait-Until { -not (Test-OwnChild $root) } -TimeoutSec $TimeoutSec -Because "restarted process $root to end"
    $cancel = [System.Threading.CancellationTokenSource]::new([TimeSpan]::FromSeconds(10))
    try { @($Result.WaitForExit($cancel.Token))[0] } finally { $cancel.Dispose() }
}

function Test-SharedDescription {
    <# True when descriptor Fd of process Id and descriptor OtherFd of process OtherId are one open file description (kcmp). #>
    param([int] $Id, [int] $Fd, [int] $OtherId, [int] $OtherFd)
    $r = [CrTreeTest.Native]::CompareFiles($Id, $Fd, $OtherId, $OtherFd)
    if ($r -lt 0) { throw "kcmp($Id, $OtherId, KCMP_FILE, $Fd, $OtherFd) failed: errno $([System.Runtime.InteropServices.Marshal]::GetLastPInvokeError())" }
    $r -eq 0
}

function Get-MappingAt {
    <# The /proc/PID/maps entry (Get-ProcMaps object) that contains Address, or $null. #>
    param([Parameter(Mandatory, Position = 0)] [int] $Id, [Parameter(Mandatory, Position = 1)] [uint64] $Address)
    Get-ProcMaps $Id | Where-Object { $_.Start -le $Address -and $Address -lt $_.End } | Select-Object -First 1
}

function Get-LineNumbers {
    <# The numbers N of the lines "PREFIX N ..." of a file (or of lines), in order. #>
    param([Parameter(Mandatory, Position = 0)] [AllowEmptyCollection()] [string[]] $Lines, [Parameter(Mandatory, Position = 1)] [string] $Prefix)
    , [long[]]@($Lines | Where-Object { $_ -match "^$([regex]::Escape($Prefix)) (\d+)" } | ForEach-Object { [long]($_ -split ' ')[1] })
}

function Get-FileLines {
    <# The complete lines of a file (a last line without newline is left out), or nothing if it does not exist. #>
    param([Parameter(Mandatory, Position = 0)] [string] $Path)
    if (-not (Test-Path -LiteralPath $Path)) { return , [string[]]@() }
    $text = [System.IO.File]::ReadAllText($Path)
    $end = $text.LastIndexOf("`n")
    if ($end -lt 0) { return , [string[]]@() }
    , [string[]]$text.Substring(0, $end).Split("`n")
}

Export-ModuleMember -Function *
