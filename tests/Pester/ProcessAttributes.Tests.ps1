# Per-process and per-thread attributes (proc_attrs): supplementary groups, each thread's capability sets,
# securebits and filesystem uid, nice values, scheduling policies, CPU affinity and parent-death signals, and the
# process's oom_score_adj, loginuid, THP switch and child subreaper flag. The program sets them all to values that
# are not the defaults, is checkpointed with -Kill and restarted, and then reports what it sees of itself and
# whether that is what it set (CHECK ok). A restart that cannot give them back (it lacks a capability the
# process had) is refused, and leaves nothing running.
#
# A restarted process is a child of this PowerShell: every test kills what it restarts (Stop-RestartedPrograms).

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/ThreadHelpers.psm1"

    # rmdir (the files in a cgroup are the kernel's), once its last process has gone for good.
    function Remove-Cgroup([string] $Path) {
        $null = Wait-Until { try { [System.IO.Directory]::Delete($Path); $true } catch { $false } } -Because "cgroup $Path to empty"
    }

    # The program's ATTR lines and its verdict, asked for with SIGUSR1, from the pid it has now.
    function Request-Attributes($Program, [int] $Id) {
        $skip = @(Get-TestProgramOutput $Program).Count
        Send-Signal $Id USR1
        $null = Wait-Until { @(Get-TestProgramOutput $Program | Select-Object -Skip $skip | Where-Object { $_ -like 'CHECK *' }).Count -ge 1 } -Because 'proc_attrs to report'
        $lines = @(Get-TestProgramOutput $Program | Select-Object -Skip $skip)
        [pscustomobject]@{
            Attributes = @($lines | Where-Object { $_ -like 'ATTR *' })
            Check = @($lines | Where-Object { $_ -like 'CHECK *' })[0]
        }
    }
}

AfterAll {
    Stop-RestartedPrograms
    Stop-AllTestPrograms
}

Describe 'A process with non-default attributes in each of its two threads (proc_attrs)' {
    BeforeAll {
        # A v2 cgroup of its own, removed once the program is killed: the restart makes it again.
        $unified = @('/sys/fs/cgroup/unified', '/sys/fs/cgroup') | Where-Object { Test-Path "$_/cgroup.procs" } | Where-Object {
            (& stat -f -c '%T' $_) -eq 'cgroup2fs' } | Select-Object -First 1
        $cgroupName = "crtest-attrs-$PID"
        $cgroup = if ($unified) { Join-Path $unified $cgroupName }
        if ($cgroup) { $null = New-Item -ItemType Directory -Path $cgroup }
        $program = Start-TestProgram proc_attrs -ArgumentList @($cgroup | Where-Object { $_ })
        $before = Request-Attributes $program $program.Id
        $context = Join-Path $TestDrive 'attrs.ctx'
        $checkpoint = Invoke-WatchedCheckpoint $program.Id $context -Kill
        $null = Wait-TestProgramExit $program
        if ($cgroup) { Remove-Cgroup $cgroup }
        $image = (Get-CrContext -Path $checkpoint.Path -Verify -ErrorAction Stop).Processes | Where-Object Pid -EQ $program.Id

        # A restart without CAP_SYS_NICE cannot give back a permitted set that holds it: refused, nothing left.
        $module = Join-Path (Get-RepositoryRoot) 'CrCheckpoint.psd1'
        $script = @"
`$ErrorActionPreference = 'Continue'
Import-Module '$module'
`$errors = `$null
`$r = Invoke-CrRestart -Path '$context' -StandardOutput '$TestDrive/refused.out' -StandardError '$TestDrive/refused.err' -ErrorAction SilentlyContinue -ErrorVariable errors
if (`$r) { "RESTARTED `$(`$r.ProcessIds -join ' ')"; foreach (`$id in `$r.ProcessIds) { /bin/kill -9 `$id } }
else { "ERROR `$(`$errors[0].FullyQualifiedErrorId) `$(`$errors[0].Exception.Message)" }
"LEFT `$(@(Get-ChildItem /proc -Directory | Where-Object { `$_.Name -eq '$($program.Id)' }).Count)"
'DONE'
"@
        $refused = Invoke-ChildPwsh $script -TimeoutSec 90 -Prefix 'setpriv', '--bounding-set=-sys_nice'
        # It had made the cgroup again before it was refused: a failed restart takes it away.
        $cgroupLeft = $cgroup -and (Test-Path $cgroup)
        if ($cgroupLeft) { Remove-Cgroup $cgroup }

        $restart = Restart-ThreadProgram $checkpoint.Path -Directory $TestDrive
        $id = $restart.ProcessIds[0]
        $after = Request-Attributes $program $id
    }
    AfterAll {
        Stop-RestartedPrograms
        Stop-TestProgram $program
        if ($cgroup -and (Test-Path $cgroup)) { Remove-Cgroup $cgroup }
    }

    It 'had every attribute it set before the checkpoint' {
        $before.Check | Should -Be 'CHECK ok'
        $before.Attributes | Should -HaveCount 3
        $before.Attributes[1] | Should -Match 'fsuid=4321 .* amb=400 securebits=16 nice=5 policy=1073741826 prio=3 cpus=1 pdeathsig=0'
        $before.Attributes[2] | Should -Match 'groups=0,100,4242 oom_score_adj=333 loginuid=(4242|none) thp_disable=1 subreaper=1'
        if ($cgroup) { $before.Attributes[2] | Should -Match " cgroup=/$cgroupName$" }
    }

    It 'saved them in the context: the worker''s own credentials and scheduling, the process''s controls' {
        $worker = $image.Threads | Where-Object Name -EQ 'worker'
        $worker.Credentials.Uids | Should -Be @(0, 0, 0, 4321)
        $worker.Credentials.Securebits | Should -Be 16
        $worker.Scheduling.Policy | Should -Be 2
        $worker.Scheduling.Nice | Should -Be 5
        $helper = (Get-CrContext -Path $checkpoint.Path).Processes | Where-Object { $_.Process.ParentPid -eq $program.Id }
        $helper.Threads[0].ParentDeathSignal | Should -Be 28
        ($image.Threads | Where-Object Tid -EQ $program.Id).Credentials | Should -BeNullOrEmpty
        $image.Process.Credentials.Securebits | Should -Be 4
        $image.Process.Controls.OomScoreAdj | Should -Be 333
        $image.Process.Controls.ThpDisable | Should -Be 1
        $image.Process.Controls.ChildSubreaper | Should -BeTrue
    }

    It 'is refused by a restart that lacks CAP_SYS_NICE, naming the thread and the capability, and leaves nothing running' {
        $refused.Output | Should -Contain 'DONE' -Because "it printed: $($refused.Output -join '; ') $($refused.Errors)"
        $failures = @($refused.Output | Where-Object { $_ -like 'ERROR *' })
        $failures | Should -HaveCount 1
        $failures[0] | Should -BeLike 'ERROR Restart.PermissionDenied*'
        $failures[0] | Should -Match "process $($program.Id): thread \d+ had CAP_SYS_NICE in its (permitted|bounding) capability set"
        $refused.Output | Should -Contain 'LEFT 0'
        $cgroupLeft | Should -BeFalse -Because 'the cgroup the refused restart made is removed again'
    }

    It 'comes back with every attribute of each thread and of the process, as the program itself sees them' {
        $after.Attributes | Should -Be $before.Attributes
        $after.Check | Should -Be 'CHECK ok'
    }

    It 'is back in its v2 cgroup, made again since it had been removed' {
        if (-not $cgroup) { Set-ItResult -Skipped -Because 'no cgroup v2 hierarchy is mounted'; return }
        (Get-Content "/proc/$id/cgroup") | Should -Contain "0::/$cgroupName"
        $restart.Messages -match "created the v2 cgroup /$cgroupName" | Should -Not -BeNullOrEmpty
    }

    It 'is a child subreaper again: an orphan of its tree is reparented to it; its child had its parent-death signal back' {
        $skip = @(Get-TestProgramOutput $program).Count
        Send-Signal $id USR2
        # The launcher has long recorded the original's end, so the wait is on the output alone.
        $line = Wait-Until { Get-TestProgramOutput $program | Select-Object -Skip $skip | Where-Object { $_ -like 'ORPHAN *' } } -Because 'the orphan to see its new parent'
        $line | Should -Be "ORPHAN parent=$id"
        @(Get-TestProgramOutput $program | Select-Object -Skip $skip) | Should -Contain 'HELPER pdeathsig=28'
    }
}
