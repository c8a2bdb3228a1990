# eventfd, timerfd, signalfd, epoll and inotify: what event loops (python asyncio, libuv, .NET's socket engine, servers)
# are made of. Each comes back with its state: the eventfd's counter (and semaphore mode), the timer's period,
# time left and unread expirations, the signalfd's signals, and every watch of the epoll with its events
# (edge-triggered included) and data, and every inotify watch under the watch descriptor the program knows
# it by. The programs check them from their own side.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/RestartHelpers.psm1"

    # Writes a request and returns the program's first answer to it (a line matching Pattern after the
    # lines it had written so far).
    function Request-Answer($Program, [int] $Id, [string] $Fifo, [string] $Line, [string] $Pattern) {
        $skip = @(Get-ProgramLines $Program).Count
        Write-Fifo $Fifo $Line
        Wait-ProgramLine $Program $Pattern -Skip $skip -Id $Id
    }

    function Get-LastTickNumber($Program) {
        $ticks = @(Get-ProgramLines $Program | Where-Object { $_ -like 'TICK *' })
        if ($ticks.Count -eq 0) { return 0 }
        [long]$ticks[-1].Split(' ')[1]
    }

    # The watch lines of an epoll as fdinfo shows them: "fd events data".
    function Get-EpollWatches([int] $Id, [int] $Fd) {
        @(Get-Content "/proc/$Id/fdinfo/$Fd" | Where-Object { $_ -like 'tfd:*' } | ForEach-Object {
            if ($_ -match '^tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)') { "$($Matches[1]) $($Matches[2]) $($Matches[3])" }
        } | Sort-Object)
    }
}

AfterAll {
    Stop-AllRestartedProcesses
    Stop-AllTestPrograms
}

Describe 'An event loop on epoll with an eventfd, a timerfd and a signalfd (kernel_objects)' {
    BeforeAll {
        $fifo = Join-Path $TestDrive 'requests.fifo'
        if ([CrTest.Native]::mkfifo($fifo, [Convert]::ToInt32('600', 8)) -ne 0) { throw "mkfifo $fifo failed" }
        $program = Start-TestProgram kernel_objects $fifo
        $fds = (@(Get-ProgramLines $program) -match '^FDS ')[0].Split(' ') | Select-Object -Skip 1 | ForEach-Object { [int]$_ }
        $epollFd = $fds[0]
        $firstEvent = Request-Answer $program $program.Id $fifo 'EVENT' '^EVENTFD '
        $null = Wait-Until { (Get-LastTickNumber $program) -ge 10 } -Because 'ten timer expirations before the checkpoint'
        $watchesBefore = Get-EpollWatches $program.Id $epollFd
        $path = Join-Path $TestDrive 'loop.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $ticksAtCheckpoint = Get-LastTickNumber $program
        $descriptors = @((Get-CrContext -Path $path -ErrorAction Stop).Processes[0].Files.Descriptors)
        $lazy = $descriptors | Where-Object Fd -EQ $fds[5]
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
    }
    AfterAll { Stop-RestartedProcess $result.ProcessIds }

    It 'saves each object with its state: the counter, the timer, the signals, the watches' {
        $firstEvent | Should -Be 'EVENTFD 1'
        $eventFd = $descriptors | Where-Object Fd -EQ $fds[1]
        "$($eventFd.Kind)" | Should -Be 'EventFd'
        $eventFd.EventFd.Count | Should -Be 2
        $eventFd.EventFd.Semaphore | Should -BeTrue
        $timer = $descriptors | Where-Object Fd -EQ $fds[2]
        "$($timer.Kind)" | Should -Be 'TimerFd'
        $timer.Timer.Clock | Should -Be 1
        $timer.Timer.Interval | Should -Be @(0, 20000000)
        $lazy = $descriptors | Where-Object Fd -EQ $fds[5]
        $lazy.Timer.Ticks | Should -BeGreaterOrEqual 1 -Because 'the lazy timer has expired and was never read'
        $lazy.Timer.Value | Should -Be @(0, 0) -Because 'an expired periodic timer waits for its expirations to be read before it is moved on'
        $lazy.Timer.Interval | Should -Be @(0, 10000000)
        $once = $descriptors | Where-Object Fd -EQ $fds[6]
        $once.Timer.Ticks | Should -Be 1
        $once.Timer.Interval | Should -Be @(0, 0)

        $signalFd = $descriptors | Where-Object Fd -EQ $fds[3]
        "$($signalFd.Kind)" | Should -Be 'SignalFd'
        $signalFd.SignalFd.Mask | Should -Be ((1 -shl 9) -bor (1 -shl 11))
        $epoll = $descriptors | Where-Object Fd -EQ $epollFd
        "$($epoll.Kind)" | Should -Be 'Epoll'
        @($epoll.Epoll.Watches | ForEach-Object { '{0} {1:x} {2:x}' -f $_.Fd, $_.Events, $_.Data } | Sort-Object) |
            Should -Be @("$($fds[2]) 19 1", "$($fds[3]) 19 2", "$($fds[4]) 80000019 f1f0" | Sort-Object) -Because 'EPOLLIN, with EPOLLERR and EPOLLHUP that the kernel always adds, and EPOLLET for the FIFO'
    }

    It 'watches the same descriptors after the restart, with the same events (edge-triggered kept) and data' {
        Get-EpollWatches $id $epollFd | Should -Be $watchesBefore
    }

    It 'keeps the timer running with its period: ticks go on from where they were' {
        $id | Should -Be $program.Id
        $null = Wait-Until { (Get-LastTickNumber $program) -ge $ticksAtCheckpoint + 10 } -Because 'the timer to fire again after the restart'
        Request-Answer $program $id $fifo 'TIMER' '^TIMER ' | Should -Be 'TIMER 20000000'
    }

    It 'gives the one-shot timer its unread expiration back, once' {
        Request-Answer $program $id $fifo 'ONCE' '^ONCE ' | Should -Be 'ONCE 1'
        Request-Answer $program $id $fifo 'ONCE' '^ONCE ' | Should -Be 'ONCE none'
    }

    It 'keeps an expired periodic timer that was never read firing: once its expirations are read, more come' {
        Request-Answer $program $id $fifo 'LAZY' '^LAZY ' | Should -Match '^LAZY [1-9]\d*$'
        $null = Wait-Until { (Request-Answer $program $id $fifo 'LAZY' '^LAZY ') -match '^LAZY [1-9]' } -Because 'the lazy timer to expire again after its expirations were read'
    }

    It 'keeps the eventfd''s counter and semaphore mode: two more reads give 1 each, then it is empty' {
        Request-Answer $program $id $fifo 'EVENT' '^EVENTFD ' | Should -Be 'EVENTFD 1'
        Request-Answer $program $id $fifo 'EVENT' '^EVENTFD ' | Should -Be 'EVENTFD 1'
        Request-Answer $program $id $fifo 'EVENT' '^EVENTFD ' | Should -Be 'EVENTFD none'
    }

    It 'delivers a signal sent after the restart through the signalfd, not to a handler' {
        $skip = @(Get-ProgramLines $program).Count
        Send-Signal $id USR1
        Wait-ProgramLine $program '^SIGNAL ' -Skip $skip -Id $id | Should -Be 'SIGNAL 10 1'
    }

    It 'wakes the edge-triggered watch of the FIFO for a new line' {
        Request-Answer $program $id $fifo 'hello' '^LINE ' | Should -Be 'LINE hello'
        @(Get-ProgramLines $program) -match '^BAD' | Should -BeNullOrEmpty
    }
}

Describe 'python3 asyncio: timers, a signal handler and a socket pair, on epoll' {
    BeforeAll {
        $script = Join-Path $TestDrive 'loop.py'
        Set-Content $script @'
import asyncio, os, signal, socket
async def main():
    loop = asyncio.get_running_loop()
    usr1 = 0
    def on_usr1():
        nonlocal usr1
        usr1 += 1
        print("USR1", usr1, flush=True)
    loop.add_signal_handler(signal.SIGUSR1, on_usr1)
    reader, writer = socket.socketpair()
    received = asyncio.Queue()
    loop.add_reader(reader.fileno(), lambda: received.put_nowait(reader.recv(100)))
    print("READY", os.getpid(), flush=True)
    count = 0
    while True:
        await asyncio.sleep(0.02)
        count += 1
        writer.send(f"{count}".encode())
        echoed = (await received.get()).decode()
        print("COUNT", count, echoed, flush=True)
asyncio.run(main())
'@
        $program = Start-TestProgram -FilePath python3 -ArgumentList $script -WaitFor '^READY '
        $null = Wait-ProgramLine $program '^COUNT 20 ' -Id $program.Id
        $path = Join-Path $TestDrive 'asyncio.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $last = [long](@(Get-ProgramLines $program | Where-Object { $_ -like 'COUNT *' })[-1].Split(' ')[1])
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
    }
    AfterAll { Stop-RestartedProcess $result.ProcessIds }

    It 'goes on counting after the restart, each count echoed back through the socket pair' {
        $line = Wait-ProgramLine $program "^COUNT $($last + 20) " -Id $id
        $line | Should -Be "COUNT $($last + 20) $($last + 20)"
        $counts = @(Get-ProgramLines $program | Where-Object { $_ -like 'COUNT *' } | ForEach-Object { [long]$_.Split(' ')[1] })
        for ($i = 1; $i -lt $counts.Count; $i++) { $counts[$i] | Should -Be ($counts[$i - 1] + 1) }
    }

    It 'runs its asyncio signal handler for a SIGUSR1 sent after the restart' {
        Send-Signal $id USR1
        Wait-ProgramLine $program '^USR1 1$' -Id $id | Should -Be 'USR1 1'
    }
}

Describe 'An inotify with watches on a directory and files, one watch removed (watcher)' {
    BeforeAll {
        $dir = Join-Path $TestDrive 'watched'
        $null = New-Item -ItemType Directory $dir
        foreach ($f in 'a', 'b', 'c') { Set-Content (Join-Path $dir $f) $f }
        $program = Start-TestProgram watcher $dir
        $watches = @(Get-ProgramLines $program) -match '^WATCH '
        $path = Join-Path $TestDrive 'watcher.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $inotify = @((Get-CrContext -Path $path -ErrorAction Stop).Processes[0].Files.Descriptors | Where-Object { "$($_.Kind)" -eq 'Inotify' })
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
    }
    AfterAll { Stop-RestartedProcess $result.ProcessIds }

    It 'saves every watch with its path, mask and watch descriptor (3 was removed before the checkpoint)' {
        $watches | Should -Be @("WATCH 1 $dir", "WATCH 2 $dir/a", "WATCH 4 $dir/c")
        $inotify | Should -HaveCount 1
        @($inotify[0].Inotify.Watches | ForEach-Object { '{0} {1} {2:x}' -f $_.Wd, $_.Path, $_.Mask }) |
            Should -Be @("1 $dir 300", "2 $dir/a 2", "4 $dir/c 4")
    }

    It 'reports a file created in the watched directory after the restart, under watch 1' {
        $skip = @(Get-ProgramLines $program).Count
        Set-Content (Join-Path $dir 'new-file') 'x'
        Wait-ProgramLine $program '^EVENT 1 ' -Skip $skip -Id $id | Should -Be 'EVENT 1 100 new-file'
    }

    It 'reports a change to a, under watch 2, and to c''s attributes, under watch 4 (the gap kept)' {
        $skip = @(Get-ProgramLines $program).Count
        Add-Content (Join-Path $dir 'a') 'more'
        Wait-ProgramLine $program '^EVENT 2 ' -Skip $skip -Id $id | Should -Be 'EVENT 2 2 -'
        & chmod 600 (Join-Path $dir 'c')
        Wait-ProgramLine $program '^EVENT 4 ' -Skip $skip -Id $id | Should -Be 'EVENT 4 4 -'
    }

    It 'does not report b, whose watch was removed before the checkpoint' {
        $skip = @(Get-ProgramLines $program).Count
        Add-Content (Join-Path $dir 'b') 'more'
        Remove-Item (Join-Path $dir 'new-file')
        # The deletion is reported under watch 1 after any event b could have caused.
        Wait-ProgramLine $program '^EVENT 1 200 new-file$' -Skip $skip -Id $id | Should -Not -BeNullOrEmpty
        @(Get-ProgramLines $program | Select-Object -Skip $skip) -match '^EVENT 3 ' | Should -BeNullOrEmpty
    }
}

Describe 'A POSIX timer (timer_create) that signals with a value (posix_timer)' {
    BeforeAll {
        $program = Start-TestProgram posix_timer
        $timerId = [int](@(Get-ProgramLines $program) -match '^READY ')[0].Split(' ')[2]
        $null = Wait-ProgramLine $program '^TICK 20 ' -Id $program.Id
        $path = Join-Path $TestDrive 'timer.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $timers = @((Get-CrContext -Path $path -ErrorAction Stop).Processes[0].Process.PosixTimers)
        $lastTick = [int](@(Get-ProgramLines $program | Where-Object { $_ -like 'TICK *' })[-1].Split(' ')[1])
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
    }
    AfterAll { Stop-RestartedProcess $result.ProcessIds }

    It 'saves the timer with its id, clock, signal, value and period' {
        $timerId | Should -BeGreaterThan 0 -Because 'the timer made and deleted before it had the first id'
        $timers | Should -HaveCount 1
        $timers[0].Id | Should -Be $timerId
        $timers[0].Clock | Should -Be 1
        $timers[0].Value | Should -Be 42
        $timers[0].Interval | Should -Be @(0, 20000000)
    }

    It 'keeps firing after the restart, each signal with its value and the same timer id' {
        $line = Wait-ProgramLine $program "^TICK $($lastTick + 20) " -Id $id
        $line | Should -Be "TICK $($lastTick + 20) bad=0"
    }

    It 'answers timer_gettime on its id: the timer is the same one, armed, with its period' {
        $skip = @(Get-ProgramLines $program).Count
        Send-Signal $id USR1
        Wait-ProgramLine $program '^TIMER ' -Skip $skip -Id $id | Should -Be "TIMER $timerId interval=20000000 armed=1"
    }
}
