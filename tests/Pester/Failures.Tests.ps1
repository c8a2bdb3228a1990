# A failed checkpoint leaves no file behind (nor a temporary one), keeps an existing context file, and leaves
# the target exactly as it was: running, untraced, its state intact. Each failure is a non-terminating error
# with a fitting id, category and target.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"

    $script:Suffix = ',CrCheckpoint.PowerShell.InvokeCrCheckpointCommand'

    # Runs a checkpoint expected to fail; returns its error records (and throws if it wrote any result).
    function Invoke-FailingCheckpoint([scriptblock] $Checkpoint) {
        $all = @(& { $ErrorActionPreference = 'Continue'; & $Checkpoint } 2>&1)
        @($all | Where-Object { $_ -isnot [System.Management.Automation.ErrorRecord] }) | Should -BeNullOrEmpty -Because 'a failed checkpoint returns no result'
        , @($all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
    }

    # Everything in a directory, hidden files (a left-over temporary context file) included.
    function Get-DirectoryEntries([string] $Path) { @(Get-ChildItem -Force -LiteralPath $Path | ForEach-Object Name | Sort-Object) }

    # A counter that still counts, with its memory intact, and is untraced: the target as it was.
    function Assert-CounterUnchanged($Program) {
        Test-ProcessUntouched $Program.Id | Should -BeTrue -Because 'the target is released: running, not stopped, not traced'
        $before = @(Get-TestProgramOutput $Program).Count
        $null = Wait-TestProgramOutput $Program '^TICK \d+ 0$' -Skip $before
        Get-TestProgramOutput $Program | Where-Object { $_ -like 'CORRUPT*' } | Should -BeNullOrEmpty
    }
}

Describe 'A target that does not exist' {
    BeforeAll {
        $dir = Join-Path $TestDrive 'gone'
        $null = New-Item -ItemType Directory $dir
        $program = Start-RealProgram sleep
        $gonePid = $program.Id
        Stop-TestProgram $program
        $null = Wait-Until { -not (Test-Path "/proc/$gonePid") }
    }

    It 'is a ProcessNotFound error (ObjectNotFound) naming the pid, with no file written' {
        Push-Location $dir
        try { $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $gonePid } }
        finally { Pop-Location }
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.ProcessNotFound$Suffix"
        "$($errors[0].CategoryInfo.Category)" | Should -Be 'ObjectNotFound'
        $errors[0].TargetObject | Should -Be $gonePid
        $errors[0].Exception.Message | Should -Match "\b$gonePid\b"
        Get-DirectoryEntries $dir | Should -BeNullOrEmpty
    }

    It 'is the same for pid 0 and a negative pid' {
        foreach ($id in 0, -5) {
            $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $id -Path (Join-Path $dir 'x.ctx') }
            $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.ProcessNotFound$Suffix"
        }
        Get-DirectoryEntries $dir | Should -BeNullOrEmpty
    }

    It 'does not stop the other targets of the same call' {
        $alive = Start-TestProgram counter
        try {
            Push-Location $dir
            try {
                $errors = $null
                $results = @($gonePid, $alive.Id | Invoke-CrCheckpoint -ErrorAction SilentlyContinue -ErrorVariable errors)
            }
            finally { Pop-Location }
            $errors | Should -HaveCount 1
            $errors[0].TargetObject | Should -Be $gonePid
            $results | Should -HaveCount 1
            $results[0].ProcessIds | Should -Be @($alive.Id)
            Get-DirectoryEntries $dir | Should -Be @("context.$($alive.Id)")
        }
        finally {
            Stop-TestProgram $alive
            Remove-Item -Force (Join-Path $dir "context.$($alive.Id)") -ErrorAction Ignore
        }
    }
}

Describe 'A descriptor the engine cannot save: <Kind>' -ForEach @(
    @{ Kind = 'userfaultfd'; Words = 'userfaultfd' }
    @{ Kind = 'unixdgram'; Words = 'socket' }
    @{ Kind = 'fanotify'; Words = 'fanotify' }
    @{ Kind = 'pidfd'; Words = 'pidfd' }
) {
    BeforeAll {
        $dir = Join-Path $TestDrive $Kind
        $null = New-Item -ItemType Directory $dir
        $program = Start-TestProgram unsupported $Kind
        $statusBefore = Get-ProcStatus $program.Id
        $mapsBefore = (Get-ProcMaps $program.Id | ForEach-Object { '{0:x}-{1:x} {2}' -f $_.Start, $_.End, $_.Protection }) -join "`n"
        $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $dir 'x.ctx') }
    }
    AfterAll { Stop-TestProgram $program }

    It 'is an Unsupported error (NotImplemented) that names the descriptor and what it is' {
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.Unsupported$Suffix"
        "$($errors[0].CategoryInfo.Category)" | Should -Be 'NotImplemented'
        $errors[0].TargetObject | Should -Be $program.Id
        $errors[0].Exception.Message | Should -Match 'descriptor 3\b'
        $errors[0].Exception.Message | Should -Match $Words
    }

    It 'leaves no file, not even a temporary one' {
        Get-DirectoryEntries $dir | Should -BeNullOrEmpty
    }

    It 'leaves the process running, untraced, with its mask, memory map and descriptors as they were' {
        Test-ProcessUntouched $program.Id | Should -BeTrue
        $now = Get-ProcStatus $program.Id
        foreach ($field in 'SigBlk', 'SigPnd', 'ShdPnd', 'SigCgt') { $now[$field] | Should -Be $statusBefore[$field] -Because $field }
        (Get-ProcMaps $program.Id | ForEach-Object { '{0:x}-{1:x} {2}' -f $_.Start, $_.End, $_.Protection }) -join "`n" | Should -Be $mapsBefore
        (Get-Item "/proc/$($program.Id)/fd/3").LinkTarget | Should -Not -BeNullOrEmpty
    }

    It 'leaves the program working: its SIGUSR1 handler still runs' {
        Send-Signal $program.Id USR1
        $null = Wait-TestProgramOutput $program '^USR1 1$'
    }

    It 'is foreseen by Get-CrCheckpointable, which gives the same reason' {
        $report = Get-CrCheckpointable -Id $program.Id
        $report.Checkpointable | Should -BeFalse
        "$($report.Failure)" | Should -Be 'Unsupported'
        $report.Reason | Should -Match 'descriptor 3\b'
    }
}

Describe 'Processes that cannot be taken' {
    It 'refuses a zombie (a process that has exited but is not reaped), saying so' {
        $parent = Start-TestProgram zombie
        try {
            $zombie = [int](Get-TestProgramValue $parent ZOMBIE)[0]
            Get-ProcessState $zombie | Should -Be 'Z'
            $path = Join-Path $TestDrive 'zombie.ctx'
            $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $zombie -Path $path }
            $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.Unsupported$Suffix"
            $errors[0].TargetObject | Should -Be $zombie
            $errors[0].Exception.Message | Should -Match 'zombie'
            $path | Should -Not -Exist
            Get-ProcessState $zombie | Should -Be 'Z'
        }
        finally {
            # Let the parent reap it (init may not), then end.
            Send-Signal $parent.Id USR1
            $null = Wait-TestProgramOutput $parent '^REAPED$'
            Stop-TestProgram $parent
        }
    }

    It 'refuses a kernel thread (kthreadd, pid 2), saying it is a kernel thread' {
        $path = Join-Path $TestDrive 'kthreadd.ctx'
        $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id 2 -Path $path }
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.Unsupported$Suffix"
        $errors[0].TargetObject | Should -Be 2
        $errors[0].Exception.Message | Should -Match 'kernel thread'
        $path | Should -Not -Exist
    }

    It 'refuses this PowerShell process itself, saying it cannot checkpoint itself' {
        $path = Join-Path $TestDrive 'self.ctx'
        # This PowerShell has children here (the launchers of the programs the tests started).
        $helper = Start-TestProgram counter
        try {
            $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $PID -Path $path }
            $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.Unsupported$Suffix"
            $errors[0].Exception.Message | Should -Match 'PowerShell process'
            $path | Should -Not -Exist
        }
        finally { Stop-TestProgram $helper }
    }

    It 'refuses a process being traced (by a debugger-like parent), and a tracer, as the -Ptraced and -Ptracer policies say' {
        $tracer = Start-TestProgram tracer
        $child = [int](Get-TestProgramValue $tracer CHILD)[0]
        try {
            $path = Join-Path $TestDrive 'traced.ctx'
            (Get-ProcStatus $child)['TracerPid'] | Should -Be "$($tracer.Id)"

            foreach ($policy in 'Error', 'Allow') {
                $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $child -Path $path -Ptraced $policy }
                $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.Unsupported$Suffix"
                $errors[0].Exception.Message | Should -Match "traced by process $($tracer.Id)"
            }
            $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $child -Path $path -Ptraced Skip }
            $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.NothingToCheckpoint$Suffix"

            $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $tracer.Id -Scope Process -Path $path }
            $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.Unsupported$Suffix"
            $errors[0].Exception.Message | Should -Match "tracing process $child"
            $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $tracer.Id -Scope Process -Ptracer Skip -Path $path }
            $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.NothingToCheckpoint$Suffix"

            $path | Should -Not -Exist
            (Get-ProcStatus $child)['TracerPid'] | Should -Be "$($tracer.Id)" -Because 'the tracer is still attached'
            Test-ProcessUntouched $tracer.Id | Should -BeTrue
        }
        finally {
            # Kill the child first, so that its tracer (its parent) reaps it, then the tracer.
            [void][CrTest.Native]::kill($child, 9)
            $null = Wait-TestProgramOutput $tracer '^CHILD ENDED$' -TimeoutSec 10
            Stop-TestProgram $tracer
        }
    }
}

Describe 'An unwritable destination' {
    BeforeAll {
        $program = Start-TestProgram counter
    }
    AfterAll { Stop-TestProgram $program }

    It 'in a directory that does not exist: DestinationFailed (WriteError) naming the directory' {
        $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $program.Id -Path '/nonexistent-crtest/dir/x.ctx' }
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.DestinationFailed$Suffix"
        "$($errors[0].CategoryInfo.Category)" | Should -Be 'WriteError'
        $errors[0].TargetObject | Should -Be $program.Id
        $errors[0].Exception.Message | Should -Match '/nonexistent-crtest/dir'
        '/nonexistent-crtest' | Should -Not -Exist
        Assert-CounterUnchanged $program
    }

    It 'under /proc and /sys, where no file can be created' {
        foreach ($path in '/proc/crtest.ctx', '/sys/crtest.ctx') {
            $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $program.Id -Path $path }
            $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.DestinationFailed$Suffix"
            $path | Should -Not -Exist
        }
        Assert-CounterUnchanged $program
    }

    It 'a path that is an existing directory: the directory stays as it was, no file is left beside it' {
        $parent = Join-Path $TestDrive 'parent'
        $target = Join-Path $parent 'adir'
        $null = New-Item -ItemType Directory $target
        $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $program.Id -Path $target }
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.DestinationFailed$Suffix"
        Get-DirectoryEntries $parent | Should -Be @('adir')
        Get-DirectoryEntries $target | Should -BeNullOrEmpty
        Assert-CounterUnchanged $program
    }

    It 'a path that ends with a slash: InvalidRequest (InvalidArgument)' {
        $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $program.Id -Path "$TestDrive/" }
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.InvalidRequest$Suffix"
        "$($errors[0].CategoryInfo.Category)" | Should -Be 'InvalidArgument'
    }

    It 'a descriptor that is not open: DestinationFailed, and the target is not touched' {
        $fd = 900
        while (Test-Path "/proc/$PID/fd/$fd") { $fd++ }
        $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $program.Id -Fd $fd }
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.DestinationFailed$Suffix"
        $errors[0].Exception.Message | Should -Match "descriptor $fd\b"
        Assert-CounterUnchanged $program
    }
}

Describe 'An existing context file survives a failed checkpoint' {
    BeforeAll {
        $dir = Join-Path $TestDrive 'keep'
        $null = New-Item -ItemType Directory $dir
        $path = Join-Path $dir 'job.ctx'
        $good = Start-TestProgram counter
        $null = Invoke-CrCheckpoint -Id $good.Id -Path $path -ErrorAction Stop
        $checksum = Get-FileChecksum $path
        $inode = (& stat -c %i $path)
        $socket = Start-TestProgram unsupported userfaultfd
    }
    AfterAll { Stop-TestProgram $good, $socket }

    It 'when the target cannot be checkpointed, with -<Policy>' -ForEach @(
        @{ Policy = 'Atomic' }
        @{ Policy = 'Backup' }
    ) {
        $switch = @{ $Policy = $true }
        $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $socket.Id -Path $path @switch }
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.Unsupported$Suffix"
        Get-FileChecksum $path | Should -Be $checksum
        & stat -c %i $path | Should -Be $inode
        Get-DirectoryEntries $dir | Should -Be @('job.ctx') -Because 'no backup and no temporary file are left'
    }

    It 'when the target is gone' {
        $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id 0 -Path $path }
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.ProcessNotFound$Suffix"
        Get-FileChecksum $path | Should -Be $checksum
        Get-DirectoryEntries $dir | Should -Be @('job.ctx')
    }

    It 'when the backup cannot be made (after the whole context was written): with -Stop the target is not stopped' {
        $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $good.Id -Path $path -BackupPath '/nonexistent-crtest/job.bak' -Stop }
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.DestinationFailed$Suffix"
        $errors[0].Exception.Message | Should -Match 'backup'
        Get-FileChecksum $path | Should -Be $checksum
        Get-DirectoryEntries $dir | Should -Be @('job.ctx')
        Assert-CounterUnchanged $good
    }

    It 'when the backup cannot be made, with the default -Run' {
        $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $good.Id -Path $path -BackupPath '/nonexistent-crtest/job.bak' }
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.DestinationFailed$Suffix"
        Get-FileChecksum $path | Should -Be $checksum
        Get-DirectoryEntries $dir | Should -Be @('job.ctx')
        Assert-CounterUnchanged $good
    }

    It 'when -NoClobber refuses it: DestinationExists (ResourceExists), before the target is touched' {
        $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $good.Id -Path $path -NoClobber -Stop }
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.DestinationExists$Suffix"
        "$($errors[0].CategoryInfo.Category)" | Should -Be 'ResourceExists'
        $errors[0].Exception.Message | Should -Match ([regex]::Escape($path))
        Get-FileChecksum $path | Should -Be $checksum
        Get-DirectoryEntries $dir | Should -Be @('job.ctx')
        Assert-CounterUnchanged $good
    }

    It 'with -WhatIf nothing is done at all' {
        $output = Invoke-CrCheckpoint -Id $good.Id -Path $path -WhatIf
        $output | Should -BeNullOrEmpty
        Get-FileChecksum $path | Should -Be $checksum
        & stat -c %i $path | Should -Be $inode
        Assert-CounterUnchanged $good
    }
}

Describe 'A destination file system that fills up during the checkpoint, or is read-only' {
    # Small tmpfs mounts: the counter's 5 MiB of memory cannot fit in 1 MiB, so the write fails after the
    # process was frozen and part of the context written; a read-only one fails at once.
    BeforeAll {
        $full = (New-Item -ItemType Directory (Join-Path $TestDrive 'full')).FullName
        $readOnly = (New-Item -ItemType Directory (Join-Path $TestDrive 'ro')).FullName
        $mounted = @()
        & mount -t tmpfs -o size=1m crtest-full $full 2>$null
        if ($LASTEXITCODE -eq 0) { $mounted += $full }
        & mount -t tmpfs -o size=1m,ro crtest-ro $readOnly 2>$null
        if ($LASTEXITCODE -eq 0) { $mounted += $readOnly }
        $program = Start-TestProgram counter
        $sleeper = Start-RealProgram sleep
        function Skip-Unmounted([string] $Path) {
            if ($Path -notin $mounted) { Set-ItResult -Skipped -Because "tmpfs cannot be mounted here (mount needs root)"; return $true }
            $false
        }
    }
    AfterAll {
        Stop-TestProgram $program, $sleeper
        foreach ($m in $mounted) { & umount $m }
    }

    It 'fails with DestinationFailed when the disk fills up, removes the partial file and releases the target unchanged' {
        if (Skip-Unmounted $full) { return }
        $mapsBefore = (Get-ProcMaps $program.Id | ForEach-Object { '{0:x}-{1:x} {2}' -f $_.Start, $_.End, $_.Protection }) -join "`n"
        $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $full 'job.ctx') }
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.DestinationFailed$Suffix"
        "$($errors[0].CategoryInfo.Category)" | Should -Be 'WriteError'
        $errors[0].Exception.Message | Should -Match 'space'
        Get-DirectoryEntries $full | Should -BeNullOrEmpty
        Assert-CounterUnchanged $program
        (Get-ProcMaps $program.Id | ForEach-Object { '{0:x}-{1:x} {2}' -f $_.Start, $_.End, $_.Protection }) -join "`n" | Should -Be $mapsBefore
    }

    It 'keeps the context file that was there, and with -Stop does not stop the target' {
        if (Skip-Unmounted $full) { return }
        $path = Join-Path $full 'job.ctx'
        $null = Invoke-CrCheckpoint -Id $sleeper.Id -Path $path -ErrorAction Stop
        $checksum = Get-FileChecksum $path
        $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $program.Id -Path $path -Stop }
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.DestinationFailed$Suffix"
        Get-FileChecksum $path | Should -Be $checksum
        Get-DirectoryEntries $full | Should -Be @('job.ctx')
        Assert-CounterUnchanged $program
    }

    It 'fails with DestinationFailed on a read-only file system, saying so, without touching the target' {
        if (Skip-Unmounted $readOnly) { return }
        $errors = Invoke-FailingCheckpoint { Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $readOnly 'job.ctx') }
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.DestinationFailed$Suffix"
        $errors[0].Exception.Message | Should -Match 'Read-only'
        Get-DirectoryEntries $readOnly | Should -BeNullOrEmpty
        Assert-CounterUnchanged $program
    }
}
