# Twenty checkpoint (-Kill) / restart cycles of one program: it ends with its state intact, and the PowerShell
# process that did it all (the parent of every restarted process) has leaked no descriptors, no zombies, no
# threads and no unbounded memory.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/RestartHelpers.psm1"

    # Zombie children of this PowerShell, but for those there before (left by other tests, if any).
    function Get-ZombieChildren([int[]] $Except = @()) { @(Get-OwnChildren | Where-Object { $_.State -eq 'Z' -and $_.Id -notin $Except }) }
}

AfterAll {
    Stop-AllRestartedProcesses
    Stop-AllTestPrograms
}

Describe 'Twenty checkpoint -Kill / restart cycles of one program (restart_state)' {
    BeforeAll {
        $children = @(Get-OwnChildren | ForEach-Object Id)
        $program = Start-TestProgram restart_state
        $null = Wait-Ticks $program 40 -Id $program.Id
        $first = Request-Report $program -Id $program.Id
        $path = Join-Path $TestDrive 'cycle.ctx'

        # One cycle first: what the engine loads and compiles on first use is not a leak.
        $null = Invoke-CheckpointKill $program.Id $path
        $id = (Invoke-TestRestart $path).ProcessIds[0]
        $null = Wait-Ticks $program ((Get-TickNumbers $program)[-1] + 20) -Id $id
        [System.GC]::Collect()
        [System.GC]::WaitForPendingFinalizers()
        $fdsBefore = Get-FdCount $PID
        $threadsBefore = (Get-ProcStat $PID).Threads
        $rssBefore = Get-RssKiB $PID

        $ids = [System.Collections.Generic.List[int]]::new()
        $problems = [System.Collections.Generic.List[string]]::new()
        foreach ($cycle in 1..20) {
            $null = Invoke-CheckpointKill $id $path
            $result = Invoke-TestRestart $path
            $id = $result.ProcessIds[0]
            $ids.Add($id)
            # Let it count a little between two checkpoints.
            $null = Wait-Ticks $program ((Get-TickNumbers $program)[-1] + 20) -Id $id
        }
        $last = Request-Report $program -Id $id
        $null = Wait-Ticks $program ((Get-TickNumbers $program)[-1] + 40) -Id $id

        [System.GC]::Collect()
        [System.GC]::WaitForPendingFinalizers()
        $zombies = try { $null = Wait-Until { (Get-ZombieChildren -Except $children).Count -eq 0 } -TimeoutSec 5; @() } catch { Get-ZombieChildren -Except $children }
        $fdsAfter = Get-FdCount $PID
        $threadsAfter = (Get-ProcStat $PID).Threads
        $rssAfter = Get-RssKiB $PID
    }
    AfterAll {
        Stop-AllRestartedProcesses
        Stop-TestProgram $program
    }

    It 'gets its original pid back every time' {
        $ids | Should -HaveCount 20
        @($ids | Select-Object -Unique) | Should -Be @($program.Id)
        $last.pid | Should -Be "$($program.Id)"
    }

    It 'counts on through all the cycles: every 20th round reported once, none missing' {
        Get-SequenceProblem (Get-TickNumbers $program) -Step 20 -First 20 | Should -BeNullOrEmpty
        [long]$last.count | Should -BeGreaterThan ([long]$first.count + 20 * 20)
    }

    It 'writes its log files on, with every round exactly once' {
        foreach ($log in 'append.log', 'seq.log') {
            Get-SequenceProblem (Get-FileNumbers (Join-Path $program.Directory $log)) -First 1 | Should -BeNullOrEmpty -Because $log
        }
    }

    It 'has its memory intact: no rolling check and no full check found a difference' {
        $last.bad | Should -Be '0'
        $last.full | Should -Be '0'
        Get-ProgramLines $program | Where-Object { $_ -like 'CORRUPT*' } | Should -BeNullOrEmpty
    }

    It 'keeps its handlers, mask, pending signal, umask, cwd, limits and name' {
        $last.usr1 | Should -Be '2'
        foreach ($key in 'umask', 'cwd', 'nofile', 'fsize', 'msgqueue', 'name', 'blocked', 'pending', 'intignored', 'usr1handler') {
            $last[$key] | Should -Be $first[$key] -Because "$key is what it was"
        }
    }

    It 'leaves no zombie child in this PowerShell' {
        $zombies | Should -BeNullOrEmpty
        Get-RestartedChildren -Except (@($children) + $id) | Should -BeNullOrEmpty -Because 'only the last restarted process is left'
    }

    It 'leaks no descriptor in this PowerShell' {
        $fdsAfter | Should -BeLessOrEqual ($fdsBefore + 2) -Because "this PowerShell had $fdsBefore descriptors before the 20 cycles and $fdsAfter after"
    }

    It 'leaks no thread in this PowerShell' {
        $threadsAfter | Should -BeLessOrEqual ($threadsBefore + 4) -Because "this PowerShell had $threadsBefore threads before and $threadsAfter after"
    }

    It 'does not grow this PowerShell''s memory without bound (less than 64 MiB more resident)' {
        ($rssAfter - $rssBefore) | Should -BeLessThan (64 * 1024) -Because "VmRSS went from $rssBefore KiB to $rssAfter KiB"
    }
}
