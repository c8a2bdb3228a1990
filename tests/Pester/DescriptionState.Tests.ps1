# Open file descriptions keep what they hold beyond their file across a restart: POSIX, OFD and flock locks,
# leases, status flags per description (two descriptions of one pipe end with different O_NONBLOCK), and the
# owner and signal of SIGIO; and an unlinked file made anew keeps its holes, owner, mode and modification time.
# The program checks each itself (locks from a child that must meet them).

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/RestartHelpers.psm1"

    $script:Expected = [ordered]@{
        posix = '1'; posix_read = '1'; ofd = '1'; flock = '1'; lease = '1'; nb7 = '1'; nb8 = '0'; nb9 = '0'
        append12 = '1'; nb12 = '1'; owner10 = '1'; sig10 = '1'; sigio = '1'
        sparse13 = '1'; content13 = '1'; owner13 = '1'; mode13 = '1'; mtime13 = '1'; unlinked13 = '1'; proc14 = '1'
    }

    function Assert-Attributes($Report, [string] $When) {
        foreach ($k in $script:Expected.Keys) {
            $Report[$k] | Should -Be $script:Expected[$k] -Because "$k as the program sees it $When"
        }
    }

    # A python3 process holding flock(LOCK_EX) on Path until it is killed.
    function Start-LockHolder([string] $Path) {
        $info = [System.Diagnostics.ProcessStartInfo]::new('python3')
        foreach ($a in '-c', 'import fcntl,sys,time; f=open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); print("held", flush=True); time.sleep(120)', $Path) {
            $info.ArgumentList.Add($a)
        }
        $info.RedirectStandardOutput = $true
        $info.UseShellExecute = $false
        $holder = [System.Diagnostics.Process]::Start($info)
        $line = $holder.StandardOutput.ReadLineAsync()
        if (-not $line.Wait(15000) -or $line.Result -ne 'held') { $holder.Kill(); throw 'python3 did not take the lock' }
        $holder
    }
}

AfterAll {
    Stop-AllRestartedProcesses
    Stop-AllTestPrograms
}

Describe 'Locks, leases, flags and owners of open file descriptions come back (file_attrs)' {
    BeforeAll {
        $program = Start-TestProgram file_attrs
        $before = Request-Report $program -Id $program.Id -Word ATTRS
        $path = Join-Path $TestDrive 'attrs.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $context = Get-CrContext -Path $path -ErrorAction Stop
        $descriptors = $context.Processes[0].Files.Descriptors
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
        $after = Request-Report $program -Id $id -Word ATTRS
    }
    AfterAll { Stop-RestartedProcess $id }

    It 'had every attribute before the checkpoint' {
        Assert-Attributes $before 'before the checkpoint'
    }

    It 'saves the locks, the lease and the owner in the context' {
        $three = $descriptors | Where-Object Fd -EQ 3
        @($three.Locks | ForEach-Object { "$($_.Kind) $($_.Type) $($_.Start) $($_.Length)" }) | Sort-Object |
            Should -Be @('posix read 100 0', 'posix write 10 10')
        ($descriptors | Where-Object Fd -EQ 4).Locks[0].Kind | Should -Be 'ofd'
        ($descriptors | Where-Object Fd -EQ 5).Locks[0].Kind | Should -Be 'flock'
        ($descriptors | Where-Object Fd -EQ 6).Lease | Should -Be 'read'
        $owner = ($descriptors | Where-Object Fd -EQ 10).Owner
        $owner.Pid | Should -Be $program.Id
        $owner.Signal | Should -Be 12
    }

    It 'has every attribute back after the restart, as the program and a child of it see them' {
        Assert-Attributes $after 'after the restart'
    }

    It 'saves only the data of the sparse unlinked file, not its 1 GiB of holes' {
        (Get-Item $path).Length | Should -BeLessThan 32MB
    }

    It 'holds the POSIX locks in the restarted process, as /proc/PID/fdinfo shows' {
        $info = Get-Content -Raw "/proc/$id/fdinfo/3"
        $info | Should -Match "POSIX\s+ADVISORY\s+WRITE $id \S+ 10 19"
        $info | Should -Match "POSIX\s+ADVISORY\s+READ $id \S+ 100 EOF"
    }
}

Describe 'With a new pid, owners and /proc/PID files follow the process (file_attrs, -NoRestorePid)' {
    BeforeAll {
        $program = Start-TestProgram file_attrs
        $path = Join-Path $TestDrive 'newpid.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $result = Invoke-TestRestart $path -Parameters @{ NoRestorePid = $true }
        $id = $result.ProcessIds[0]
        $after = Request-Report $program -Id $id -Word ATTRS
    }
    AfterAll { Stop-RestartedProcess $id }

    It 'runs under another pid, with every attribute as the program sees it' {
        $id | Should -Not -Be $program.Id
        Assert-Attributes $after 'after a restart under a new pid'
    }
}

Describe 'A lock another process took meanwhile fails the restart, which leaves nothing behind' {
    BeforeAll {
        $program = Start-TestProgram file_attrs
        $path = Join-Path $TestDrive 'taken.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $holder = Start-LockHolder (Join-Path $program.Directory 'data/flock.txt')
        try { $errors = Invoke-FailingRestart $path }
        finally { $holder.Kill(); $holder.WaitForExit() }
    }

    It 'is refused as FileInUse, naming the descriptor and the lock' {
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be 'Restart.FileInUse,CrCheckpoint.PowerShell.InvokeCrRestartCommand'
        $errors[0].Exception.Message | Should -Match 'flock read lock of descriptor 5'
        Get-LeftRunning | Should -BeNullOrEmpty
        Test-Path "/proc/$($program.Id)" | Should -BeFalse
    }

    It 'restarts once the lock is free again' {
        $result = Invoke-TestRestart $path
        $again = Request-Report $program -Id $result.ProcessIds[0] -Word ATTRS
        Assert-Attributes $again 'after the restart'
        Stop-RestartedProcess $result.ProcessIds[0]
    }
}

Describe 'What was removed while open comes back removed, in a chroot (removed_paths)' {
    BeforeAll {
        $program = Start-TestProgram removed_paths
        $before = Request-Report $program -Id $program.Id -Word PATHS
        $path = Join-Path $TestDrive 'removed.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
        $after = Request-Report $program -Id $id -Word PATHS
    }
    AfterAll { Stop-RestartedProcess $id }

    It 'had everything before the checkpoint, and has it all after the restart: <_>' -ForEach 'root', 'cwd', 'dir3', 'fifo4', 'same56', 'tmp7', 'dev8', 'link9' {
        $before[$_] | Should -Be '1'
        $after[$_] | Should -Be '1' -Because "$_ as the restarted program sees it"
    }

    It 'leaves nothing it made for the restart behind in the jail' {
        @(Get-ChildItem -Force (Join-Path $program.Directory 'jail')) | Should -BeNullOrEmpty
    }
}

Describe 'With -Directory, the bytes in flight in a FIFO are saved and put back too (removed_paths)' {
    BeforeAll {
        $program = Start-TestProgram removed_paths
        $dir = Join-Path $TestDrive 'removed-dir'
        $null = Invoke-CrCheckpoint -Id $program.Id -Directory $dir -Kill -ErrorAction Stop
        $null = Wait-Until { -not (Test-Path "/proc/$($program.Id)") } -TimeoutSec 15
        $result = Invoke-TestRestart $dir
        $id = $result.ProcessIds[0]
        $after = Request-Report $program -Id $id -Word PATHS
    }
    AfterAll { Stop-RestartedProcess $id }

    It 'reads "hello" from the removed FIFO after the restart' {
        $after.fifo4 | Should -Be '1'
    }
}

Describe 'Processes sharing one table of descriptors (CLONE_FILES) are refused, and left running (clone_files)' {
    BeforeAll {
        $program = Start-TestProgram clone_files
        $child = [int]((Get-TestProgramOutput $program | Select-Object -First 1).Split(' ')[2])
        $path = Join-Path $TestDrive 'shared-table.ctx'
        $failures = $null
        $result = Invoke-CrCheckpoint -Id $program.Id -Path $path -Kill -ErrorAction SilentlyContinue -ErrorVariable failures
    }
    AfterAll { Stop-TestProgram $program }

    It 'fails with Checkpoint.Unsupported, naming CLONE_FILES, and writes no context file' {
        $result | Should -BeNullOrEmpty
        $failures | Should -HaveCount 1
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'Checkpoint.Unsupported,*'
        $failures[0].Exception.Message | Should -Match 'CLONE_FILES'
        Test-Path $path | Should -BeFalse
    }

    It 'leaves both processes running, untraced' {
        foreach ($id in $program.Id, $child) {
            Test-ProcessAlive $id | Should -BeTrue
            (Get-ProcStatus $id).TracerPid | Should -Be 0
        }
        $ticks = @(Get-TestProgramOutput $program | Where-Object { $_ -like 'TICK *' }).Count
        $null = Wait-Until { @(Get-TestProgramOutput $program | Where-Object { $_ -like 'TICK *' }).Count -gt $ticks } -TimeoutSec 10 -Because 'the parent to go on ticking'
    }
}
