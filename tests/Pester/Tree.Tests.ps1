# Process trees: a checkpoint takes the process and all its descendants (the default scope), or a process group or a
# session, or only the process; the restart rebuilds the tree with its pids (or new ones, relations kept), parents,
# groups and sessions, its zombies (reaped by their restarted parent, with their exit status) and its stopped
# processes. Every member of the tree_family test program reports what getpid/getppid/getpgrp/getsid say inside it.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/RestartHelpers.psm1"
    Import-Module "$PSScriptRoot/TreeHelpers.psm1"

    $script:Self = Get-ProcStat $PID

    # The live members of a tree_family (not the zombie, not the stopped child), by role.
    function Get-LiveRoles($Roles) {
        $live = [ordered]@{}
        foreach ($k in $Roles.Keys) { if ($k -notin 'Z', 'S') { $live[$k] = $Roles[$k] } }
        $live
    }

    function Get-Ticks($Program, [int] $Id) {
        [long](Request-Who $Program @($Id))[$Id].ticks
    }
}

AfterAll {
    Stop-AllTreeProcesses
}

Describe 'A tree checkpointed with -Kill comes back with its pids, parents, groups, its zombie and its stopped child (tree_family)' {
    BeforeAll {
        $program = Start-TreeProgram tree_family -ArgumentList '-z', '42', '-T'
        $roles = Get-ProgramRoles $program
        $live = Get-LiveRoles $roles
        $before = Get-TreeRelations @($roles.Values)
        $whoBefore = Request-Who $program @($live.Values)
        $path = Join-Path $TestDrive 'family.ctx'
        $checkpoint = Invoke-TreeCheckpoint $program.Id $path
        $context = Get-CrContext -Path $path -ErrorAction Stop
        $result = Invoke-TreeRestart $path
        $after = Get-TreeRelations @($roles.Values)
    }
    AfterAll {
        Stop-ProcessTree $program.Id, $result.ProcessIds
        Stop-TreeProgram $program
    }

    It 'took the whole tree by default: the parent, 2 workers, 2 grandchildren, the zombie and the stopped child' {
        $roles.Count | Should -Be 7
        @($checkpoint.ProcessIds | Sort-Object) | Should -Be @($roles.Values | Sort-Object)
        @($context.Processes).Count | Should -Be 7
        $context.Image.Scope | Should -Be 'Tree'
        $before[$roles.Z].State | Should -Be 'Z'
        $before[$roles.S].State | Should -Be 'T'
    }

    It 'saved the zombie with its exit status (42) and the stopped child as stopped' {
        $z = $context.Processes | Where-Object Pid -eq $roles.Z
        $z.Process.Zombie | Should -BeTrue
        $z.Process.ExitStatus | Should -Be (42 -shl 8)
        $z.Process.ParentPid | Should -Be $roles.P
        ($context.Processes | Where-Object Pid -eq $roles.S).Process.WasStopped | Should -BeTrue
    }

    It 'restarted every process with its original pid' {
        @($result.ProcessIds | Sort-Object) | Should -Be @($roles.Values | Sort-Object)
        @($result.OriginalProcessIds | Sort-Object) | Should -Be @($roles.Values | Sort-Object)
        foreach ($r in $roles.Keys) { $after.Contains($roles[$r]) | Should -BeTrue -Because "$r ($($roles[$r])) is back" }
    }

    It 'gives every process its parent back; the root is a child of this PowerShell' {
        $after[$roles.P].ParentId | Should -Be $PID
        foreach ($r in $roles.Keys | Where-Object { $_ -ne 'P' }) {
            $after[$roles[$r]].ParentId | Should -Be $before[$roles[$r]].ParentId -Because "$r has the parent it had"
        }
        $after[$roles.G1].ParentId | Should -Be $roles.W1
        $after[$roles.G2].ParentId | Should -Be $roles.W2
    }

    It 'keeps them in their process group and session (those of this PowerShell, which the root joins)' {
        foreach ($r in $roles.Keys) {
            $after[$roles[$r]].ProcessGroupId | Should -Be $before[$roles[$r]].ProcessGroupId -Because "$r is in its group"
            $after[$roles[$r]].SessionId | Should -Be $before[$roles[$r]].SessionId -Because "$r is in its session"
        }
        $after[$roles.P].ProcessGroupId | Should -Be $Self.ProcessGroupId
    }

    It 'is what each process itself sees: getpid, getppid, getpgrp and getsid as before' {
        $who = Request-Who $program @($live.Values)
        foreach ($r in $live.Keys) {
            $w = $who[$live[$r]]
            $w.Role | Should -Be $r
            foreach ($k in 'pid', 'pgid', 'sid') { $w[$k] | Should -Be $whoBefore[$live[$r]][$k] -Because "$r's $k" }
            if ($r -ne 'P') { $w.ppid | Should -Be $whoBefore[$live[$r]].ppid -Because "$r's parent" }
        }
        $who[$roles.P].ppid | Should -Be "$PID"
    }

    It 'lets the workers and grandchildren tick on from their count' {
        $first = Request-Who $program @($live.Values)
        Start-Sleep -Milliseconds 300
        $second = Request-Who $program @($live.Values)
        foreach ($r in $live.Keys) {
            [long]$first[$live[$r]].ticks | Should -BeGreaterOrEqual ([long]$whoBefore[$live[$r]].ticks) -Because "$r counts on"
            [long]$second[$live[$r]].ticks | Should -BeGreaterThan ([long]$first[$live[$r]].ticks) -Because "$r runs"
        }
    }

    It 'keeps the stopped child stopped (state T) until SIGCONT, then it runs as a child of its parent' {
        Start-Sleep -Milliseconds 200
        Get-ProcessState $roles.S | Should -Be 'T'
        $skip = @(Get-ProgramLines $program).Count
        Send-Signal $roles.S CONT
        $line = Wait-ProgramLine $program '^CONT S ' -Skip $skip -Id $roles.S
        $line | Should -Be "CONT S pid=$($roles.S) ppid=$($roles.P)"
        $null = Wait-Until { (Get-ProcessState $roles.S) -in 'S', 'R' }
    }

    It 'keeps the zombie a zombie of its parent until the parent reaps it, with exit status 42' {
        Get-ProcessState $roles.Z | Should -Be 'Z'
        (Get-ProcStat $roles.Z).ParentId | Should -Be $roles.P
        $skip = @(Get-ProgramLines $program).Count
        Send-Signal $roles.P USR2
        $line = Wait-ProgramLine $program '^REAP ' -Skip $skip -Id $roles.P
        $line | Should -Be "REAP pid=$($roles.Z) code=42 signal=0"
        $null = Wait-Until { -not (Test-Path "/proc/$($roles.Z)") } -Because 'the reaped zombie to be gone'
    }
}

Describe 'With -NoRestorePid the tree gets new pids and keeps its relations (tree_family)' {
    BeforeAll {
        $program = Start-TreeProgram tree_family -ArgumentList '-z', '7', '-T'
        $roles = Get-ProgramRoles $program
        $live = Get-LiveRoles $roles
        $before = Get-TreeRelations @($roles.Values)
        $path = Join-Path $TestDrive 'family-newpids.ctx'
        $null = Invoke-TreeCheckpoint $program.Id $path
        $result = Invoke-TreeRestart $path -Parameters @{ NoRestorePid = $true }
        $map = Get-RestartedPidMap $result
        $after = Get-TreeRelations @($map.Values)
    }
    AfterAll {
        Stop-ProcessTree $program.Id, $result.ProcessIds
        Stop-TreeProgram $program
    }

    It 'restarted all 7 processes, each with a new pid' {
        $map.Count | Should -Be 7
        @($map.Keys | Sort-Object) | Should -Be @($roles.Values | Sort-Object)
        foreach ($old in $map.Keys) { $map[$old] | Should -Not -Be $old }
        @($map.Values | Sort-Object -Unique).Count | Should -Be 7
        foreach ($new in $map.Values) { $after.Contains($new) | Should -BeTrue -Because "$new exists" }
    }

    It 'links every process to the new pid of its old parent' {
        $after[$map[$roles.P]].ParentId | Should -Be $PID
        foreach ($r in $roles.Keys | Where-Object { $_ -ne 'P' }) {
            $after[$map[$roles[$r]]].ParentId | Should -Be $map[$before[$roles[$r]].ParentId] -Because "$r is the child of its parent's new pid"
        }
    }

    It 'is what each process itself sees: its new pid and its parent''s new pid' {
        $ids = @($live.Values | ForEach-Object { $map[$_] })
        $who = Request-Who $program $ids
        foreach ($r in $live.Keys) {
            $new = $map[$live[$r]]
            $who[$new].Role | Should -Be $r
            $who[$new].pid | Should -Be "$new"
            $parent = if ($r -eq 'P') { $PID } else { $map[$before[$live[$r]].ParentId] }
            $who[$new].ppid | Should -Be "$parent" -Because "$r sees its parent's new pid"
            $who[$new].pgid | Should -Be "$($after[$new].ProcessGroupId)"
        }
    }

    It 'keeps the stopped child stopped' {
        Get-ProcessState $map[$roles.S] | Should -Be 'T'
    }

    It 'keeps the zombie a zombie until its restarted parent reaps it at its new pid, with exit status 7' {
        $z = $map[$roles.Z]
        Get-ProcessState $z | Should -Be 'Z'
        (Get-ProcStat $z).ParentId | Should -Be $map[$roles.P]
        $skip = @(Get-ProgramLines $program).Count
        Send-Signal $map[$roles.P] USR2
        $line = Wait-ProgramLine $program '^REAP ' -Skip $skip -Id $map[$roles.P]
        $line | Should -Be "REAP pid=$z code=7 signal=0"
    }
}

Describe '-Scope Process on a parent takes only the parent (tree_family)' {
    BeforeAll {
        $program = Start-TreeProgram tree_family
        $roles = Get-ProgramRoles $program
        $path = Join-Path $TestDrive 'parent-only.ctx'
        $checkpoint = Invoke-TreeCheckpoint $program.Id $path -Parameters @{ Scope = 'Process' }
        $context = Get-CrContext -Path $path -ErrorAction Stop
    }
    AfterAll {
        Stop-TreeProgram $program
    }

    It 'wrote one process, the parent' {
        $checkpoint.ProcessIds | Should -Be @($program.Id)
        @($context.Processes).Count | Should -Be 1
        $context.Processes[0].Pid | Should -Be $program.Id
        $context.Image.Scope | Should -Be 'Process'
    }

    It 'left every process running, untraced, and the children never stopped' {
        foreach ($r in $roles.Keys) { Test-ProcessUntouched $roles[$r] | Should -BeTrue -Because "$r runs untraced" }
        $who = Request-Who $program @($roles.Values)
        foreach ($r in $roles.Keys) { $who[$roles[$r]].Role | Should -Be $r }
    }
}

Describe 'A session leader with a process group inside it, checkpointed by -Scope Session (tree_family -g in its own session)' {
    BeforeAll {
        $program = Start-TreeProgram tree_family -ArgumentList '-g' -NewSession
        $roles = Get-ProgramRoles $program
        $before = Get-TreeRelations @($roles.Values)
        $path = Join-Path $TestDrive 'session.ctx'
        $checkpoint = Invoke-TreeCheckpoint $roles.P $path -Parameters @{ Kill = $true; Scope = 'Session' }
        $result = Invoke-TreeRestart $path -Parameters @{ RestoreSid = $true }
        $after = Get-TreeRelations @($roles.Values)
        $who = Request-Who $program @($roles.Values)
    }
    AfterAll {
        Stop-ProcessTree $program.Id, @($result.ProcessIds)
        Stop-TreeProgram $program
    }

    It 'started as one session led by the parent, W2 leading a group of its own with its child G2 inside' {
        foreach ($r in $roles.Keys) { $before[$roles[$r]].SessionId | Should -Be $roles.P }
        $before[$roles.P].ProcessGroupId | Should -Be $roles.P
        $before[$roles.W2].ProcessGroupId | Should -Be $roles.W2
        $before[$roles.G2].ProcessGroupId | Should -Be $roles.W2
        $before[$roles.G1].ProcessGroupId | Should -Be $roles.P
    }

    It 'took every process of the session' {
        @($checkpoint.ProcessIds | Sort-Object) | Should -Be @($roles.Values | Sort-Object)
    }

    It 'restores the session with -RestoreSid: the leader leads it again, every member is in it' {
        foreach ($r in $roles.Keys) {
            $after[$roles[$r]].SessionId | Should -Be $roles.P -Because "$r is in the restored session"
            $who[$roles[$r]].sid | Should -Be "$($roles.P)" -Because "$r's getsid says so"
        }
    }

    It 'restores both groups, leaders first: the leader''s (with W1 and G1) and W2''s (with G2)' {
        foreach ($r in $roles.Keys) {
            $after[$roles[$r]].ProcessGroupId | Should -Be $before[$roles[$r]].ProcessGroupId -Because "$r is in its group"
            $who[$roles[$r]].pgid | Should -Be "$($before[$roles[$r]].ProcessGroupId)" -Because "$r's getpgrp says so"
        }
    }

    It 'keeps the parent links (the leader is a child of this PowerShell)' {
        $after[$roles.P].ParentId | Should -Be $PID
        foreach ($r in $roles.Keys | Where-Object { $_ -ne 'P' }) { $after[$roles[$r]].ParentId | Should -Be $before[$roles[$r]].ParentId }
    }

    It 'without -RestoreSid joins the caller''s session but keeps the two groups and their leaders' {
        Stop-ProcessTree $result.ProcessIds
        $again = Invoke-TreeRestart $path
        try {
            $now = Get-TreeRelations @($roles.Values)
            foreach ($r in $roles.Keys) {
                $now[$roles[$r]].SessionId | Should -Be $Self.SessionId -Because "$r joined this session"
                $now[$roles[$r]].ProcessGroupId | Should -Be $before[$roles[$r]].ProcessGroupId -Because "$r is in its group"
            }
        }
        finally { Stop-ProcessTree $again.ProcessIds }
    }
}

Describe 'A process group inside a session, checkpointed by -Scope Group (tree_family -g in its own session)' {
    BeforeAll {
        $program = Start-TreeProgram tree_family -ArgumentList '-g' -NewSession
        $roles = Get-ProgramRoles $program
        $before = Get-TreeRelations @($roles.Values)
        $path = Join-Path $TestDrive 'group.ctx'
        $checkpoint = Invoke-CrCheckpoint -Id $roles.W2 -Path $path -Scope Group -Kill -ErrorAction Stop
        # The group's leader W2 is a zombie of the parent, which is not in the checkpoint: it reaps it.
        $null = Wait-Until { (Get-ProcessState $roles.W2) -eq 'Z' } -Because 'W2 to be killed'
        $skip = @(Get-ProgramLines $program).Count
        Send-Signal $roles.P USR2
        $reaped = Wait-ProgramLine $program '^REAP ' -Skip $skip -Id $roles.P
        $null = Wait-Until { -not (Test-Path "/proc/$($roles.W2)") -and -not (Test-Path "/proc/$($roles.G2)") } -Because 'W2 and G2 to be gone'
        $result = Invoke-TreeRestart $path
        $after = Get-TreeRelations @($roles.W2, $roles.G2)
    }
    AfterAll {
        Stop-ProcessTree $program.Id, @($result.ProcessIds)
        Stop-TreeProgram $program
    }

    It 'took only the group: W2 and G2' {
        @($checkpoint.ProcessIds | Sort-Object) | Should -Be @(@($roles.W2, $roles.G2) | Sort-Object)
        $reaped | Should -Be "REAP pid=$($roles.W2) code=-1 signal=9"
    }

    It 'left the rest of the session running untouched' {
        foreach ($r in 'P', 'W1', 'G1') { Test-ProcessUntouched $roles[$r] | Should -BeTrue -Because "$r runs" }
    }

    It 'restarts W2 as the root (a child of this PowerShell) and G2 as its child, both in W2''s group again' {
        @($result.ProcessIds | Sort-Object) | Should -Be @(@($roles.W2, $roles.G2) | Sort-Object)
        $after[$roles.W2].ParentId | Should -Be $PID
        $after[$roles.G2].ParentId | Should -Be $roles.W2
        $after[$roles.W2].ProcessGroupId | Should -Be $roles.W2
        $after[$roles.G2].ProcessGroupId | Should -Be $roles.W2
        $after[$roles.W2].SessionId | Should -Be $Self.SessionId -Because 'the leader of their session was not checkpointed'
        # Their stdout is the launcher's file at the offset it had at the checkpoint: the parent has written past
        # it since, so their lines land before the last ones.
        $who = Request-Who $program @($roles.W2, $roles.G2) -Anywhere
        $who[$roles.G2].ppid | Should -Be "$($roles.W2)"
        $who[$roles.G2].pgid | Should -Be "$($roles.W2)"
        $who[$roles.W2].Role | Should -Be 'W2'
    }
}

# Regression tests of three engine bugs: a descendant reaped between listing and admitting it failed the whole
# checkpoint; a member that became a zombie while its parent was frozen was refused; children that exited during the
# freeze were left out, so the restarted parent's waitpid failed with ECHILD.
Describe 'A process forked during the freeze is caught, and the tree still restarts (tree_forker)' {
    BeforeAll {
        $program = Start-TreeProgram tree_forker -ArgumentList 8000
        $roles = Get-ProgramRoles $program
        $null = Wait-TestProgramOutput $program '^TICK 300 '
        # Checkpoints that leave the tree running, until one catches a child forked while the tree was frozen.
        # A checkpoint that fails is counted (a child that ends while the tree is listed must not make it fail).
        $path = $null
        $caught = $null
        $attempts = 0
        $failures = [System.Collections.Generic.List[string]]::new()
        for ($i = 1; $i -le 15 -and -not $caught; $i++) {
            if (Test-ProcessExited $program) { break }
            $attempts = $i
            $candidate = Join-Path $TestDrive "forker-$i.ctx"
            try { $checkpoint = Invoke-CrCheckpoint -Id $program.Id -Path $candidate -ErrorAction Stop }
            catch { $failures.Add("attempt ${i}: $($_.FullyQualifiedErrorId): $($_.Exception.Message)"); continue }
            $caught = @($checkpoint.Messages | Where-Object { $_ -match 'caught .*born during the freeze' })[0]
            $path = $candidate
        }
        $context = $null
        $result = $null
        $exit = $null
        if ($path) {
            $context = Get-CrContext -Path $path -ErrorAction Stop
            Stop-ProcessTree $program.Id
            $null = Wait-Until { @($context.Processes.Pid | Where-Object { Test-Path "/proc/$_" }).Count -eq 0 } -TimeoutSec 20 -Because 'the original tree to be gone'
            $result = Invoke-TreeRestart $path
            $exit = Wait-RestartedExit $result -TimeoutSec 40
        }
        $noCheckpoint = "no checkpoint of the forker succeeded: $($failures -join '; ')"
    }
    AfterAll {
        Stop-ProcessTree $program.Id, @($result.ProcessIds)
        Stop-TreeProgram $program
    }

    It 'never failed because a short-lived child ended while the tree was being listed and frozen' {
        $failures | Should -BeNullOrEmpty
    }

    It 'caught a child forked during the freeze (in at most 15 checkpoints) and saved it with the others' {
        $path | Should -Not -BeNullOrEmpty -Because $noCheckpoint
        $caught | Should -Not -BeNullOrEmpty -Because "one of $attempts checkpoints of a forker should catch a fork during the freeze"
        $ids = [int[]]@([regex]::Matches(($caught -replace '^.*caught ', ''), '\d+') | ForEach-Object { [int]$_.Value })
        foreach ($id in $ids) { $context.Processes.Pid | Should -Contain $id }
        foreach ($r in $roles.Keys) { $context.Processes.Pid | Should -Contain $roles[$r] }
    }

    It 'saved every process of the tree with its parent in the tree' {
        $path | Should -Not -BeNullOrEmpty -Because $noCheckpoint
        foreach ($p in $context.Processes | Where-Object Pid -ne $program.Id) {
            $context.Processes.Pid | Should -Contain $p.Process.ParentPid -Because "the parent of $($p.Pid) is in the checkpoint"
        }
    }

    It 'finishes after the restart: the forker reaped every child with its exit code, the parent reaped everybody' {
        $path | Should -Not -BeNullOrEmpty -Because $noCheckpoint
        $out = @(Get-ProgramLines $program)
        $out | Where-Object { $_ -like 'BAD*' } | Should -BeNullOrEmpty
        $out | Where-Object { $_ -like 'FORKER *' } | Should -Be 'FORKER forks=8000 reaped=8000 bad=0'
        $out | Where-Object { $_ -like 'DONE *' } | Should -Be 'DONE forker=exit:0 workers=3'
        $exit.ExitCode | Should -Be 0
    }
}

Describe 'With -Directory, one context file per process, and a restart of the whole directory (tree_family)' {
    BeforeAll {
        $program = Start-TreeProgram tree_family -ArgumentList '-z', '3'
        $roles = Get-ProgramRoles $program
        $before = Get-TreeRelations @($roles.Values)
        $dir = Join-Path $TestDrive 'tree-dir'
        $checkpoint = Invoke-CrCheckpoint -Id $program.Id -Directory $dir -Kill -ErrorAction Stop
        $null = Wait-Until { @($roles.Values | Where-Object { Test-Path "/proc/$_" }).Count -eq 0 } -TimeoutSec 20
        $result = Invoke-TreeRestart $dir
        $after = Get-TreeRelations @($roles.Values)
    }
    AfterAll {
        Stop-ProcessTree $program.Id, @($result.ProcessIds)
        Stop-TreeProgram $program
    }

    It 'wrote context.PID for each process and nothing else' {
        @(Get-ChildItem $dir | ForEach-Object Name | Sort-Object) | Should -Be @($roles.Values | Sort-Object | ForEach-Object { "context.$_" })
        foreach ($id in $roles.Values) { (Get-CrContext -Path (Join-Path $dir "context.$id")).Processes[0].Pid | Should -Be $id }
    }

    It 'restarts them all from the directory, with their pids and parents' {
        @($result.ProcessIds | Sort-Object) | Should -Be @($roles.Values | Sort-Object)
        $after[$roles.P].ParentId | Should -Be $PID
        foreach ($r in $roles.Keys | Where-Object { $_ -ne 'P' }) { $after[$roles[$r]].ParentId | Should -Be $before[$roles[$r]].ParentId }
        Get-ProcessState $roles.Z | Should -Be 'Z'
    }
}
