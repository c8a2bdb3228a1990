# What happens to the process after the checkpoint: -Run (the default), -Stop, -Kill, -Term, -Abort, -Cont, -Signal.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"

    # The last "TICK <count> <errors>" line of a counter, as numbers.
    function Get-LastTick($Program) {
        $line = Get-TestProgramOutput $Program | Where-Object { $_ -like 'TICK *' } | Select-Object -Last 1
        if (-not $line) { return $null }
        $f = $line.Split(' ')
        [pscustomobject]@{ Count = [long]$f[1]; Errors = [long]$f[2] }
    }

    # Waits until the counter has counted at least Rounds more than From, and returns its last tick.
    function Wait-Counting($Program, [long] $From, [long] $Rounds = 100) {
        Wait-Until { $t = Get-LastTick $Program; if ($t -and $t.Count -ge $From + $Rounds) { $t } } -TimeoutSec 20 -Because "$($Program.Name) to count past $($From + $Rounds)"
    }

    function Get-MapsText([int] $Id) { (Get-ProcMaps $Id | ForEach-Object { '{0:x}-{1:x} {2} {3}' -f $_.Start, $_.End, $_.Protection, $_.Path }) -join "`n" }
}

Describe '-Run (the default) leaves the program running with its state unchanged' {
    BeforeAll {
        $program = Start-TestProgram counter
        $null = Wait-Counting $program 0 40
        $mapsBefore = Get-MapsText $program.Id
        $maskBefore = Get-ProcHexMask $program.Id SigBlk
        $caughtBefore = Get-ProcHexMask $program.Id SigCgt
        $tickBefore = Get-LastTick $program
        $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'run.ctx') -ErrorAction Stop
    }
    AfterAll { Stop-TestProgram $program }

    It 'returns a result: After Run, no signal, the path, the pid, the sizes and the times' {
        "$($result.After)" | Should -Be 'Run'
        $result.Signal | Should -Be 0
        $result.Path | Should -Be (Join-Path $TestDrive 'run.ctx')
        $result.ProcessIds | Should -Be @($program.Id)
        $result.Bytes | Should -Be (Get-Item $result.Path).Length
        $result.MemoryBytes | Should -BeGreaterThan (5MB)
        $result.FrozenFor | Should -BeGreaterThan ([TimeSpan]::Zero)
        $result.FrozenFor | Should -BeLessOrEqual $result.Duration
        $result.BackupPath | Should -BeNullOrEmpty
    }

    It 'leaves the process running and no longer traced' {
        Test-ProcessUntouched $program.Id | Should -BeTrue
    }

    It 'lets it go on counting, and its memory checks find nothing changed' {
        $tick = Wait-Counting $program $tickBefore.Count 200
        $tick.Errors | Should -Be 0
        Get-TestProgramOutput $program | Where-Object { $_ -like 'CORRUPT*' } | Should -BeNullOrEmpty
    }

    It 'keeps its signal mask and handlers: a SIGUSR1 reaches its handler' {
        Get-ProcHexMask $program.Id SigBlk | Should -Be $maskBefore
        Get-ProcHexMask $program.Id SigCgt | Should -Be $caughtBefore
        Send-Signal $program.Id USR1
        $null = Wait-TestProgramOutput $program '^USR1 1 '
    }

    It 'leaves its memory map as it was (the scratch mapping is gone)' {
        Get-MapsText $program.Id | Should -Be $mapsBefore
    }

    It 'wrote a context that verifies, with the process running (state R or S) and one thread' {
        $context = Get-CrContext -Path $result.Path -Verify -ErrorAction Stop
        $context.Processes | Should -HaveCount 1
        $context.Processes[0].Threads | Should -HaveCount 1
        $context.Processes[0].Process.StateAtCheckpoint | Should -BeIn @('R', 'S')
        $context.Processes[0].Process.WasStopped | Should -BeFalse
        $context.ProcessIds | Should -Be @($program.Id)
    }

    It 'loses no signal: 50 queued real-time signals sent while it is checkpointed again and again' {
        $checkpoints = [powershell]::Create()
        $null = $checkpoints.AddScript({
                param($Module, $Id, $Path)
                Import-Module $Module
                for ($i = 0; $i -lt 15; $i++) { $null = Invoke-CrCheckpoint -Id $Id -Path $Path -NoSync -ErrorAction Stop }
                'done'
            }).AddArgument((Join-Path (Get-RepositoryRoot) 'CrCheckpoint.psd1')).AddArgument($program.Id).AddArgument((Join-Path $TestDrive 'signals.ctx'))
        $running = $checkpoints.BeginInvoke()
        try {
            # SIGRTMIN+2 (36 with glibc): real-time signals queue, so each one sent must be handled once.
            foreach ($i in 1..50) { Send-Signal $program.Id 36; Start-Sleep -Milliseconds 4 }
            $checkpointed = $checkpoints.EndInvoke($running)
        }
        finally { $checkpoints.Dispose() }
        $checkpointed | Should -Be 'done'
        $null = Wait-TestProgramOutput $program '^RT 50$'
        Get-TestProgramOutput $program | Where-Object { $_ -match '^RT (\d+)$' -and [int]$Matches[1] -gt 50 } | Should -BeNullOrEmpty
        Test-ProcessUntouched $program.Id | Should -BeTrue
    }

    It 'survives ten checkpoints in a row, still counting with its memory intact' {
        $from = (Get-LastTick $program).Count
        foreach ($i in 1..10) {
            $null = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'again.ctx') -NoSync -ErrorAction Stop
        }
        $tick = Wait-Counting $program $from 100
        $tick.Errors | Should -Be 0
        Test-ProcessUntouched $program.Id | Should -BeTrue
        Get-MapsText $program.Id | Should -Be $mapsBefore
    }
}

Describe '-Run on real programs leaves them running: <Kind>' -ForEach @(
    @{ Kind = 'python3' }
    @{ Kind = 'bash' }
) {
    BeforeAll {
        $program = Start-RealProgram $Kind
        $ticks = @(Get-TestProgramOutput $program | Where-Object { $_ -like 'TICK *' }).Count
        $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive "$Kind.ctx") -ErrorAction Stop
    }
    AfterAll { Stop-TestProgram $program }

    It 'keeps printing its ticks after the checkpoint, untraced' {
        $null = Wait-TestProgramOutput $program '^TICK ' -Skip ($ticks + 5)
        Test-ProcessUntouched $program.Id | Should -BeTrue
        Get-Content -Raw $program.ErrorOutput | Should -BeNullOrEmpty
    }

    It 'wrote a context that verifies' {
        (Get-CrContext -Path $result.Path -Verify -ErrorAction Stop).Processes[0].Name | Should -Be $Kind
    }
}

Describe '-Stop leaves the program stopped, and SIGCONT continues it' {
    BeforeAll {
        $program = Start-TestProgram counter
        $null = Wait-Counting $program 0 20
        $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'stop.ctx') -Stop -ErrorAction Stop
    }
    AfterAll { Stop-TestProgram $program }

    It 'returns After Stop and signal 19 (SIGSTOP)' {
        "$($result.After)" | Should -Be 'Stop'
        $result.Signal | Should -Be 19
    }

    It 'leaves the process stopped (state T), no longer traced' {
        # The stop takes effect when the released process next runs (in the kernel): wait for it.
        Wait-Until { (Get-ProcessState $program.Id) -eq 'T' } -TimeoutSec 5 | Should -BeTrue
        (Get-ProcStatus $program.Id)['TracerPid'] | Should -Be '0'
    }

    It 'wrote a context that verifies before stopping it' {
        (Get-CrContext -Path $result.Path -Verify -ErrorAction Stop).Verified | Should -BeTrue
    }

    It 'goes on counting after SIGCONT, with its memory intact' {
        $from = (Get-LastTick $program).Count
        Send-Signal $program.Id CONT
        $tick = Wait-Counting $program $from 100
        $tick.Errors | Should -Be 0
    }
}

Describe '-Stop stops the process exactly as it was checkpointed (spinner: no instruction may run in between)' {
    BeforeAll {
        $program = Start-TestProgram spinner
        $counter = ConvertFrom-Hex (Get-TestProgramValue $program COUNTER)[0]
    }
    AfterAll { Stop-TestProgram $program }

    It 'holds in the context, five times out of five, the counter value the stopped process still has' {
        $seen = foreach ($i in 1..5) {
            $path = Join-Path $TestDrive "spin$i.ctx"
            $null = Invoke-CrCheckpoint -Id $program.Id -Path $path -Stop -NoSync -ErrorAction Stop
            $null = Wait-Until { (Get-ProcessState $program.Id) -eq 'T' } -TimeoutSec 5
            $image = (Get-CrContext -Path $path -ErrorAction Stop).Processes[0]
            $region = $image.Regions | Where-Object { $_.Start -le $counter -and $counter -lt $_.End }
            $bytes = Read-SavedRegionBytes -ContextPath $path -Region $region
            $index = 0L
            foreach ($run in $region.SavedRuns) {
                $runStart = [uint64]$region.Start + [uint64]$run[0] * 4096
                if ($counter -ge $runStart -and $counter -lt $runStart + [uint64]$run[1] * 4096) { $index += [long]($counter - $runStart); break }
                $index += [long]$run[1] * 4096
            }
            $saved = [System.BitConverter]::ToUInt64($bytes, $index)
            $live = [System.BitConverter]::ToUInt64((Read-ProcessMemory -Id $program.Id -Address $counter -Length 8), 0)
            "checkpoint $i saved $saved, stopped process has $live ($($live - $saved) more)"
            Send-Signal $program.Id CONT
            $null = Wait-Until { (Get-ProcessState $program.Id) -eq 'R' } -TimeoutSec 5
        }
        $seen | Where-Object { $_ -notmatch '\(0 more\)$' } | Should -BeNullOrEmpty
    }
}

Describe '-Kill kills the program once the context is written' {
    BeforeAll {
        $program = Start-TestProgram counter
        $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'kill.ctx') -Kill -ErrorAction Stop
        $aliveRightAfter = Test-ProcessAlive $program.Id
    }
    AfterAll { Stop-TestProgram $program }

    It 'returns After Kill and signal 9' {
        "$($result.After)" | Should -Be 'Kill'
        $result.Signal | Should -Be 9
    }

    It 'has killed it by the time it returns, with SIGKILL' {
        $aliveRightAfter | Should -BeFalse
        Wait-TestProgramExit $program | Should -Be 'SIGNALED 9'
    }

    It 'wrote a context that verifies' {
        (Get-CrContext -Path $result.Path -Verify -ErrorAction Stop).Processes[0].Pid | Should -Be $program.Id
    }
}

Describe '-Term sends SIGTERM once the context is written' {
    It 'lets a program with a SIGTERM handler handle it (it prints TERM and exits 0)' {
        $program = Start-TestProgram counter
        try {
            $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'term1.ctx') -Term -ErrorAction Stop
            "$($result.After)" | Should -Be 'Term'
            $result.Signal | Should -Be 15
            $null = Wait-TestProgramOutput $program '^TERM '
            Wait-TestProgramExit $program | Should -Be 'EXITED 0'
            (Get-CrContext -Path $result.Path -Verify -ErrorAction Stop).Verified | Should -BeTrue
        }
        finally { Stop-TestProgram $program }
    }

    It 'kills a program that keeps the default action (SIGNALED 15)' {
        $program = Start-TestProgram counter default-term
        try {
            $null = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'term2.ctx') -Term -ErrorAction Stop
            Wait-TestProgramExit $program | Should -Be 'SIGNALED 15'
        }
        finally { Stop-TestProgram $program }
    }

    It 'ends sleep the same way' {
        $program = Start-RealProgram sleep
        try {
            $null = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'term3.ctx') -Term -ErrorAction Stop
            Wait-TestProgramExit $program | Should -Be 'SIGNALED 15'
        }
        finally { Stop-TestProgram $program }
    }
}

Describe '-Abort, -Signal and -Cont' {
    It '-Abort ends the program with SIGABRT' {
        $program = Start-TestProgram counter
        try {
            $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'abort.ctx') -Abort -ErrorAction Stop
            $result.Signal | Should -Be 6
            Wait-TestProgramExit $program | Should -Be 'SIGNALED 6'
        }
        finally { Stop-TestProgram $program }
    }

    It '-Signal 10 delivers SIGUSR1 after the checkpoint and the program goes on' {
        $program = Start-TestProgram counter
        try {
            $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'signal.ctx') -Signal 10 -ErrorAction Stop
            "$($result.After)" | Should -Be 'Signal'
            $result.Signal | Should -Be 10
            $null = Wait-TestProgramOutput $program '^USR1 1 '
            $from = (Get-LastTick $program).Count
            (Wait-Counting $program $from 50).Errors | Should -Be 0
        }
        finally { Stop-TestProgram $program }
    }

    It '-Run leaves a stopped program stopped, and -Cont continues it' {
        $program = Start-TestProgram counter
        try {
            Send-Signal $program.Id STOP
            $null = Wait-Until { (Get-ProcessState $program.Id) -eq 'T' }
            $null = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'stopped.ctx') -ErrorAction Stop
            # The stop takes effect again when the released process next runs (in the kernel): wait for it.
            Wait-Until { (Get-ProcessState $program.Id) -eq 'T' } -TimeoutSec 5 | Should -BeTrue
            (Get-CrContext -Path (Join-Path $TestDrive 'stopped.ctx')).Processes[0].Process.WasStopped | Should -BeTrue

            $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'cont.ctx') -Cont -ErrorAction Stop
            "$($result.After)" | Should -Be 'Cont'
            $result.Signal | Should -Be 18
            $from = (Get-LastTick $program).Count
            (Wait-Counting $program $from 50).Errors | Should -Be 0
            (Get-CrContext -Path $result.Path).Processes[0].Process.WasStopped | Should -BeTrue
        }
        finally { Stop-TestProgram $program }
    }

    It 'refuses two after-checkpoint actions at once (terminating error), before touching the program' {
        $program = Start-TestProgram counter
        try {
            $path = Join-Path $TestDrive 'two.ctx'
            $thrown = { Invoke-CrCheckpoint -Id $program.Id -Path $path -Stop -Kill } | Should -Throw -PassThru
            $thrown.FullyQualifiedErrorId | Should -BeLike 'ConflictingAfter*,CrCheckpoint.PowerShell.InvokeCrCheckpointCommand'
            "$($thrown.CategoryInfo.Category)" | Should -Be 'InvalidArgument'
            $thrown.Exception.Message | Should -Match '-Stop.*-Kill'
            $path | Should -Not -Exist
            Test-ProcessUntouched $program.Id | Should -BeTrue
        }
        finally { Stop-TestProgram $program }
    }
}
