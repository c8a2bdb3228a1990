# What the processes of a tree share comes back shared: pipes between them with the bytes in flight (nothing lost,
# nothing doubled, in order), an open file description inherited by parent and child (one offset), shared anonymous
# memory, memfd and System V shared memory (one object mapped into both), a FIFO, and unix socketpairs with their
# queued data. Each test program checks its own traffic and says "BAD ..." at the first mistake.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/RestartHelpers.psm1"
    Import-Module "$PSScriptRoot/TreeHelpers.psm1"

    # The descriptor of a process that points at Path.
    function Get-FdOf([int] $Id, [string] $Path) {
        foreach ($fd in Get-ProcFds $Id) { if ((Get-FdTarget $Id $fd) -eq $Path) { return $fd } }
        throw "process $Id has no descriptor on $Path"
    }

    # Checkpoints a tree_share run (after TICK 100) with -Kill and restarts it; returns what the tests look at.
    function Invoke-ShareRound([string] $Name, [int] $Rounds, [string[]] $Kinds) {
        $program = Start-TreeProgram tree_share -ArgumentList (@("$Rounds") + $Kinds)
        $roles = Get-ProgramRoles $program
        $areas = @{}
        foreach ($line in Get-ProgramLines $program) { if ($line -match '^AREA (\S+) (0x[0-9a-f]+)$') { $areas[$Matches[1]] = ConvertFrom-Hex $Matches[2] } }
        $null = Wait-TestProgramOutput $program '^TICK 100$'
        $path = Join-Path $TestDrive "$Name.ctx"
        $null = Invoke-TreeCheckpoint $program.Id $path
        $context = Get-CrContext -Path $path -ErrorAction Stop
        $result = Invoke-TreeRestart $path
        $log = Join-Path $program.Directory 'shared.log'
        [pscustomobject]@{
            Program = $program; Roles = $roles; Areas = $areas; Path = $path; Context = $context; Result = $result; Log = $log
            # Seen right after the restart, while both run.
            Maps = @{ P = @(Get-ProcMaps $roles.P); C = @(Get-ProcMaps $roles.C) }
            LogShared = Test-SharedDescription -Id $roles.P -Fd (Get-FdOf $roles.P $log) -OtherId $roles.C -OtherFd (Get-FdOf $roles.C $log)
        }
    }

    function Get-MapAt($Maps, [uint64] $Address) { $Maps | Where-Object { $_.Start -le $Address -and $Address -lt $_.End } | Select-Object -First 1 }

    # Checkpoints a tree_channel run with -Kill once the child has read Lines lines, restarts it and waits for its end.
    function Invoke-ChannelRound([string] $Kind, [int] $Lines, [int] $At, [switch] $Slow) {
        $program = Start-TreeProgram tree_channel -ArgumentList (@($Kind, "$Lines") + @(if ($Slow) { 'slow' }))
        $null = Wait-TestProgramOutput $program "^TICK $At$" -TimeoutSec 20
        $path = Join-Path $TestDrive "channel-$Kind$(if ($Slow) { '-slow' }).ctx"
        $checkpoint = Invoke-TreeCheckpoint $program.Id $path
        $context = Get-CrContext -Path $path -ErrorAction Stop
        $result = Invoke-TreeRestart $path
        $exit = Wait-RestartedExit $result -TimeoutSec 30
        [pscustomobject]@{
            Program = $program; Checkpoint = $checkpoint; Context = $context; Result = $result; Exit = $exit
            Lines = @(Get-ProgramLines $program)
        }
    }
}

AfterAll {
    Stop-AllTreeProcesses
}

Describe 'A parent with three children talking over pipes, requests and answers in flight (tree_pipes)' {
    BeforeAll {
        $program = Start-TreeProgram tree_pipes -ArgumentList 3, 1500
        $roles = Get-ProgramRoles $program
        $null = Wait-TestProgramOutput $program '^TICK 1200$' -TimeoutSec 20
        $path = Join-Path $TestDrive 'pipes.ctx'
        $checkpoint = Invoke-TreeCheckpoint $program.Id $path
        $context = Get-CrContext -Path $path -ErrorAction Stop
        $result = Invoke-TreeRestart $path
        $exit = Wait-RestartedExit $result -TimeoutSec 30
        $lines = @(Get-ProgramLines $program)
    }
    AfterAll {
        Stop-ProcessTree $program.Id, @($result.ProcessIds)
        Stop-TreeProgram $program
    }

    It 'saved the four processes and the bytes waiting in the six pipes between them' {
        @($checkpoint.ProcessIds | Sort-Object) | Should -Be @($roles.Values | Sort-Object)
        @($context.Pipes).Count | Should -Be 6
        ($context.Pipes | Measure-Object -Property DataLength -Sum).Sum | Should -BeGreaterThan 0 -Because 'requests are sent up to 24 ahead'
    }

    It 'ran to the end after the restart: every answer right, each child exited 0 and was reaped by its parent' {
        $lines | Where-Object { $_ -like 'BAD*' } | Should -BeNullOrEmpty
        $lines[-1] | Should -Be 'DONE answers=4500 bad=0 children=OK'
        $exit.ExitCode | Should -Be 0
    }

    It 'counted every answer once across the restart (TICK 100 ... 4500, none missing or repeated)' {
        Get-SequenceProblem (Get-TickNumbers $program) -Step 100 -First 100 | Should -BeNullOrEmpty
        (Get-TickNumbers $program)[-1] | Should -Be 4500
    }
}

Describe 'Parent and child sharing MAP_SHARED anonymous memory, a memfd and one file description (tree_share)' {
    BeforeAll {
        $r = Invoke-ShareRound 'share' 800 'anon', 'memfd'
        $exit = Wait-RestartedExit $r.Result -TimeoutSec 30
        $lines = @(Get-ProgramLines $r.Program)
        $log = Get-FileLines $r.Log
    }
    AfterAll {
        Stop-ProcessTree $r.Program.Id, @($r.Result.ProcessIds)
        Stop-TreeProgram $r.Program
    }

    It 'saved each shared object once, for both processes' {
        $shared = @($r.Context.FileContents | Where-Object { $_.Record.Reason -eq 'shmem' })
        $shared.Count | Should -Be 2
        foreach ($kind in 'anon', 'memfd') {
            $keys = foreach ($p in $r.Context.Processes) {
                ($p.Map.Areas | Where-Object { $_.Start -le $r.Areas[$kind] -and $r.Areas[$kind] -lt $_.End }).SavedFileKey
            }
            @($keys).Count | Should -Be 2
            $keys[0] | Should -Not -BeNullOrEmpty
            $keys[1] | Should -Be $keys[0] -Because "the $kind area of both processes is one object"
        }
    }

    It 'maps one object into both processes again (same inode at the same address)' {
        foreach ($kind in 'anon', 'memfd') {
            $p = Get-MapAt $r.Maps.P $r.Areas[$kind]
            $c = Get-MapAt $r.Maps.C $r.Areas[$kind]
            $p | Should -Not -BeNullOrEmpty
            $c | Should -Not -BeNullOrEmpty
            $p.Protection | Should -Be 'rw-s'
            $c.Inode | Should -Be $p.Inode -Because "the $kind area is one object"
        }
    }

    It 'gives both the log back as one open file description (kcmp)' {
        $r.LogShared | Should -BeTrue
    }

    It 'completes every round after the restart: each handshake through each area went through, the patterns are intact' {
        $lines | Where-Object { $_ -match '^(STALL|CORRUPT|FAILED)' } | Should -BeNullOrEmpty
        $lines[-1] | Should -Be 'DONE rounds=800 child=exit:0 problems=0'
        $exit.ExitCode | Should -Be 0
    }

    It 'kept one offset for both writers: every P and C line of the log once, in order, nothing overwritten' {
        @($log | Where-Object { $_ -notmatch '^[PC] \d+$' }) | Should -BeNullOrEmpty
        foreach ($who in 'P', 'C') {
            $numbers = Get-LineNumbers $log $who
            Get-SequenceProblem $numbers -First 1 | Should -BeNullOrEmpty -Because "$who's lines are all there"
            $numbers.Count | Should -Be 800
        }
        (Get-Item $r.Log).Length | Should -Be ([System.Text.Encoding]::ASCII.GetByteCount(($log -join "`n") + "`n"))
    }
}

Describe 'Parent and child sharing System V shared memory (shmget/shmat, IPC_RMID) (tree_share)' {
    BeforeAll {
        $r = Invoke-ShareRound 'sysv' 600 'sysv'
        $exit = Wait-RestartedExit $r.Result -TimeoutSec 30
        $lines = @(Get-ProgramLines $r.Program)
    }
    AfterAll {
        Stop-ProcessTree $r.Program.Id, @($r.Result.ProcessIds)
        Stop-TreeProgram $r.Program
    }

    It 'saved the segment once' {
        $keys = foreach ($p in $r.Context.Processes) {
            ($p.Map.Areas | Where-Object { $_.Start -le $r.Areas.sysv -and $r.Areas.sysv -lt $_.End }).SavedFileKey
        }
        @($keys).Count | Should -Be 2
        $keys[0] | Should -Not -BeNullOrEmpty
        $keys[1] | Should -Be $keys[0]
    }

    It 'maps one segment into both processes again' {
        $p = Get-MapAt $r.Maps.P $r.Areas.sysv
        $c = Get-MapAt $r.Maps.C $r.Areas.sysv
        $p | Should -Not -BeNullOrEmpty
        $c | Should -Not -BeNullOrEmpty
        $c.Inode | Should -Be $p.Inode
        $p.Protection | Should -Be 'rw-s'
    }

    It 'completes every round after the restart: the handshakes through the segment went through, the pattern is intact' {
        $lines | Where-Object { $_ -match '^(STALL|CORRUPT|FAILED)' } | Should -BeNullOrEmpty
        $lines[-1] | Should -Be 'DONE rounds=600 child=exit:0 problems=0'
        $exit.ExitCode | Should -Be 0
    }
}

Describe 'A FIFO between two processes keeps working: both reopen it by path (tree_channel fifo slow: nothing in flight)' {
    BeforeAll {
        $r = Invoke-ChannelRound fifo 250 100 -Slow
    }
    AfterAll {
        Stop-ProcessTree $r.Program.Id, @($r.Result.ProcessIds)
        Stop-TreeProgram $r.Program
    }

    It 'saved the FIFO of both processes by its path and restarted both' {
        @($r.Result.ProcessIds).Count | Should -Be 2
        foreach ($p in $r.Context.Processes) {
            $d = @($p.Files.Descriptors | Where-Object { $_.Kind -eq 'Fifo' })
            $d.Count | Should -Be 1
            $d[0].Path | Should -Be (Join-Path $r.Program.Directory 'chan')
        }
    }

    It 'delivered every line once, in order, across the restart; the reader saw end-of-file when the writer closed; both ended well' {
        $r.Lines | Where-Object { $_ -like 'BAD*' } | Should -BeNullOrEmpty
        $r.Lines | Where-Object { $_ -like 'DONE *' } | Should -Be 'DONE got=250 bad=0'
        $r.Lines[-1] | Should -Be 'FINISHED child=exit:0 answers=0 badanswers=0'
        $r.Exit.ExitCode | Should -Be 0
        Get-SequenceProblem (Get-TickNumbers $r.Program) -Step 100 -First 100 | Should -BeNullOrEmpty
    }
}

Describe 'A FIFO between two processes keeps working, with the bytes in flight (tree_channel fifo)' {
    BeforeAll {
        $r = Invoke-ChannelRound fifo 6000 1000
    }
    AfterAll {
        Stop-ProcessTree $r.Program.Id, @($r.Result.ProcessIds)
        Stop-TreeProgram $r.Program
    }

    It 'checkpointed both ends of the FIFO while it was full' {
        @($r.Checkpoint.ProcessIds).Count | Should -Be 2
        $fifo = Join-Path $r.Program.Directory 'chan'
        foreach ($p in $r.Context.Processes) {
            @($p.Files.Descriptors | Where-Object { $_.Kind -eq 'Fifo' -and $_.Path -eq $fifo }).Count | Should -Be 1 -Because "process $($p.Pid) has the FIFO open"
        }
    }

    It 'delivered every line once, in order, across the restart; both ended well' {
        $r.Lines | Where-Object { $_ -like 'BAD*' } | Should -BeNullOrEmpty
        $r.Lines | Where-Object { $_ -like 'DONE *' } | Should -Be 'DONE got=6000 bad=0'
        $r.Lines[-1] | Should -Be 'FINISHED child=exit:0 answers=0 badanswers=0'
        $r.Exit.ExitCode | Should -Be 0
        Get-SequenceProblem (Get-TickNumbers $r.Program) -Step 100 -First 100 | Should -BeNullOrEmpty
    }
}

Describe 'Unix socketpairs between parent and child keep working, with the data queued both ways (tree_channel <Kind>)' -ForEach @(
    @{ Kind = 'stream'; Lines = 4000; At = 800 }
    @{ Kind = 'dgram'; Lines = 1000; At = 300 }
    @{ Kind = 'seqpacket'; Lines = 1000; At = 300 }
) {
    BeforeAll {
        $r = Invoke-ChannelRound $Kind $Lines $At
    }
    AfterAll {
        Stop-ProcessTree $r.Program.Id, @($r.Result.ProcessIds)
        Stop-TreeProgram $r.Program
    }

    It 'checkpointed both ends of the socketpair, with the data queued on it' {
        @($r.Checkpoint.ProcessIds).Count | Should -Be 2
        foreach ($p in $r.Context.Processes) {
            @($p.Files.Descriptors | Where-Object { "$($_.Kind)" -eq 'Socket' }).Count | Should -Be 1
        }
        ($r.Context.Sockets | Measure-Object -Property DataLength -Sum).Sum | Should -BeGreaterThan 0 -Because 'the parent sends faster than the child reads'
    }

    It 'delivered every message once, in order, and every answer, across the restart; both ended well' {
        $r.Lines | Where-Object { $_ -like 'BAD*' } | Should -BeNullOrEmpty
        $r.Lines | Where-Object { $_ -like 'DONE *' } | Should -Be "DONE got=$Lines bad=0"
        $r.Lines[-1] | Should -Be "FINISHED child=exit:0 answers=$($Lines / 25) badanswers=0"
        $r.Exit.ExitCode | Should -Be 0
        Get-SequenceProblem (Get-TickNumbers $r.Program) -Step 100 -First 100 | Should -BeNullOrEmpty
    }
}
