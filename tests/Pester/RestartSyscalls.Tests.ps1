# A program frozen inside a system call carries on in it after the restart: a sleep wakes when it would have
# (not at once, not from the beginning), a read, poll or select on a FIFO returns the data written after the
# restart, and pause() returns when a signal comes.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/RestartHelpers.psm1"
}

AfterAll {
    Stop-AllRestartedProcesses
    Stop-AllTestPrograms
}

Describe 'A program frozen in a sleep of 3 s, checkpointed with -Kill 1 s into it, wakes about 2 s after the restart' {
    BeforeAll {
        # All kinds at once, so that the seconds of sleeping overlap. Times are CLOCK_MONOTONIC milliseconds,
        # the program's own and this process's: the program says when its sleep began and when it woke.
        $cases = [ordered]@{}
        foreach ($kind in 'sleep', 'nanosleep', 'clock', 'absolute', 'nanosleep-twice') {
            $real = $kind -replace '-twice$', ''
            $program = Start-TestProgram restart_sleeper -ArgumentList $real, 3000, 0 -WaitFor '^SLEEPING '
            $id = $program.Id
            $null = Wait-Until { (Get-ProcessState $id) -eq 'S' -and (Get-ProcSyscall $id).Number -eq 230 } -Because "$kind to be in clock_nanosleep"
            $cases[$kind] = [pscustomobject]@{
                Kind = $kind; Program = $program; Id = 0; Path = Join-Path $TestDrive "$kind.ctx"
                Began = [long](Get-TestProgramValue $program SLEEPING)[2]
                FreezeFrom = 0L; FreezeTo = 0L; RestartFrom = 0L; RestartTo = 0L; Line = $null; WokeAt = 0L
            }
        }
        # Let a second of each sleep pass (the time being measured, not a wait for a condition); the "twice"
        # case is first checkpointed with -Run half-way, so that its sleep goes on through restart_syscall.
        $twice = $cases['nanosleep-twice']
        while ((Get-MonotonicMs) -lt $twice.Began + 500) { Start-Sleep -Milliseconds 10 }
        $null = Invoke-CrCheckpoint -Id $twice.Program.Id -Path "$($twice.Path).first" -ErrorAction Stop
        foreach ($case in $cases.Values) {
            while ((Get-MonotonicMs) -lt $case.Began + 1000) { Start-Sleep -Milliseconds 10 }
            $case.FreezeFrom = Get-MonotonicMs
            $null = Invoke-CheckpointKill $case.Program.Id $case.Path
            $case.FreezeTo = Get-MonotonicMs
            $case.RestartFrom = Get-MonotonicMs
            $case.Id = (Invoke-TestRestart $case.Path).ProcessIds[0]
            $case.RestartTo = Get-MonotonicMs
        }
        foreach ($case in $cases.Values) {
            $case.Line = Wait-ProgramLine $case.Program '^WOKE ' -Id $case.Id -TimeoutSec 10
            $case.WokeAt = [long]$case.Line.Split(' ')[4]
        }
    }

    It '<_>: wakes when the time that was left has passed (about 2 s: not at once, not 3 s later)' -ForEach @(
        'sleep', 'nanosleep', 'clock', 'absolute', 'nanosleep-twice'
    ) {
        $c = $cases[$_]
        if ($_ -eq 'absolute') {
            # The deadline is on the system's monotonic clock: the time the process was dead counts.
            $earliest = $c.Began + 3000
            $latest = $c.Began + 3000 + 300
        }
        else {
            # A relative sleep has what was left when it was frozen still to sleep once it runs again.
            $earliest = $c.RestartFrom + (3000 - ($c.FreezeTo - $c.Began)) - 100
            $latest = $c.RestartTo + (3000 - ($c.FreezeFrom - $c.Began)) + 300
        }
        $story = 'began {0}, frozen {1}-{2}, restarted {3}-{4}, woke {5} ({6})' -f $c.Began, $c.FreezeFrom, $c.FreezeTo, $c.RestartFrom, $c.RestartTo, $c.WokeAt, $c.Line
        $c.WokeAt | Should -BeGreaterOrEqual $earliest -Because "the sleep must not return at once: $story"
        $c.WokeAt | Should -BeLessOrEqual $latest -Because "the sleep must not start over: $story"
        $c.WokeAt - $c.RestartTo | Should -BeGreaterThan 1200 -Because "about 2 s were left: $story"
        $null = Wait-Until { -not (Test-OwnChild $c.Id) } -Because 'the program to exit and be reaped'
    }

    It '<_>: has slept at least the 3 s it asked for by its own clock, and sleep() returned 0' -ForEach @(
        'sleep', 'nanosleep', 'clock', 'absolute', 'nanosleep-twice'
    ) {
        $fields = $cases[$_].Line.Split(' ')
        [long]$fields[1] | Should -BeGreaterOrEqual 3000
        $fields[3] | Should -Be '0'
    }

    It 'a sleep carried on once through restart_syscall (checkpointed with -Run before) sees one EINTR and sleeps the rest' {
        $cases['nanosleep-twice'].Line.Split(' ')[2] | Should -Be '1'
    }

    It 'a fresh sleep is simply issued again: the program sees no EINTR' {
        foreach ($kind in 'nanosleep', 'clock', 'absolute') { $cases[$kind].Line.Split(' ')[2] | Should -Be '0' -Because $kind }
    }
}

Describe 'A program frozen in a blocking call on a FIFO carries on in it: <_>' -ForEach @('read', 'poll', 'select') {
    BeforeAll {
        $fifo = Join-Path $TestDrive "$_.fifo"
        if ([CrTest.Native]::mkfifo($fifo, [Convert]::ToInt32('600', 8)) -ne 0) { throw "mkfifo $fifo failed" }
        $program = Start-TestProgram restart_io -ArgumentList $_, $fifo -WaitFor '^WAITING '
        $null = Wait-Until { (Get-ProcessState $program.Id) -eq 'S' -and $null -ne (Get-ProcSyscall $program.Id).Number }
        $syscall = (Get-ProcSyscall $program.Id).Number
        $path = Join-Path $TestDrive "$_.ctx"
        $null = Invoke-CheckpointKill $program.Id $path
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
    }
    AfterAll {
        Stop-RestartedProcess $result.ProcessIds
        Stop-TestProgram $program
    }

    It 'is back in the same system call, still waiting' {
        $null = Wait-Until { (Get-ProcessState $id) -eq 'S' -and (Get-ProcSyscall $id).Number -eq $syscall } -Because 'the program to wait in the same call'
        Get-ProgramLines $program | Where-Object { $_ -like 'GOT *' } | Should -BeNullOrEmpty
        Get-FdTarget $id 3 | Should -Be $fifo
    }

    It 'returns the data written to the FIFO after the restart' {
        & bash -c "printf 'hello after restart\n' > '$fifo'"
        $line = Wait-ProgramLine $program '^GOT ' -Id $id
        $want = if ($_ -eq 'read') { 20 } else { 120 }
        $line | Should -Be "GOT $_ $want 0 hello after restart"
        $null = Wait-Until { -not (Test-OwnChild $id) } -Because 'the program to exit and be reaped'
    }
}

Describe 'A program frozen in pause() carries on in it' {
    BeforeAll {
        $fifo = Join-Path $TestDrive 'pause.fifo'
        if ([CrTest.Native]::mkfifo($fifo, [Convert]::ToInt32('600', 8)) -ne 0) { throw "mkfifo $fifo failed" }
        $program = Start-TestProgram restart_io -ArgumentList 'pause', $fifo -WaitFor '^WAITING '
        $null = Wait-Until { (Get-ProcSyscall $program.Id).Number -eq 34 }
        $path = Join-Path $TestDrive 'pause.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
    }
    AfterAll {
        Stop-RestartedProcess $result.ProcessIds
        Stop-TestProgram $program
    }

    It 'waits in pause until a signal, whose handler runs; pause then returns EINTR' {
        $null = Wait-Until { (Get-ProcessState $id) -eq 'S' -and (Get-ProcSyscall $id).Number -eq 34 } -Because 'the program to pause again'
        Get-ProgramLines $program | Where-Object { $_ -like 'GOT *' } | Should -BeNullOrEmpty
        Send-Signal $id USR1
        $null = Wait-ProgramLine $program '^GOT pause -1 4 -$' -Id $id
        $null = Wait-ProgramLine $program '^USR1 1$' -Id $id
    }
}
