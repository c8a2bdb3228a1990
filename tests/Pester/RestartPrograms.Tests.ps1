# Every program of the checkpoint tests (counter, files, handlers, memhog, regs, spinner, threads), and the real programs
# python3, bash and sleep: checkpoint with -Kill, restart, and check that the program carries on as if nothing
# had happened, as far as it (or /proc) can tell.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/RestartHelpers.psm1"

    $script:RegisterNames = 'r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs'.Split(' ')
    function Get-Register($Thread, [string] $Name) { $Thread.Registers[[array]::IndexOf($script:RegisterNames, $Name)] }

    # The state of each descriptor from /proc: offset, flags and what it points to.
    function Get-FdSnapshot([int] $Id, [int[]] $Fds) {
        foreach ($fd in $Fds) {
            $info = Get-ProcFdInfo $Id $fd
            [pscustomobject]@{ Fd = $fd; Position = $info.Position; Flags = [System.Convert]::ToString($info.Flags, 8); Target = Get-FdTarget $Id $fd }
        }
    }
}

AfterAll {
    Stop-AllRestartedProcesses
    Stop-AllTestPrograms
}

Describe 'counter: counts on from where it was, its memory checks find nothing changed' {
    BeforeAll {
        $program = Start-TestProgram counter
        $null = Wait-TestProgramOutput $program '^TICK 100 '
        $blocked = Get-ProcHexMask $program.Id SigBlk
        $path = Join-Path $TestDrive 'counter.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $ticks = Get-TickNumbers $program
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
        $null = Wait-Ticks $program ($ticks[-1] + 200) -Id $id
    }
    AfterAll {
        Stop-RestartedProcess $result.ProcessIds
        Stop-TestProgram $program
    }

    It 'has its pid back and goes on ticking: 20, 40, ... with none missing or repeated across the restart' {
        $id | Should -Be $program.Id
        Get-SequenceProblem (Get-TickNumbers $program) -Step 20 -First 20 | Should -BeNullOrEmpty
    }

    It 'finds its 5 MiB of patterns intact (no CORRUPT line, 0 errors in every tick)' {
        Get-ProgramLines $program | Where-Object { $_ -like 'CORRUPT*' } | Should -BeNullOrEmpty
        Get-ProgramLines $program | Where-Object { $_ -match '^TICK \d+ [1-9]' } | Should -BeNullOrEmpty
    }

    It 'still blocks SIGUSR2 and runs its SIGUSR1 handler' {
        Get-ProcHexMask $id SigBlk | Should -Be $blocked
        $skip = @(Get-ProgramLines $program).Count
        Send-Signal $id USR1
        $line = Wait-ProgramLine $program '^USR1 1 ' -Skip $skip -Id $id
        [long]$line.Split(' ')[2] | Should -BeGreaterThan $ticks[-1]
    }
}

Describe 'files: descriptors come back with their numbers, flags and offsets' {
    BeforeAll {
        $dir = Join-Path $TestDrive 'filesdir'
        $null = New-Item -ItemType Directory $dir
        $file = Join-Path $TestDrive 'files.dat'
        [System.IO.File]::WriteAllBytes($file, [byte[]]::new(20000))
        $program = Start-TestProgram files -ArgumentList $file, $dir
        $fds = 3, 4, 5, 6, 9, 20
        $before = Get-FdSnapshot $program.Id $fds
        $pipes = Get-FdSnapshot $program.Id 7, 8, 10, 11
        $path = Join-Path $TestDrive 'files.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $lines = @(Get-ProgramLines $program).Count
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
    }
    AfterAll {
        Stop-RestartedProcess $result.ProcessIds
        Stop-TestProgram $program
    }

    It 'reopens the file, the O_APPEND one, the unlinked one, /dev/null and the directory at the same offsets, flags and paths' {
        $after = Get-FdSnapshot $id $fds
        foreach ($i in 0..($fds.Count - 1)) {
            $after[$i].Target | Should -Be $before[$i].Target -Because "descriptor $($fds[$i]) points where it did"
            $after[$i].Position | Should -Be $before[$i].Position -Because "descriptor $($fds[$i]) has its offset"
            $after[$i].Flags | Should -Be $before[$i].Flags -Because "descriptor $($fds[$i]) has its flags"
        }
        $after[0].Position | Should -Be 12345
        $after[2].Target | Should -BeLike '*unlinked.tmp (deleted)'
        Test-Path (Join-Path $dir 'unlinked.tmp') | Should -BeFalse -Because 'the unlinked file was unlinked again'
    }

    It 'makes pipes whose both ends it holds into new pipes, each pair sharing one pipe' {
        $after = Get-FdSnapshot $id 7, 8, 10, 11
        $after[0].Target | Should -Match '^pipe:\['
        $after[0].Target | Should -Be $after[1].Target
        $after[2].Target | Should -Be $after[3].Target
        $after[0].Target | Should -Not -Be $after[2].Target
        $after[1].Flags | Should -Be $pipes[1].Flags -Because 'the write end keeps O_NONBLOCK'
    }

    It 'is back in its read of the empty pipe: SIGUSR1 interrupts it (EINTR) and it reports the offset of descriptor 3' {
        Get-ProcessState $id | Should -Be 'S'
        Send-Signal $id USR1
        $null = Wait-ProgramLine $program '^WOKE 1 12345$' -Skip $lines -Id $id
    }

    It 'keeps descriptor 20 a dup of 3: one open file with one offset (kcmp)' {
        Test-SameOpenFile $id 3 20 | Should -BeTrue
    }
}

Describe 'handlers: dispositions, masks, pending signals, alternate stack, umask, limits and cwd come back' {
    BeforeAll {
        $dir = Join-Path $TestDrive 'handlersdir'
        $null = New-Item -ItemType Directory $dir
        $program = Start-TestProgram handlers -ArgumentList $dir
        $before = Get-ProcStatus $program.Id
        $limits = (Get-ProcLimit $program.Id 'Max open files'), (Get-ProcLimit $program.Id 'Max core file size')
        $path = Join-Path $TestDrive 'handlers.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $lines = @(Get-ProgramLines $program).Count
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
        $after = Get-ProcStatus $id
    }
    AfterAll {
        Stop-RestartedProcess $result.ProcessIds
        Stop-TestProgram $program
    }

    It 'has the same <Field>' -ForEach @(
        @{ Field = 'SigBlk' }, @{ Field = 'SigIgn' }, @{ Field = 'SigCgt' }, @{ Field = 'ShdPnd' }, @{ Field = 'SigPnd' }, @{ Field = 'Umask' }
    ) {
        $after[$Field] | Should -Be $before[$Field]
    }

    It 'keeps SIGUSR2 pending for the process and SIGRTMIN for the thread' {
        [System.Convert]::ToUInt64($after['ShdPnd'], 16) -band (1L -shl 11) | Should -Not -Be 0
        [System.Convert]::ToUInt64($after['SigPnd'], 16) -band (1L -shl 33) | Should -Not -Be 0
    }

    It 'has its resource limits and working directory' {
        (Get-ProcLimit $id 'Max open files').Soft | Should -Be $limits[0].Soft
        (Get-ProcLimit $id 'Max open files').Hard | Should -Be $limits[0].Hard
        (Get-ProcLimit $id 'Max core file size').Soft | Should -Be $limits[1].Soft
        (Get-Item "/proc/$id/cwd").LinkTarget | Should -Be $dir
    }

    It 'runs its SIGUSR1 handler on the alternate stack, with the siginfo of a kill (code 0)' {
        Send-Signal $id USR1
        $null = Wait-ProgramLine $program '^USR1 1 onstack=1 code=0$' -Skip $lines -Id $id
    }
}

Describe 'memhog: every kind of memory comes back byte for byte' {
    BeforeAll {
        $file = Join-Path $TestDrive 'memhog.map'
        $bytes = [byte[]]::new(8 * 4096)
        [System.Random]::new(5).NextBytes($bytes)
        [System.IO.File]::WriteAllBytes($file, $bytes)
        $program = Start-TestProgram memhog -ArgumentList 16, $file
        $maps = Get-MergedMaps $program.Id
        $path = Join-Path $TestDrive 'memhog.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $image = (Get-CrContext -Path $path -ErrorAction Stop).Processes[0]
        $result = Invoke-TestRestart $path -Parameters @{ Stop = $true }
        $id = $result.ProcessIds[0]
        $null = Wait-Until { (Get-ProcessState $id) -eq 'T' }
    }
    AfterAll {
        Stop-RestartedProcess $result.ProcessIds
        Stop-TestProgram $program
    }

    It 'holds in every saved page what the context holds (brk, anonymous, copy-on-write file pages, PROT_NONE, read-only, shared)' {
        Compare-RestoredMemory -Id $id -ProcessImage $image -ContextPath $path | Should -BeNullOrEmpty
    }

    It 'has the memory map it had: ranges, protections and files (shared anonymous memory comes back as a memfd)' {
        Get-MergedMaps $id | Should -Be $maps
    }

    It 'goes back to its pause after SIGCONT' {
        Send-Signal $id CONT
        $null = Wait-Until { (Get-ProcessState $id) -eq 'S' }
        (Get-ProcSyscall $id).Number | Should -Be 34
    }
}

Describe 'regs: registers come back (a checkpoint of the restarted program holds the values of the first)' {
    BeforeAll {
        $program = Start-TestProgram regs
        $path = Join-Path $TestDrive 'regs.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $first = (Get-CrContext -Path $path -ErrorAction Stop).Processes[0].Threads[0]
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
        $null = Wait-Until { (Get-ProcessState $id) -eq 'S' -and (Get-ProcSyscall $id).Number -eq 34 } -Because 'the restarted regs to be back in pause'
        $again = Join-Path $TestDrive 'regs2.ctx'
        $null = Invoke-CrCheckpoint -Id $id -Path $again -ErrorAction Stop
        $second = (Get-CrContext -Path $again -ErrorAction Stop).Processes[0].Threads[0]
    }
    AfterAll {
        Stop-RestartedProcess $result.ProcessIds
        Stop-TestProgram $program
    }

    It 'keeps <Name> = <Value>' -ForEach @(
        @{ Name = 'r12'; Value = '1111222233334444' }
        @{ Name = 'r13'; Value = '5555666677778888' }
        @{ Name = 'r14'; Value = '99990000aaaabbbb' }
        @{ Name = 'r15'; Value = 'ccccddddeeeeffff' }
    ) {
        '{0:x16}' -f (Get-Register $second $Name) | Should -Be $Value
    }

    It 'is in the same pause, at the same instruction, with the same stack and thread pointer' {
        Get-Register $second 'rip' | Should -Be (ConvertFrom-Hex (Get-TestProgramValue $program RIP)[0])
        foreach ($name in 'rip', 'rsp', 'fs_base', 'orig_rax', 'cs', 'ss') {
            Get-Register $second $name | Should -Be (Get-Register $first $name) -Because "$name is what it was"
        }
        Get-Register $second 'fs_base' | Should -Be (ConvertFrom-Hex (Get-TestProgramValue $program FSBASE)[0])
    }

    It 'keeps xmm15 in its vector registers' {
        [System.BitConverter]::ToString($second.ExtendedState, 160 + 15 * 16, 16) | Should -Be 'EF-CD-AB-89-67-45-23-01-10-32-54-76-98-BA-DC-FE'
    }
}

Describe 'spinner: stopped at the very instruction it was checkpointed at, it spins on from its counter' {
    BeforeAll {
        $program = Start-TestProgram spinner
        $counter = ConvertFrom-Hex (Get-TestProgramValue $program COUNTER)[0]
        $path = Join-Path $TestDrive 'spinner.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $image = (Get-CrContext -Path $path -ErrorAction Stop).Processes[0]
        $region = $image.Regions | Where-Object { $_.Start -le $counter -and $counter -lt $_.End -and $_.SavedPages -gt 0 }
        $bytes = Read-SavedRegionBytes -ContextPath $path -Region $region
        $index = 0L
        foreach ($run in $region.SavedRuns) {
            $runStart = [uint64]$region.Start + [uint64]$run[0] * 4096
            if ($counter -ge $runStart -and $counter -lt $runStart + [uint64]$run[1] * 4096) { $index += [long]($counter - $runStart); break }
            $index += [long]$run[1] * 4096
        }
        $saved = [System.BitConverter]::ToUInt64($bytes, $index)
        function Get-Counter([int] $Id) { [System.BitConverter]::ToUInt64((Read-ProcessMemory -Id $Id -Address $counter -Length 8), 0) }
    }
    AfterAll {
        Stop-AllRestartedProcesses
        Stop-TestProgram $program
    }

    It 'restarted with -Stop, ten times out of ten, holds the very counter value it was saved with' {
        # Tracee.Release() swallows the after-restart SIGSTOP during its last remote calls and re-sends it only
        # after PTRACE_DETACH (RemoteSyscalls _deferredSignals): in between, the program runs.
        $seen = foreach ($i in 1..10) {
            $result = Invoke-TestRestart $path -Parameters @{ Stop = $true }
            $id = $result.ProcessIds[0]
            $null = Wait-Until { (Get-ProcessState $id) -eq 'T' } -Because 'the restarted spinner to be stopped'
            $live = Get-Counter $id
            "restart $i`: saved $saved, the stopped process has $live ($($live - $saved) more)"
            Stop-RestartedProcess $id
        }
        $saved | Should -BeGreaterThan 0
        $seen | Where-Object { $_ -notmatch '\(0 more\)$' } | Should -BeNullOrEmpty
    }

    It 'restarted with -Stop, holds its memory as saved (but for the counter, see above); continued, it counts on from there' {
        $result = Invoke-TestRestart $path -Parameters @{ Stop = $true }
        $id = $result.ProcessIds[0]
        $null = Wait-Until { (Get-ProcessState $id) -eq 'T' }
        Compare-RestoredMemory -Id $id -ProcessImage $image -ContextPath $path | Where-Object { $_ -notlike "*$($region.Range)*" } | Should -BeNullOrEmpty
        $from = Get-Counter $id
        $from | Should -BeGreaterOrEqual $saved
        Send-Signal $id CONT
        $null = Wait-Until { (Get-Counter $id) -gt $from + 1000000 } -Because 'the spinner to spin on'
        Get-ProcessState $id | Should -Be 'R'
    }
}

Describe 'threads: both threads come back with their ids' {
    BeforeAll {
        $program = Start-TestProgram threads
        $tids = @(Get-ChildItem "/proc/$($program.Id)/task" | ForEach-Object { [int]$_.Name } | Sort-Object)
        $path = Join-Path $TestDrive 'threads.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
    }
    AfterAll {
        Stop-RestartedProcess $result.ProcessIds
        Stop-TestProgram $program
    }

    It 'has two threads with their original ids, both back in pause' {
        $tids | Should -HaveCount 2
        @(Get-ChildItem "/proc/$id/task" | ForEach-Object { [int]$_.Name } | Sort-Object) | Should -Be $tids
        foreach ($tid in $tids) {
            $null = Wait-Until { (Get-ProcessState $tid) -eq 'S' } -Because "thread $tid to wait again"
            [System.IO.File]::ReadAllText("/proc/$id/task/$tid/syscall").Split(' ')[0] | Should -Be '34'
        }
    }
}

Describe 'python3 counting with time.sleep, appending to a file' {
    BeforeAll {
        $script = @'
import hashlib, os, time
data = bytearray(os.urandom(1 << 20))
digest = hashlib.sha256(data).hexdigest()
squares = [i * i for i in range(100000)]
log = open("count.log", "a", buffering=1)
print("READY", os.getpid(), flush=True)
n = 0
while True:
    n += 1
    log.write(f"{n}\n")
    if n % 10 == 0:
        ok = hashlib.sha256(data).hexdigest() == digest and all(squares[i] == i * i for i in range(0, 100000, 997))
        print("TICK", n, "ok" if ok else "BAD", os.getpid(), flush=True)
    time.sleep(0.005)
'@
        $program = Start-TestProgram -FilePath python3 -ArgumentList '-c', $script -WaitFor '^TICK 30 '
        $path = Join-Path $TestDrive 'python3.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $ticks = Get-TickNumbers $program
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
        $null = Wait-Ticks $program ($ticks[-1] + 60) -Id $id
    }
    AfterAll {
        Stop-RestartedProcess $result.ProcessIds
        Stop-TestProgram $program
    }

    It 'ticks on: 10, 20, 30... none missing or repeated, with its memory checks ok and its pid unchanged' {
        Get-SequenceProblem (Get-TickNumbers $program) -Step 10 -First 10 | Should -BeNullOrEmpty
        Get-ProgramLines $program | Where-Object { $_ -like 'TICK *' -and $_ -notmatch " ok $($program.Id)$" } | Should -BeNullOrEmpty
        Get-Content -Raw $program.ErrorOutput | Should -BeNullOrEmpty
    }

    It 'appends 1, 2, 3... to its file, once each' {
        Get-SequenceProblem (Get-FileNumbers (Join-Path $program.Directory 'count.log')) -First 1 | Should -BeNullOrEmpty
    }
}

Describe 'bash running a loop of builtins' {
    BeforeAll {
        $script = @'
mkfifo fifo
exec 3<>fifo
exec 4>>count.log
n=0
echo "READY $$"
while :; do
  n=$((n + 1))
  echo "$n" >&4
  if (( n % 5 == 0 )); then echo "TICK $n $BASHPID"; fi
  read -t 0.01 -u 3 line
done
'@
        $program = Start-TestProgram -FilePath bash -ArgumentList '-c', $script -WaitFor '^TICK 15 '
        $path = Join-Path $TestDrive 'bash.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $ticks = Get-TickNumbers $program
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
        $null = Wait-Ticks $program ($ticks[-1] + 30) -Id $id
    }
    AfterAll {
        Stop-RestartedProcess $result.ProcessIds
        Stop-TestProgram $program
    }

    It 'ticks on with its variables intact and its pid unchanged ($BASHPID)' {
        Get-SequenceProblem (Get-TickNumbers $program) -Step 5 -First 5 | Should -BeNullOrEmpty
        Get-ProgramLines $program | Where-Object { $_ -like 'TICK *' -and $_ -notmatch " $($program.Id)$" } | Should -BeNullOrEmpty
        Get-Content -Raw $program.ErrorOutput | Should -BeNullOrEmpty
    }

    It 'appends 1, 2, 3... to its file, once each' {
        Get-SequenceProblem (Get-FileNumbers (Join-Path $program.Directory 'count.log')) -First 1 | Should -BeNullOrEmpty
    }
}

Describe 'sleep 4, checkpointed 1.5 s in' {
    AfterEach {
        Stop-AllRestartedProcesses
        Stop-AllTestPrograms
    }

    It 'restarted with -Wait, sleeps only the 2.5 s that were left and exits 0' {
        $startFrom = Get-MonotonicMs
        $program = Start-TestProgram -FilePath sleep -ArgumentList 4 -WaitFor { param($id) (Get-ProcessState $id) -eq 'S' }
        $startTo = Get-MonotonicMs
        $path = Join-Path $TestDrive 'sleep.ctx'
        # Let 1.5 s of the sleep pass: this is the time being measured, not a wait for a condition.
        while ((Get-MonotonicMs) -lt $startTo + 1500) { Start-Sleep -Milliseconds 10 }
        $freezeFrom = Get-MonotonicMs
        $null = Invoke-CheckpointKill $program.Id $path
        $freezeTo = Get-MonotonicMs
        $run = Invoke-GuardedRestart $path -Wait -ExpectedId $program.Id
        $run.TimedOut | Should -BeFalse
        $run.Errors | Should -BeNullOrEmpty
        $run.Result.ExitCode | Should -Be 0
        $run.Result.ExitSignal | Should -BeNullOrEmpty
        # What was left when it was frozen, at least and at most; then how long the restarted sleep took.
        $leftMin = 4000 - ($freezeTo - $startFrom)
        $leftMax = 4000 - ($freezeFrom - $startTo)
        $tookMax = $run.DoneMs - $run.StartMs
        $tookMin = $tookMax - $run.Result.Duration.TotalMilliseconds - 200
        $story = "between $leftMin and $leftMax ms were left; the restarted sleep took $tookMin-$tookMax ms"
        $tookMax | Should -BeGreaterThan ($leftMin - 100) -Because "the sleep must not return at once: $story"
        $tookMin | Should -BeLessThan ($leftMax + 400) -Because "the sleep must not start over from 4 s: $story"
    }
}
