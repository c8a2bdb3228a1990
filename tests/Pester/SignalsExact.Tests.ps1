# Signal state and the process tree come back exactly, as the programs themselves see it (signals_exact):
# a child stopped by SIGTSTP is stopped by SIGTSTP again (its parent's waitid says so), a pending SIGTRAP
# is delivered with its value to its handler, a zombie keeps its own process group, a child in seccomp
# strict mode survives the checkpoint and goes on echoing, a pidfd of a child refers to the restarted child. And a checkpoint never hangs: a vfork parent,
# which no ptrace stop reaches, makes a checkpoint with -TimeoutSec fail with TimedOut and is left as it was.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/RestartHelpers.psm1"

    # Starts signals_exact MODE, checkpoints its tree with -Kill and restarts it; returns the program and
    # the READY line's fields. The program then reports once "go" exists in its directory.
    function Invoke-SignalsCase([string] $Mode, [string[]] $Arguments = @()) {
        $program = Start-TestProgram signals_exact -ArgumentList (@($Mode) + $Arguments)
        $ready = ConvertFrom-KeyValueLine (Wait-TestProgramOutput $program '^READY .*').Value
        $path = Join-Path $TestDrive "$Mode.ctx"
        $checkpoint = Invoke-CheckpointKill $program.Id $path
        $restart = Invoke-TestRestart $path
        [pscustomobject]@{ Program = $program; Ready = $ready; Checkpoint = $checkpoint; Restart = $restart; Path = $path }
    }

    function Request-SignalsReport($Case, [string] $Pattern) {
        $null = New-Item -ItemType File -Force -Path (Join-Path $Case.Program.Directory 'go')
        Wait-ProgramLine $Case.Program $Pattern -Id $Case.Restart.ProcessIds[0]
    }
}

AfterAll {
    Stop-AllRestartedProcesses
    Stop-AllTestPrograms
}

Describe 'A child stopped by SIGTSTP comes back stopped by SIGTSTP' {
    BeforeAll {
        $case = Invoke-SignalsCase stopped '20'
        $context = Get-CrContext -Path $case.Path -ErrorAction Stop
        $child = [int]$case.Ready.child
        $after = ConvertFrom-KeyValueLine (Request-SignalsReport $case '^AFTER ')
        $state = Wait-ProgramLine $case.Program '^STATE ' -Id $case.Restart.ProcessIds[0]
    }

    It 'was stopped by SIGTSTP before the checkpoint (CLD_STOPPED, status 20), and the context says so' {
        [int]$case.Ready.code | Should -Be 5
        [int]$case.Ready.status | Should -Be 20
        $record = ($context.Processes | Where-Object Pid -eq $child).Process
        $record.WasStopped | Should -BeTrue
        $record.StopSignal | Should -Be 20
    }

    It 'is reported by its restarted parent''s waitid(WSTOPPED) as stopped by SIGTSTP, not SIGSTOP' {
        [int]$after.code | Should -Be 5
        [int]$after.status | Should -Be 20
    }

    It 'is in state T in /proc' {
        $state | Should -Be 'STATE T'
    }
}

Describe 'A pending SIGTRAP with a handler is delivered after the restart' {
    BeforeAll {
        $case = Invoke-SignalsCase sigtrap
        $pending = Request-SignalsReport $case '^PENDING '
        $handled = ConvertFrom-KeyValueLine (Wait-ProgramLine $case.Program '^HANDLED ' -Id $case.Restart.ProcessIds[0])
    }

    It 'is still pending (and blocked) when the program looks' {
        $pending | Should -Be 'PENDING 1'
    }

    It 'reaches the SIGTRAP handler with its siginfo (SI_QUEUE, value 4242) once unblocked' {
        [int]$handled.code | Should -Be -1
        [int]$handled.value | Should -Be 4242
    }
}

Describe 'A zombie keeps its own process group' {
    BeforeAll {
        $case = Invoke-SignalsCase zombie
        $zombie = ConvertFrom-KeyValueLine (Request-SignalsReport $case '^ZOMBIE ')
        $reaped = ConvertFrom-KeyValueLine (Wait-ProgramLine $case.Program '^REAPED ' -Id $case.Restart.ProcessIds[0])
    }

    It 'led its own group before the checkpoint' {
        [int]$case.Ready.pgid | Should -Be ([int]$case.Ready.child)
        $case.Ready.state | Should -Be 'Z'
    }

    It 'is a zombie in the same group after the restart, and is reaped with exit code 7' {
        $zombie.state | Should -Be 'Z'
        [int]$zombie.pgid | Should -Be ([int]$case.Ready.pgid)
        [int]$reaped.status | Should -Be (7 -shl 8)
    }

    It 'comes back as a zombie killed by SIGKILL too (its parent''s waitpid says signal 9)' {
        [int]$reaped.killed | Should -Be 9
    }
}

Describe 'A child stopped in the group of a session leader stays stopped once the pwsh that restarted it exits' {
    BeforeAll {
        # In the caller's session the group would become orphaned when the caller exits, and the kernel
        # would send SIGHUP and SIGCONT to it: the stopped child would die.
        $program = Start-TestProgram signals_exact -ArgumentList stopped, 19, samegroup -NewSession
        $ready = ConvertFrom-KeyValueLine (Wait-TestProgramOutput $program '^READY .*').Value
        $path = Join-Path $TestDrive 'session.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $root = Get-RepositoryRoot
        $run = Invoke-ChildPwsh "Import-Module '$root/CrCheckpoint.psd1'; (Invoke-CrRestart -Path '$path' -ErrorAction Stop).ProcessIds -join ' '"
        $ids = @(($run.Output | Select-Object -Last 1) -split ' ' | Where-Object { $_ } | ForEach-Object { [int]$_ })
        $null = New-Item -ItemType File -Force -Path (Join-Path $program.Directory 'go')
        $after = ConvertFrom-KeyValueLine (Wait-ProgramLine $program '^AFTER ' -Id $program.Id)
        $session = (Get-ProcStat $program.Id).SessionId
    }
    AfterAll {
        foreach ($id in $ids) { try { Send-Signal $id KILL } catch { } }
        Stop-TestProgram $program
    }

    It 'was restarted, and its root leads its own session again' {
        $run.ExitCode | Should -Be 0
        $ids | Should -Contain $program.Id
        $session | Should -Be $program.Id
    }

    It 'is still stopped by SIGSTOP, as its parent''s waitid reports' {
        [int]$after.code | Should -Be 5
        [int]$after.status | Should -Be 19
    }
}

Describe 'A child in seccomp strict mode is checkpointed without harm and restarted in strict mode' {
    BeforeAll {
        $case = Invoke-SignalsCase strict
        $mode = Request-SignalsReport $case '^SECCOMP '
        $echo = Wait-ProgramLine $case.Program '^ECHO ' -Id $case.Restart.ProcessIds[0]
    }

    It 'says in the context that the child is in strict mode' {
        $record = (Get-CrContext -Path $case.Path -ErrorAction Stop).Processes | Where-Object Pid -eq ([int]$case.Ready.child)
        $record.Threads[0].Sandbox.Mode | Should -Be 1
    }

    It 'is in strict mode again (Seccomp: 1) and goes on echoing' {
        $mode | Should -Be 'SECCOMP 1'
        $echo | Should -Be 'ECHO z'
    }
}

Describe 'A pidfd of a child refers to the restarted child' {
    BeforeAll {
        $case = Invoke-SignalsCase pidfd
        $record = ((Get-CrContext -Path $case.Path -ErrorAction Stop).Processes | Where-Object Pid -eq $case.Program.Id).Files.Descriptors |
            Where-Object Fd -eq ([int]$case.Ready.fd)
        $killed = ConvertFrom-KeyValueLine (Request-SignalsReport $case '^PIDFD ')
    }

    It 'is saved as a pidfd of the child' {
        "$($record.Kind)" | Should -Be 'PidFd'
        $record.PidFd.Pid | Should -Be ([int]$case.Ready.child)
    }

    It 'kills the restarted child through pidfd_send_signal, and waitid(P_PIDFD) reaps that child' {
        [int]$killed.pid | Should -Be ([int]$case.Ready.child)
        [int]$killed.signal | Should -Be 9
    }
}

Describe 'A checkpoint with -TimeoutSec of a process that cannot be frozen times out and leaves it as it was' {
    BeforeAll {
        $program = Start-TestProgram signals_exact -ArgumentList vfork
        $ready = ConvertFrom-KeyValueLine (Wait-TestProgramOutput $program '^READY .*').Value
        $parent = [int]$ready.parent
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        $failure = $null
        $result = Invoke-CrCheckpoint -Id $parent -Scope Process -Path (Join-Path $TestDrive 'vfork.ctx') -TimeoutSec 1 `
            -ErrorAction SilentlyContinue -ErrorVariable failure
        $seconds = $clock.Elapsed.TotalSeconds
    }
    AfterAll { Stop-TestProgram $program }

    It 'fails with TimedOut within a few seconds, naming the process, and writes no context file' {
        $result | Should -BeNullOrEmpty
        $failure | Should -Not -BeNullOrEmpty
        $failure[0].FullyQualifiedErrorId | Should -BeLike 'Checkpoint.TimedOut,*'
        "$($failure[0])" | Should -Match "process $parent"
        $seconds | Should -BeLessThan 10
        Join-Path $TestDrive 'vfork.ctx' | Should -Not -Exist
    }

    It 'leaves the parent untraced, and it carries on once its vfork child ends' {
        $null = Wait-Until { (Get-ProcStatus $parent).TracerPid -eq '0' } -TimeoutSec 5 -Because "process $parent to be traced no more"
        Send-Signal ([int]$ready.child) KILL
        $null = Wait-TestProgramOutput $program '^RESUMED$'
        Test-ProcessAlive $parent | Should -BeTrue
    }
}
