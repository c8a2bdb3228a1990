# Registers, descriptors and process-wide state in the context are what /proc and the program itself report.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"

    $script:RegisterNames = 'r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs'.Split(' ')
    function ConvertTo-RegisterTable([ulong[]] $Registers) {
        $table = @{}
        for ($i = 0; $i -lt $script:RegisterNames.Count; $i++) { $table[$script:RegisterNames[$i]] = $Registers[$i] }
        $table
    }
    function Get-Signo([byte[]] $SigInfo) { [System.BitConverter]::ToInt32($SigInfo, 0) }
}

Describe 'Registers are what the stopped process and the program itself report (regs)' {
    BeforeAll {
        $program = Start-TestProgram regs
        # Stopped before the checkpoint so that it is still exactly there afterwards.
        Send-Signal $program.Id STOP
        $null = Wait-Until { (Get-ProcessState $program.Id) -eq 'T' }
        $syscall = Get-ProcSyscall $program.Id
        $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'regs.ctx') -ErrorAction Stop
        $image = (Get-CrContext -Path $result.Path -Verify -ErrorAction Stop).Processes[0]
        $thread = $image.Threads[0]
        $regs = ConvertTo-RegisterTable $thread.Registers
    }
    AfterAll { Stop-TestProgram $program }

    It 'has one thread, the main one, with the 27 registers of user_regs_struct' {
        $image.Threads | Should -HaveCount 1
        $thread.Tid | Should -Be $program.Id
        $thread.Name | Should -Be 'regs'
        $thread.Registers | Should -HaveCount 27
    }

    It 'holds in r12-r15 the values the program put there' {
        '{0:x16}' -f $regs.r12 | Should -Be '1111222233334444'
        '{0:x16}' -f $regs.r13 | Should -Be '5555666677778888'
        '{0:x16}' -f $regs.r14 | Should -Be '99990000aaaabbbb'
        '{0:x16}' -f $regs.r15 | Should -Be 'ccccddddeeeeffff'
    }

    It 'has rip right after the program''s syscall instruction, as the program and /proc/PID/syscall show' {
        $regs.rip | Should -Be (ConvertFrom-Hex (Get-TestProgramValue $program RIP)[0])
        $regs.rip | Should -Be $syscall.InstructionPointer
    }

    It 'has rsp as /proc/PID/syscall shows it' {
        $regs.rsp | Should -Be $syscall.StackPointer
    }

    It 'shows pause (34) interrupted with -ERESTARTNOHAND in orig_rax and rax, and says so in InterruptedSyscall' {
        $regs.orig_rax | Should -Be 34
        [System.BitConverter]::ToInt64([System.BitConverter]::GetBytes([uint64]$regs.rax), 0) | Should -Be -514
        $thread.InterruptedSyscall.Number | Should -Be 34
        $thread.InterruptedSyscall.ReturnCode | Should -Be -514
        $syscall.Number | Should -Be 34
    }

    It 'has fs_base as arch_prctl(ARCH_GET_FS) told the program, with its thread-local variable just below' {
        $regs.fs_base | Should -Be (ConvertFrom-Hex (Get-TestProgramValue $program FSBASE)[0])
        $tls = ConvertFrom-Hex (Get-TestProgramValue $program TLS)[0]
        $tls | Should -BeLessThan $regs.fs_base
        $regs.fs_base - $tls | Should -BeLessThan 4096
        $regs.gs_base | Should -Be 0
    }

    It 'has the 64-bit user code and stack segments (cs 0x33, ss 0x2b)' {
        $regs.cs | Should -Be 0x33
        $regs.ss | Should -Be 0x2b
    }

    It 'holds in the XSAVE area the xmm15 value the program put there' {
        $thread.ExtendedState.Length | Should -BeGreaterOrEqual 576
        # Legacy area: xmm0 starts at byte 160, 16 bytes each.
        [System.BitConverter]::ToString($thread.ExtendedState, 160 + 15 * 16, 16) | Should -Be 'EF-CD-AB-89-67-45-23-01-10-32-54-76-98-BA-DC-FE'
    }

    It 'records the same registers in a second checkpoint, and the program goes on in its loop after SIGCONT' {
        $second = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'regs2.ctx') -ErrorAction Stop
        $again = ConvertTo-RegisterTable (Get-CrContext -Path $second.Path).Processes[0].Threads[0].Registers
        foreach ($name in 'r12', 'r13', 'r14', 'r15', 'rip', 'rsp', 'fs_base', 'orig_rax') {
            $again[$name] | Should -Be $regs[$name] -Because "$name is unchanged"
        }
        Send-Signal $program.Id CONT
        $null = Wait-Until { (Get-ProcessState $program.Id) -eq 'S' -and (Get-ProcSyscall $program.Id).Number -eq 34 }
        (Get-ProcSyscall $program.Id).InstructionPointer | Should -Be $regs.rip
        (Get-ProcSyscall $program.Id).StackPointer | Should -Be $regs.rsp
    }
}

Describe 'Descriptors are what /proc and the program report (files)' {
    BeforeAll {
        $dataFile = Join-Path $TestDrive 'data.bin'
        [System.IO.File]::WriteAllBytes($dataFile, [byte[]]::new(20000))
        $dir = Join-Path $TestDrive 'dir'
        $null = New-Item -ItemType Directory $dir
        $program = Start-TestProgram files $dataFile, $dir
        $printed = @{}
        foreach ($line in Get-TestProgramOutput $program | Where-Object { $_ -like 'FD *' }) {
            $f = $line.Split(' ')
            $printed[[int]$f[1]] = [pscustomobject]@{ Position = [long]$f[2]; Flags = [System.Convert]::ToInt32($f[3], 8); CloseOnExec = $f[4] -eq '1' }
        }
        $fdinfo = @{}
        foreach ($fd in Get-ProcFds $program.Id) { $fdinfo[$fd] = Get-ProcFdInfo $program.Id $fd }
        $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'files.ctx') -ErrorAction Stop
        $image = (Get-CrContext -Path $result.Path -Verify -ErrorAction Stop).Processes[0]
        $byFd = @{}
        foreach ($d in $image.Files.Descriptors) { $byFd[$d.Fd] = $d }
    }
    AfterAll { Stop-TestProgram $program }

    It 'lists exactly the descriptors of /proc/PID/fd' {
        $image.Files.Descriptors.Fd | Should -Be @(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 20)
        @($byFd.Keys | Sort-Object) | Should -Be @(Get-ProcFds $program.Id)
    }

    It 'has each offset as /proc/PID/fdinfo and the program''s lseek show it' {
        foreach ($fd in $byFd.Keys) {
            $byFd[$fd].Position | Should -Be $fdinfo[$fd].Position -Because "fdinfo of $fd"
            if ($printed.ContainsKey($fd) -and $printed[$fd].Position -ge 0) {
                $byFd[$fd].Position | Should -Be $printed[$fd].Position -Because "lseek of $fd in the program"
            }
        }
        $byFd[3].Position | Should -Be 12345
        $byFd[20].Position | Should -Be 12345
        $byFd[5].Position | Should -Be 7
    }

    It 'has the open flags of /proc/PID/fdinfo and F_GETFL, and close-on-exec as FD_CLOEXEC' {
        foreach ($fd in $byFd.Keys) {
            $byFd[$fd].Flags | Should -Be ($fdinfo[$fd].Flags -band -bnot 0x80000) -Because "fdinfo flags of $fd without O_CLOEXEC"
            $byFd[$fd].CloseOnExec | Should -Be (($fdinfo[$fd].Flags -band 0x80000) -ne 0) -Because "O_CLOEXEC of $fd"
            if ($printed.ContainsKey($fd)) {
                $byFd[$fd].Flags | Should -Be $printed[$fd].Flags -Because "F_GETFL of $fd in the program"
                $byFd[$fd].CloseOnExec | Should -Be $printed[$fd].CloseOnExec -Because "FD_CLOEXEC of $fd in the program"
            }
        }
        $byFd[4].CloseOnExec | Should -BeTrue
        $byFd[4].Flags -band 0x400 | Should -Be 0x400 -Because 'fd 4 is O_APPEND'
        $byFd[8].Flags -band 0x800 | Should -Be 0x800 -Because 'fd 8 is O_NONBLOCK'
    }

    It 'classifies each descriptor: file, unlinked file, device, pipe, directory' {
        "$($byFd[0].Kind)" | Should -Be 'Device'
        "$($byFd[1].Kind)" | Should -Be 'RegularFile'
        $byFd[1].Path | Should -Be $program.Output
        "$($byFd[3].Kind)" | Should -Be 'RegularFile'
        $byFd[3].Path | Should -Be $dataFile
        "$($byFd[4].Kind)" | Should -Be 'RegularFile'
        "$($byFd[5].Kind)" | Should -Be 'UnlinkedFile'
        $byFd[5].Path | Should -Be (Join-Path $dir 'unlinked.tmp')
        "$($byFd[6].Kind)" | Should -Be 'Device'
        $byFd[6].Path | Should -Be '/dev/null'
        "$($byFd[7].Kind)", "$($byFd[8].Kind)", "$($byFd[10].Kind)", "$($byFd[11].Kind)" | Should -Be @('Pipe', 'Pipe', 'Pipe', 'Pipe')
        "$($byFd[9].Kind)" | Should -Be 'Directory'
        $byFd[9].Path | Should -Be $dir
        "$($byFd[20].Kind)" | Should -Be 'RegularFile'
    }

    It 'pairs the two ends of each pipe by inode, as /proc/PID/fd names them' {
        $byFd[7].Inode | Should -Be $byFd[8].Inode
        $byFd[10].Inode | Should -Be $byFd[11].Inode
        $byFd[7].Inode | Should -Not -Be $byFd[10].Inode
        (Get-Item "/proc/$($program.Id)/fd/7").LinkTarget | Should -Be "pipe:[$($byFd[7].Inode)]"
    }

    It 'identifies the regular file by device, inode and size' {
        $inode = [uint64](& stat -c %i $dataFile)
        $byFd[3].Identity.Inode | Should -Be $inode
        $byFd[3].Identity.Size | Should -Be 20000
        $byFd[20].Identity.Inode | Should -Be $inode
    }

    It 'carries the contents of the unlinked file in the context' {
        $byFd[5].SavedFileKey | Should -Not -BeNullOrEmpty
        $content = $image.FileContents | Where-Object { $_.Record.Key -eq $byFd[5].SavedFileKey }
        $content | Should -HaveCount 1
        $content.DataLength | Should -Be 1600
        $content.Record.Reason | Should -Be 'unlinked'
        $stream = [System.IO.File]::OpenRead($result.Path)
        try {
            $bytes = [byte[]]::new(1600)
            $stream.Position = $content.DataOffset
            $null = $stream.ReadAtLeast($bytes, 1600)
        }
        finally { $stream.Dispose() }
        [System.Text.Encoding]::ASCII.GetString($bytes) | Should -Be ('unlinked content' * 100)
    }

    It 'leaves the program blocked in its read, which a SIGUSR1 interrupts as before, offsets unchanged' {
        Test-ProcessUntouched $program.Id | Should -BeTrue
        $null = Wait-Until { (Get-ProcSyscall $program.Id).Number -eq 0 } -Because 'the program to be back in read(2)'
        Send-Signal $program.Id USR1
        (Wait-TestProgramOutput $program '^WOKE 1 (\d+)$').Groups[1].Value | Should -Be '12345'
        (Get-ProcFdInfo $program.Id 5).Position | Should -Be 7
    }
}

Describe 'Process state is what /proc and the program report (handlers)' {
    BeforeAll {
        $dir = Join-Path $TestDrive 'cwd'
        $null = New-Item -ItemType Directory $dir
        $program = Start-TestProgram handlers $dir
        $status = Get-ProcStatus $program.Id
        $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'handlers.ctx') -ErrorAction Stop
        $image = (Get-CrContext -Path $result.Path -Verify -ErrorAction Stop).Processes[0]
        $process = $image.Process
        $thread = $image.Threads[0]
        $dispositions = @{}
        foreach ($d in $process.Signals.Dispositions) { $dispositions[$d.Signal] = $d }
        $limits = @{}
        foreach ($l in $process.Limits) { $limits[$l.Name] = $l }
    }
    AfterAll { Stop-TestProgram $program }

    It 'names the process, its executable, command line, parent, group and session' {
        $stat = Get-ProcStat $program.Id
        $process.Pid | Should -Be $program.Id
        $process.Name | Should -Be 'handlers'
        $process.Executable | Should -Be (Build-TestProgram handlers)
        $process.CommandLine | Should -Be @((Build-TestProgram handlers), $dir)
        $process.ParentPid | Should -Be $program.Launcher.Id
        $process.ProcessGroupId | Should -Be $stat.ProcessGroupId
        $process.SessionId | Should -Be $stat.SessionId
    }

    It 'has the umask (027) and working directory the program set' {
        $process.Umask | Should -Be ([System.Convert]::ToInt32('027', 8))
        $process.Umask | Should -Be ([System.Convert]::ToInt32($status['Umask'], 8))
        $process.WorkingDirectory | Should -Be $dir
    }

    It 'has the resource limits of /proc/PID/limits (NOFILE soft 123, CORE 0)' {
        $limits['NOFILE'].Soft | Should -Be 123
        $limits['CORE'].Soft | Should -Be 0
        $limits['CORE'].Hard | Should -Be 0
        $process.Limits | Should -HaveCount 16
        foreach ($line in Get-Content "/proc/$($program.Id)/limits" | Select-Object -Skip 1) {
            $m = [regex]::Match($line, '^Max open files\s+(\S+)\s+(\S+)')
            if ($m.Success) {
                $limits['NOFILE'].Soft | Should -Be ([uint64]$m.Groups[1].Value)
                $limits['NOFILE'].Hard | Should -Be $(if ($m.Groups[2].Value -eq 'unlimited') { [uint64]::MaxValue } else { [uint64]$m.Groups[2].Value })
            }
        }
    }

    It 'records the handlers, flags and masks the program installed, and the ignored SIGPIPE' {
        $usr1 = $dispositions[10]
        $usr1.Handler | Should -Be (ConvertFrom-Hex (Get-TestProgramValue $program USR1HANDLER)[0])
        $usr1.Flags -band 0x4 | Should -Be 0x4 -Because 'SA_SIGINFO'
        $usr1.Flags -band 0x10000000 | Should -Be 0x10000000 -Because 'SA_RESTART'
        $usr1.Flags -band 0x08000000 | Should -Be 0x08000000 -Because 'SA_ONSTACK'
        $usr1.Mask | Should -Be 2 -Because 'sa_mask holds SIGINT only'
        $dispositions[1].Handler | Should -Be (ConvertFrom-Hex (Get-TestProgramValue $program HUPHANDLER)[0])
        $dispositions[13].Handler | Should -Be 1 -Because 'SIGPIPE is ignored'
        $dispositions[14].Handler | Should -BeGreaterThan 1 -Because 'SIGALRM is handled'
    }

    It 'lists exactly the signals /proc/PID/status shows caught or ignored' {
        $caughtOrIgnored = (Get-ProcHexMask $program.Id SigCgt) -bor (Get-ProcHexMask $program.Id SigIgn)
        $expected = @(1..64 | Where-Object { ($caughtOrIgnored -band ([uint64]1 -shl ($_ - 1))) -ne 0 })
        @($dispositions.Keys | Sort-Object) | Should -Be $expected
    }

    It 'has the blocked mask of /proc/PID/status (SIGUSR2 and SIGRTMIN, 34, blocked)' {
        $thread.BlockedSignals | Should -Be ([System.Convert]::ToUInt64($status['SigBlk'], 16))
        $thread.BlockedSignals | Should -Be (([uint64]1 -shl 11) -bor ([uint64]1 -shl 33))
    }

    It 'has the pending signals: SIGUSR2 for the process, signal 34 for the thread' {
        @($process.Signals.SharedPending | ForEach-Object { Get-Signo $_ }) | Should -Be @(12)
        @($thread.PendingSignals | ForEach-Object { Get-Signo $_ }) | Should -Be @(34)
        [System.Convert]::ToUInt64($status['ShdPnd'], 16) | Should -Be ([uint64]1 -shl 11)
        [System.Convert]::ToUInt64($status['SigPnd'], 16) | Should -Be ([uint64]1 -shl 33)
    }

    It 'has the alternate signal stack the program set' {
        $alt = Get-TestProgramValue $program ALTSTACK
        $thread.AltStack | Should -Not -BeNullOrEmpty
        $thread.AltStack.Base | Should -Be (ConvertFrom-Hex $alt[0])
        $thread.AltStack.Size | Should -Be ([uint64]$alt[1])
        $thread.AltStack.Flags | Should -Be 0
    }

    It 'has the armed ITIMER_REAL (interval 500 s, at most 1000 s left)' {
        $real = $process.Timers | Where-Object Name -EQ 'Real'
        $real | Should -HaveCount 1
        $real.IntervalMicroseconds | Should -Be 500000000
        $real.ValueMicroseconds | Should -BeGreaterThan 0
        $real.ValueMicroseconds | Should -BeLessOrEqual 1000000000
    }

    It 'has the credentials of /proc/PID/status' {
        $process.Credentials.Uids | Should -Be @(($status['Uid'] -split '\s+') | ForEach-Object { [uint32]$_ })
        $process.Credentials.Gids | Should -Be @(($status['Gid'] -split '\s+') | ForEach-Object { [uint32]$_ })
        $process.Credentials.CapEffective | Should -Be ([System.Convert]::ToUInt64($status['CapEff'], 16))
    }

    It 'leaves all of it as it was: pending signals still pending, mask, umask, and SIGUSR1 runs on the alternate stack' {
        Test-ProcessUntouched $program.Id | Should -BeTrue
        $now = Get-ProcStatus $program.Id
        foreach ($field in 'SigBlk', 'SigPnd', 'ShdPnd', 'SigCgt', 'SigIgn', 'Umask') { $now[$field] | Should -Be $status[$field] -Because $field }
        Send-Signal $program.Id USR1
        $null = Wait-TestProgramOutput $program '^USR1 1 onstack=1 code=0$'
    }
}

Describe 'A program whose executable was deleted (counter, run from a copy that is then removed)' {
    BeforeAll {
        $exeDir = (New-Item -ItemType Directory (Join-Path $TestDrive 'exe')).FullName
        $exe = Join-Path $exeDir 'counter-copy'
        Copy-Item (Build-TestProgram counter) $exe
        $exeChecksum = Get-FileChecksum $exe
        $exeLength = (Get-Item $exe).Length
        $program = Start-TestProgram -FilePath $exe -WaitFor '^READY '
        Remove-Item $exe
        $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'deleted-exe.ctx') -ErrorAction Stop
        $context = Get-CrContext -Path $result.Path -Verify -ErrorAction Stop
        $image = $context.Processes[0]
    }
    AfterAll { Stop-TestProgram $program }

    It 'names the executable by its path, without " (deleted)"' {
        $image.Executable | Should -Be $exe
        $image.Process.ExecutableIdentity | Should -Not -BeNullOrEmpty
        $image.Process.ExecutableIdentity.Size | Should -Be $exeLength
    }

    It 'carries the deleted executable''s bytes in the context, as they were' {
        $key = @($image.Map.Areas | Where-Object { $_.Path -like "$exe*" -and $_.SavedFileKey } | ForEach-Object SavedFileKey | Select-Object -Unique)
        $key | Should -HaveCount 1
        $content = @($context.FileContents | Where-Object { $_.Record.Key -eq $key[0] })
        $content | Should -HaveCount 1
        $content[0].Record.Reason | Should -Be 'unlinked'
        $content[0].DataLength | Should -Be $exeLength
        $bytes = Read-ContextBytes -ContextPath $result.Path -Offset $content[0].DataOffset -Length $content[0].DataLength
        '{0:x16}' -f [System.IO.Hashing.XxHash3]::HashToUInt64($bytes) | Should -Be $exeChecksum
    }

    It 'leaves it running' {
        Test-ProcessUntouched $program.Id | Should -BeTrue
        $before = @(Get-TestProgramOutput $program).Count
        $null = Wait-TestProgramOutput $program '^TICK \d+ 0$' -Skip $before
    }
}
