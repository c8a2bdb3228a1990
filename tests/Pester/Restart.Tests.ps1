# Invoke-CrRestart as a user runs it: checkpoint with -Kill, restart, and check from the program's own point of
# view (restart_state reports what it sees) that it carries on where it was: same pid, counters, memory, files,
# handlers, mask, umask, cwd, limits, name. Then the options: -NoRestorePid, a pid in use, -RestorePgid,
# -RestoreSid, what to do after the restart (-Stop, -Kill, -Term, -Abort, -Signal, -Cont), -Wait, the pipeline.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/RestartHelpers.psm1"

    $script:Suffix = ',CrCheckpoint.PowerShell.InvokeCrRestartCommand'
    $script:Self = Get-ProcStat $PID

    # Starts restart_state, lets it tick, checkpoints it with -Kill; returns the program, its report before
    # the checkpoint, the context path and the ticks printed before the checkpoint.
    function Start-Checkpointed([string] $Name, [switch] $NewSession, [switch] $Stopped, [string[]] $ArgumentList = @()) {
        $program = Start-TestProgram restart_state -ArgumentList $ArgumentList -NewSession:$NewSession
        $null = Wait-Ticks $program 40 -Id $program.Id
        $report = Request-Report $program -Id $program.Id
        if ($Stopped) {
            Send-Signal $program.Id STOP
            $null = Wait-Until { (Get-ProcessState $program.Id) -eq 'T' }
        }
        $masks = @{}
        foreach ($field in 'SigBlk', 'SigIgn', 'SigCgt', 'ShdPnd') { $masks[$field] = Get-ProcHexMask $program.Id $field }
        $path = Join-Path $TestDrive "$Name.ctx"
        $checkpoint = Invoke-CheckpointKill $program.Id $path
        [pscustomobject]@{
            Program = $program; Before = $report; Path = $path; Checkpoint = $checkpoint; Masks = $masks
            Ticks = Get-TickNumbers $program; Lines = @(Get-ProgramLines $program).Count
        }
    }
}

AfterAll {
    Stop-AllRestartedProcesses
    Stop-AllTestPrograms
}

Describe 'A program restarted after a checkpoint with -Kill carries on where it was (restart_state)' {
    BeforeAll {
        $c = Start-Checkpointed 'state' -NewSession
        $program = $c.Program
        $before = $c.Before
        $image = (Get-CrContext -Path $c.Path -ErrorAction Stop).Processes[0]
        $result = Invoke-TestRestart $c.Path
        $id = $result.ProcessIds[0]
        $null = Wait-Ticks $program ($c.Ticks[-1] + 100) -Id $id
        $after = Request-Report $program -Id $id
    }
    AfterAll {
        Stop-RestartedProcess $result.ProcessIds
        Stop-TestProgram $program
    }

    It 'returns a RestartResult: the path, the original pid as ProcessIds and OriginalProcessIds, the memory it restored' {
        $result.Path | Should -Be $c.Path
        $result.ProcessIds | Should -Be @($program.Id)
        $result.OriginalProcessIds | Should -Be @($program.Id)
        $result.MemoryBytes | Should -BeGreaterThan (2MB)
        $result.Duration | Should -BeGreaterThan ([TimeSpan]::Zero)
        $result.Messages | Should -Not -BeNullOrEmpty
        $result.ExitCode | Should -BeNullOrEmpty
        $result.ExitSignal | Should -BeNullOrEmpty
    }

    It 'leaves it running, untraced, as a child of this PowerShell (as cr_restart is the parent of what it restarts)' {
        Test-ProcessUntouched $id | Should -BeTrue
        (Get-ProcStat $id).ParentId | Should -Be $PID
        $after.ppid | Should -Be "$PID"
    }

    It 'gives it its original pid, as the program itself sees it' {
        $before.pid | Should -Be "$($program.Id)"
        $after.pid | Should -Be "$($program.Id)"
    }

    It 'lets it count on from its checkpointed value: every 20th round is reported once, none missing' {
        $ticks = Get-TickNumbers $program
        Get-SequenceProblem $ticks -Step 20 -First 20 | Should -BeNullOrEmpty
        $ticks[-1] | Should -BeGreaterThan $c.Ticks[-1]
        [long]$after.count | Should -BeGreaterThan ([long]$before.count)
    }

    It 'gives it its memory back: its rolling checks and a check of the whole 2 MiB find no difference' {
        $after.bad | Should -Be '0'
        $after.full | Should -Be '0'
        Get-ProgramLines $program | Where-Object { $_ -like 'CORRUPT*' } | Should -BeNullOrEmpty
        Get-ProgramLines $program | Where-Object { $_ -match '^TICK \d+ [1-9]' } | Should -BeNullOrEmpty
    }

    It 'lets it append to its files at the right offsets: 1, 2, 3... once each, with O_APPEND and without' {
        foreach ($log in 'append.log', 'seq.log') {
            $numbers = Get-FileNumbers (Join-Path $program.Directory $log)
            Get-SequenceProblem $numbers -First 1 | Should -BeNullOrEmpty -Because "$log holds every round once"
            $numbers[-1] | Should -BeGreaterThan ([long]$before.count)
        }
        (Get-ProcFdInfo $id 1).Flags -band 0x400 | Should -Be 0 -Because 'stdout (the launcher''s file, not O_APPEND) is written at its offset'
    }

    It 'keeps its umask, working directory, resource limits and name' {
        foreach ($key in 'umask', 'cwd', 'nofile', 'fsize', 'msgqueue', 'name') {
            $after[$key] | Should -Be $before[$key] -Because "$key is what it was"
        }
        $before.umask | Should -Be '027'
        $before.nofile | Should -BeLike '321/*'
        $before.name | Should -Be 'rs-worker'
        (Get-ProcStatus $id)['Umask'] | Should -Be '0027'
        (Get-Item "/proc/$id/cwd").LinkTarget | Should -Be $before.cwd
        (Get-ProcLimit $id 'Max open files').Soft | Should -Be '321'
        (Get-ProcStat $id).Name | Should -Be 'rs-worker'
    }

    It 'runs the handlers installed before the checkpoint: SIGUSR1 counts on (1, then 2), SIGHUP works, SIGINT stays ignored' {
        $before.usr1 | Should -Be '1'
        $after.usr1 | Should -Be '2'
        $after.usr1handler | Should -Be '1'
        $after.intignored | Should -Be '1'
        $hup = Request-Report $program -Id $id -Signal HUP
        $hup.hup | Should -Be '1'
        Send-Signal $id INT
        $again = Request-Report $program -Id $id
        $again.usr1 | Should -Be '3'
        Test-ProcessAlive $id | Should -BeTrue
        Get-ProcHexMask $id SigCgt | Should -Be $c.Masks.SigCgt
        Get-ProcHexMask $id SigIgn | Should -Be $c.Masks.SigIgn
    }

    It 'keeps blocked signals blocked (SIGUSR2, SIGRTMIN+2) and the SIGUSR2 that was pending still pending' {
        $after.blocked | Should -Be $before.blocked
        $after.pending | Should -Be $before.pending
        [System.Convert]::ToUInt64($after.blocked, 16) | Should -Be ((1L -shl 11) -bor (1L -shl 35))
        $after.pending | Should -Be '800'
        Get-ProcHexMask $id SigBlk | Should -Be $c.Masks.SigBlk
        Get-ProcHexMask $id ShdPnd | Should -Be $c.Masks.ShdPnd
        $c.Masks.ShdPnd | Should -Be (1L -shl 11)
        Send-Signal $id USR2
        $report = Request-Report $program -Id $id
        $report.pending | Should -Be '800'
        Test-ProcessAlive $id | Should -BeTrue
    }

    It 'joins the process group and session of this PowerShell by default, though it led its own before' {
        $before.pgid | Should -Be "$($program.Id)"
        $before.sid | Should -Be "$($program.Id)"
        $after.pgid | Should -Be "$($Self.ProcessGroupId)"
        $after.sid | Should -Be "$($Self.SessionId)"
    }

    It 'has exactly the memory areas of the context: ranges, protections and files' {
        Get-MergedMaps $id | Should -Be (ConvertTo-MergedMapText @($image.Map.Areas))
    }
}

Describe '-NoRestorePid, and an original pid that a live process holds' {
    AfterEach {
        Stop-AllRestartedProcesses
        Stop-AllTestPrograms
    }

    It '-NoRestorePid gives a new pid, which the program sees; OriginalProcessIds keeps the old one' {
        $c = Start-Checkpointed 'newpid'
        $result = Invoke-TestRestart $c.Path -Parameters @{ NoRestorePid = $true }
        $id = $result.ProcessIds[0]
        $id | Should -Not -Be $c.Program.Id
        $result.OriginalProcessIds | Should -Be @($c.Program.Id)
        $report = Request-Report $c.Program -Id $id
        $report.pid | Should -Be "$id"
        $report.full | Should -Be '0'
        $report.usr1 | Should -Be '2'
        (Get-ProcStat $id).ParentId | Should -Be $PID
        Test-Path "/proc/$($c.Program.Id)" | Should -BeFalse -Because 'the original pid is not taken'
        $null = Wait-Ticks $c.Program ($c.Ticks[-1] + 60) -Id $id
        Get-SequenceProblem (Get-TickNumbers $c.Program) -Step 20 -First 20 | Should -BeNullOrEmpty
    }

    It 'a pid held by a live process is a PidInUse error (ResourceExists) that names it and suggests -NoRestorePid; nothing is left running' {
        $program = Start-TestProgram restart_state
        $null = Wait-Ticks $program 40 -Id $program.Id
        $path = Join-Path $TestDrive 'inuse.ctx'
        $null = Invoke-CrCheckpoint -Id $program.Id -Path $path -ErrorAction Stop
        $errors = Invoke-FailingRestart $path
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be "Restart.PidInUse$Suffix"
        "$($errors[0].CategoryInfo.Category)" | Should -Be 'ResourceExists'
        "$($errors[0].TargetObject)" | Should -Be "$($program.Id)"
        $errors[0].Exception.Message | Should -Match "\b$($program.Id)\b"
        $errors[0].Exception.Message | Should -Match '-NoRestorePid'
        Get-LeftRunning | Should -BeNullOrEmpty -Because 'nothing was left running'
        Test-ProcessUntouched $program.Id | Should -BeTrue -Because 'the process holding the pid is not touched'
        $from = (Get-TickNumbers $program)[-1]
        $null = Wait-Ticks $program ($from + 40) -Id $program.Id
    }

    It 'the same context restarts with -NoRestorePid beside the original that still runs' {
        $program = Start-TestProgram restart_state
        $null = Wait-Ticks $program 40 -Id $program.Id
        $path = Join-Path $TestDrive 'beside.ctx'
        $null = Invoke-CrCheckpoint -Id $program.Id -Path $path -ErrorAction Stop
        $result = Invoke-TestRestart $path -Parameters @{ NoRestorePid = $true }
        $id = $result.ProcessIds[0]
        $id | Should -Not -Be $program.Id
        Test-ProcessUntouched $id | Should -BeTrue
        (Get-ProcStat $id).Name | Should -Be 'rs-worker'
        Test-ProcessUntouched $program.Id | Should -BeTrue
    }
}

Describe '-RestorePgid and -RestoreSid put back the group and session a leader had' {
    AfterEach {
        Stop-AllRestartedProcesses
        Stop-AllTestPrograms
    }

    It 'with <Label>: process group <Group>, session <Session>, as the program sees them' -ForEach @(
        @{ Label = '-RestorePgid'; Parameters = @{ RestorePgid = $true }; Group = 'own'; Session = 'PowerShell''s' }
        @{ Label = '-RestoreSid'; Parameters = @{ RestoreSid = $true }; Group = 'own'; Session = 'own' }
        @{ Label = '-RestorePgid -RestoreSid'; Parameters = @{ RestorePgid = $true; RestoreSid = $true }; Group = 'own'; Session = 'own' }
        @{ Label = 'neither'; Parameters = @{}; Group = 'PowerShell''s'; Session = 'PowerShell''s' }
    ) {
        $c = Start-Checkpointed 'leader' -NewSession
        $c.Before.pgid | Should -Be "$($c.Program.Id)"
        $c.Before.sid | Should -Be "$($c.Program.Id)"
        $result = Invoke-TestRestart $c.Path -Parameters $Parameters
        $id = $result.ProcessIds[0]
        $report = Request-Report $c.Program -Id $id
        $wantGroup = if ($Group -eq 'own') { $id } else { $Self.ProcessGroupId }
        $wantSession = if ($Session -eq 'own') { $id } else { $Self.SessionId }
        $report.pgid | Should -Be "$wantGroup"
        $report.sid | Should -Be "$wantSession"
        (Get-ProcStat $id).ProcessGroupId | Should -Be $wantGroup
        (Get-ProcStat $id).SessionId | Should -Be $wantSession
        $report.full | Should -Be '0'
    }

    It '-RestoreSid of a program that did not lead its session is Unsupported, and nothing is left running' {
        $c = Start-Checkpointed 'member'
        $c.Before.sid | Should -Not -Be "$($c.Program.Id)"
        $errors = Invoke-FailingRestart $c.Path -Parameters @{ RestoreSid = $true }
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be "Restart.Unsupported$Suffix"
        $errors[0].Exception.Message | Should -Match 'session'
        Get-LeftRunning | Should -BeNullOrEmpty
        Test-Path "/proc/$($c.Program.Id)" | Should -BeFalse -Because 'the half-built process with the original pid was killed and reaped'
    }
}

Describe 'What happens to the program after the restart' {
    AfterEach {
        Stop-AllRestartedProcesses
        Stop-AllTestPrograms
    }

    It '-Stop leaves it stopped (state T), untraced, having printed nothing; SIGCONT lets it go on, its memory intact' {
        # That it stops before running a single instruction is checked with spinner (RestartPrograms.Tests.ps1).
        $c = Start-Checkpointed 'stop'
        $result = Invoke-TestRestart $c.Path -Parameters @{ Stop = $true }
        $id = $result.ProcessIds[0]
        $null = Wait-Until { (Get-ProcessState $id) -eq 'T' } -Because 'the restarted program to be stopped'
        (Get-ProcStatus $id)['TracerPid'] | Should -Be '0'
        @(Get-ProgramLines $c.Program).Count | Should -Be $c.Lines -Because 'a stopped program prints nothing'
        Send-Signal $id CONT
        $null = Wait-Ticks $c.Program ($c.Ticks[-1] + 60) -Id $id
        (Request-Report $c.Program -Id $id).full | Should -Be '0'
    }

    It '-Kill ends it with SIGKILL, which -Wait reports as ExitSignal' {
        # Restarter.Rebuild sends the after-restart signal before Tracee.Release(); SIGKILL ends a traced
        # process at once, so Release's PTRACE_SETREGS finds no process and the whole restart is reported failed.
        $c = Start-Checkpointed 'endKill'
        $run = Invoke-GuardedRestart $c.Path -Wait -Parameters @{ Kill = $true } -ExpectedId $c.Program.Id
        $run.TimedOut | Should -BeFalse
        $run.Errors | Should -BeNullOrEmpty
        $run.Result.ExitSignal | Should -Be 'SIGKILL'
        $run.Result.ExitCode | Should -BeNullOrEmpty
        @(Get-ProgramLines $c.Program).Count | Should -Be $c.Lines -Because 'it is killed before it runs'
        Test-OwnChild $c.Program.Id | Should -BeFalse -Because 'it was reaped, not left a zombie'
    }

    It '-<Action> ends it with <Signal>, which -Wait reports as ExitSignal (no ExitCode)' -ForEach @(
        @{ Action = 'Term'; Signal = 'SIGTERM' }
        @{ Action = 'Abort'; Signal = 'SIGABRT' }
    ) {
        $c = Start-Checkpointed "end$Action"
        $run = Invoke-GuardedRestart $c.Path -Wait -Parameters @{ $Action = $true } -ExpectedId $c.Program.Id
        $run.TimedOut | Should -BeFalse
        $run.Errors | Should -BeNullOrEmpty
        $run.Result.ExitSignal | Should -Be $Signal
        $run.Result.ExitCode | Should -BeNullOrEmpty
        $run.Result.ProcessIds | Should -Be @($c.Program.Id)
        Test-OwnChild $c.Program.Id | Should -BeFalse -Because 'it was reaped, not left a zombie'
    }

    It '-Term lets a program with a SIGTERM handler handle it: counter prints TERM and -Wait reports ExitCode 0' {
        $program = Start-TestProgram counter
        $null = Wait-TestProgramOutput $program '^TICK 40 '
        $path = Join-Path $TestDrive 'counterterm.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $lines = @(Get-ProgramLines $program).Count
        $run = Invoke-GuardedRestart $path -Wait -Parameters @{ Term = $true } -ExpectedId $program.Id
        $run.TimedOut | Should -BeFalse
        $run.Result.ExitCode | Should -Be 0
        $run.Result.ExitSignal | Should -BeNullOrEmpty
        Get-ProgramLines $program | Select-Object -Skip $lines | Where-Object { $_ -like 'TERM *' } | Should -HaveCount 1
    }

    It '-Signal 10 delivers SIGUSR1 after the restart: the handler installed before the checkpoint reports it' {
        $c = Start-Checkpointed 'signal'
        $result = Invoke-TestRestart $c.Path -Parameters @{ Signal = 10 }
        $id = $result.ProcessIds[0]
        $line = Wait-ProgramLine $c.Program '^STATE ' -Skip $c.Lines -Id $id
        $report = ConvertFrom-KeyValueLine $line
        $report.usr1 | Should -Be '2'
        $report.full | Should -Be '0'
        $report.pid | Should -Be "$id"
        $null = Wait-Ticks $c.Program ($c.Ticks[-1] + 40) -Id $id
    }

    It '-Wait reports the exit code of a program that ends by itself after the restart (exits 7 after a SIGHUP from -Signal 1)' {
        $c = Start-Checkpointed 'exit7' -ArgumentList 'exit-after', '30', '7'
        $run = Invoke-GuardedRestart $c.Path -Wait -Parameters @{ Signal = 1 } -ExpectedId $c.Program.Id
        $run.TimedOut | Should -BeFalse
        $run.Errors | Should -BeNullOrEmpty
        $run.Result.ExitCode | Should -Be 7
        $run.Result.ExitSignal | Should -BeNullOrEmpty
        $exit = Get-ProgramLines $c.Program | Where-Object { $_ -like 'EXIT *' }
        $exit | Should -HaveCount 1
        $exit | Should -Match '^EXIT 7 '
        Get-SequenceProblem (Get-TickNumbers $c.Program) -Step 20 -First 20 | Should -BeNullOrEmpty
    }

    It 'a program stopped when it was checkpointed comes back stopped; -Cont makes it run' {
        $c = Start-Checkpointed 'stopped' -Stopped
        (Get-CrContext -Path $c.Path -ErrorAction Stop).Processes[0].Process.WasStopped | Should -BeTrue
        $first = Invoke-TestRestart $c.Path
        $id = $first.ProcessIds[0]
        $null = Wait-Until { (Get-ProcessState $id) -eq 'T' } -Because 'the restarted program to be stopped as it was'
        Stop-RestartedProcess $id

        $second = Invoke-TestRestart $c.Path -Parameters @{ Cont = $true }
        $id = $second.ProcessIds[0]
        $null = Wait-Ticks $c.Program ($c.Ticks[-1] + 60) -Id $id
        Get-ProcessState $id | Should -BeIn @('R', 'S')
        (Request-Report $c.Program -Id $id).full | Should -Be '0'
    }

    It 'refuses two actions at once (terminating error) and restarts nothing' {
        $c = Start-Checkpointed 'two'
        $children = @(Get-RestartedChildren | ForEach-Object Id)
        $thrown = { Invoke-CrRestart -Path $c.Path -Stop -Kill } | Should -Throw -PassThru
        $thrown.FullyQualifiedErrorId | Should -Be "ConflictingAfterAction$Suffix"
        Get-RestartedChildren -Except $children | Should -BeNullOrEmpty
        Test-Path "/proc/$($c.Program.Id)" | Should -BeFalse
    }
}

Describe 'Invoke-CrRestart in a pipeline and with -WhatIf' {
    AfterEach {
        Stop-AllRestartedProcesses
        Stop-AllTestPrograms
    }

    It 'takes the Path of a CheckpointResult piped from Invoke-CrCheckpoint -Kill' {
        $program = Start-TestProgram restart_state
        $null = Wait-Ticks $program 40 -Id $program.Id
        $ticks = Get-TickNumbers $program
        $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'piped.ctx') -Kill -ErrorAction Stop | Invoke-CrRestart -ErrorAction Stop
        Register-RestartedProcess $result.ProcessIds
        $result.ProcessIds | Should -Be @($program.Id)
        $null = Wait-Ticks $program ($ticks[-1] + 60) -Id $program.Id
        Get-SequenceProblem (Get-TickNumbers $program) -Step 20 -First 20 | Should -BeNullOrEmpty
    }

    It 'takes a file from Get-Item (FullName) and a relative -Path resolved against the PowerShell location' {
        $c = Start-Checkpointed 'byitem'
        $result = Get-Item $c.Path | Invoke-CrRestart -ErrorAction Stop
        Register-RestartedProcess $result.ProcessIds
        $result.Path | Should -Be $c.Path
        Stop-RestartedProcess $result.ProcessIds
        Push-Location $TestDrive
        try { $again = Invoke-CrRestart -Path 'byitem.ctx' -ErrorAction Stop }
        finally { Pop-Location }
        Register-RestartedProcess $again.ProcessIds
        $again.Path | Should -Be $c.Path
        $again.ProcessIds | Should -Be @($c.Program.Id)
    }

    It 'takes a context file whose path has spaces and non-ASCII letters (given literally)' {
        $program = Start-TestProgram restart_state
        $null = Wait-Ticks $program 20 -Id $program.Id
        $dir = Join-Path $TestDrive 'a dir ü [1]'
        $null = New-Item -ItemType Directory -Path $dir
        $path = Join-Path $dir 'job ü.ctx'
        $null = Invoke-CrCheckpoint -Id $program.Id -Path $path -Kill -ErrorAction Stop
        $null = Wait-Until { -not (Test-Path "/proc/$($program.Id)") }
        $result = Invoke-TestRestart $path
        $result.Path | Should -Be $path
        (Request-Report $program -Id $result.ProcessIds[0]).full | Should -Be '0'
    }

    It '-WhatIf restarts nothing and returns nothing' {
        $c = Start-Checkpointed 'whatif'
        $children = @(Get-RestartedChildren | ForEach-Object Id)
        $output = Invoke-CrRestart -Path $c.Path -WhatIf
        $output | Should -BeNullOrEmpty
        Get-RestartedChildren -Except $children | Should -BeNullOrEmpty
        Test-Path "/proc/$($c.Program.Id)" | Should -BeFalse
    }
}
