# Multi-threaded programs of real language runtimes, checkpointed and restarted again and again: python3 with
# the threading module, a .NET console program (tests/programs/dotnet-counter, built here), a Java program
# (tests/programs/java-counter, compiled here) and a node program on libuv's thread pool. Each prints a
# TICK line every 50 ms with its counters, read under its own lock; after every restart the counts must go on
# from where they were, in every thread, with the shared counter equal to the sum of the per-thread ones.
#
# A restarted process is a child of this PowerShell: every test kills what it restarts (Stop-RestartedPrograms).

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/ThreadHelpers.psm1"

    # "TICK n shared=S sum=S bad=0 ... counts=c0,c1,..." as numbers.
    function ConvertFrom-Tick([string] $Line) {
        $f = ConvertFrom-Fields $Line
        [pscustomobject]@{
            Tick = [long]$Line.Split(' ')[1]; Shared = [long]$f.shared; Sum = [long]$f.sum; Bad = [long]$f.bad
            Gc = if ($f.ContainsKey('gc')) { [long]$f.gc } else { 0 }
            Counts = @($f.counts.Split(',') | ForEach-Object { [long]$_ })
            Line = $Line
        }
    }

    # The last (or -First) TICK line after the first Skip lines of output, as numbers, or $null.
    function Get-LastTick($Program, [int] $Skip = 0, [switch] $First) {
        $ticks = @(Get-TestProgramOutput $Program | Select-Object -Skip $Skip | Where-Object { $_ -like 'TICK *' })
        if ($ticks.Count -eq 0) { return $null }
        ConvertFrom-Tick $(if ($First) { $ticks[0] } else { $ticks[-1] })
    }

    # Waits (while process Id lives) for a TICK after the first Skip lines in which every count is past From's
    # (and, with -Gc, the number of garbage collections too).
    function Wait-TickPast($Program, [int] $Id, $From, [int] $Skip = 0, [double] $TimeoutSec = 20, [switch] $Gc) {
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        while ($true) {
            $t = Get-LastTick $Program -Skip $Skip
            if ($t -and $t.Counts.Count -eq $From.Counts.Count) {
                $behind = @(for ($i = 0; $i -lt $From.Counts.Count; $i++) { if ($t.Counts[$i] -le $From.Counts[$i]) { $i } })
                if ($behind.Count -eq 0 -and (-not $Gc -or $t.Gc -gt $From.Gc)) { return $t }
            }
            if (-not (Test-Path "/proc/$Id") -or (Get-ProcessState $Id) -in @('Z', 'X')) {
                throw "$($Program.Name) ($Id) is gone; the last tick: $($t.Line)`n$(Get-TestProgramReport $Program)"
            }
            if ($clock.Elapsed.TotalSeconds -ge $TimeoutSec) {
                throw "Timed out after $TimeoutSec s waiting for every thread of $($Program.Name) ($Id) to count past $($From.Line)$(if ($Gc) { ' and collect' }); the last tick: $($t.Line)`n$(Get-TestProgramReport $Program)"
            }
            Start-Sleep -Milliseconds 20
        }
    }

    # Checkpoint with -Kill and restart, Cycles times; after each restart every thread must count on (and, with
    # -WaitGc, collect garbage: the next checkpoint is not taken before a collection has gone through).
    # Returns one object per cycle: the last tick before, the first tick after, a later one in which every
    # thread has counted on, the number of threads in the context, the results.
    function Invoke-RestartCycles($Program, [int] $Cycles, [string] $Directory, [switch] $NoRestorePid, [switch] $WaitGc) {
        $id = $Program.Id
        $last = Wait-TickPast $Program $id (Get-LastTick $Program)
        foreach ($cycle in 1..$Cycles) {
            $checkpoint = Invoke-WatchedCheckpoint $id (Join-Path $Directory "$($Program.Name)-$cycle.ctx") -Kill
            if ($id -eq $Program.Id -and -not (Test-ProcessExited $Program)) { $null = Wait-TestProgramExit $Program }
            $null = Wait-Until { -not (Test-Path "/proc/$id") } -Because "process $id to be gone after the checkpoint with -Kill"
            $lines = @(Get-TestProgramOutput $Program).Count
            $beforeRestart = Get-LastTick $Program
            $image = (Get-CrContext -Path $checkpoint.Path -Verify -ErrorAction Stop).Processes[0]
            $restart = Restart-ThreadProgram $checkpoint.Path -Directory $Directory -NoRestorePid:$NoRestorePid
            $id = $restart.ProcessIds[0]
            $first = Wait-TickPast $Program $id ([pscustomobject]@{ Counts = @($beforeRestart.Counts | ForEach-Object { $_ - 1 }); Line = $beforeRestart.Line }) -Skip $lines
            $later = Wait-TickPast $Program $id $first -Skip $lines -Gc:$WaitGc
            [pscustomobject]@{
                Cycle = $cycle; Id = $id; Before = $beforeRestart; First = (Get-LastTick $Program -Skip $lines -First); Later = $later
                Threads = $image.Threads.Count; Checkpoint = $checkpoint; Restart = $restart
            }
        }
    }
}

AfterAll {
    Stop-RestartedPrograms
    Stop-AllTestPrograms
}

Describe 'python3 with the threading module: counts continue (3 cycles)' {
    BeforeAll {
        $script = @'
import os, threading, time
N = 4
lock = threading.Lock()
counts = [0] * N
shared = [0]
bad = [0]
local = threading.local()
def work(i):
    local.tag = i * 7 + 3
    while True:
        for _ in range(20):
            with lock:
                shared[0] += 1
                counts[i] += 1
                if local.tag != i * 7 + 3:
                    bad[0] += 1
        time.sleep(0.001)
threads = [threading.Thread(target=work, args=(i,), name="py-%d" % i, daemon=True) for i in range(N)]
for t in threads:
    t.start()
while min(counts) == 0:
    time.sleep(0.005)
print("READY", os.getpid(), flush=True)
n = 0
while True:
    n += 1
    with lock:
        s = shared[0]
        c = list(counts)
    alive = sum(1 for t in threads if t.is_alive())
    print("TICK %d shared=%d sum=%d bad=%d alive=%d counts=%s" % (n, s, sum(c), bad[0], alive, ",".join(map(str, c))), flush=True)
    time.sleep(0.05)
'@
        $program = Start-TestProgram -FilePath python3 -ArgumentList '-c', $script -WaitFor '^READY '
        $null = Wait-Until { (Get-ThreadIds $program.Id).Count -eq 5 } -Because 'python3 to run its 4 threads'
        $cycles = @(Invoke-RestartCycles $program 3 $TestDrive)
    }
    AfterAll {
        Stop-RestartedPrograms
        Stop-TestProgram $program
    }

    It 'checkpoints the main thread and the 4 worker threads each time' {
        foreach ($c in $cycles) { $c.Threads | Should -Be 5 -Because "cycle $($c.Cycle)" }
    }

    It 'restarts with the original ids, all 5 threads' {
        foreach ($c in $cycles) { $c.Id | Should -Be $program.Id }
        Get-ThreadIds $cycles[-1].Id | Should -HaveCount 5
    }

    It 'goes on counting in every thread after each restart, from where it was, the shared count equal to the sum' {
        foreach ($c in $cycles) {
            for ($i = 0; $i -lt 4; $i++) { $c.First.Counts[$i] | Should -BeGreaterOrEqual $c.Before.Counts[$i] -Because "cycle $($c.Cycle), thread $i" }
            $c.First.Tick | Should -Be ($c.Before.Tick + 1) -Because 'the main thread goes on with its next tick'
            foreach ($t in $c.First, $c.Later) {
                $t.Shared | Should -Be $t.Sum
                $t.Bad | Should -Be 0
                $t.Line | Should -Match ' alive=4 '
            }
        }
    }
}

Describe '.NET console program (dotnet-counter) keeps counting in several threads' {
    BeforeAll {
        # Built from a copy in the test drive: nothing is written into the source tree, and test runs at the
        # same time do not share intermediate files.
        $source = Join-Path (Get-RepositoryRoot) 'tests/programs/dotnet-counter'
        $copy = Join-Path $TestDrive 'dotnet-counter'
        $null = New-Item -ItemType Directory $copy
        Copy-Item (Join-Path $source 'dotnet-counter.csproj'), (Join-Path $source 'Program.cs') $copy
        $project = Join-Path $copy 'dotnet-counter.csproj'
        $output = Join-Path $copy 'out'
        # No build servers: a lingering MSBuild node or compiler server would hold the test run's pipes open.
        $messages = & dotnet build $project -c Release -o $output --nologo -v quiet --disable-build-servers 2>&1
        if ($LASTEXITCODE -ne 0) { throw "dotnet build of $project failed:`n$($messages -join "`n")" }
        $dll = Join-Path $output 'dotnet-counter.dll'

        # As users run it: with the runtime's diagnostics server listening on its unix socket.
        function Start-DotnetCounter([string[]] $Arguments, [hashtable] $Environment = @{}) {
            foreach ($k in $Environment.Keys) { Set-Item "env:$k" $Environment[$k] }
            try {
                $started = Start-TestProgram -FilePath dotnet -ArgumentList (@($dll) + $Arguments) -WaitFor '^TICK 2 ' -TimeoutSec 30
                $script:DotnetPids += $started.Id
                $started
            }
            finally { foreach ($k in $Environment.Keys) { Remove-Item "env:$k" -ErrorAction Ignore } }
        }
        $script:DotnetPids = @()
    }
    AfterAll {
        # A killed runtime leaves its diagnostics socket file behind.
        foreach ($id in $script:DotnetPids) { Remove-Item "/tmp/dotnet-diagnostic-$id-*-socket" -ErrorAction Ignore }
    }

    Context 'with no collection forced (GC_EVERY 0): 3 cycles<Label>' -ForEach @(
        @{ NoRestorePid = $false; Label = '' }, @{ NoRestorePid = $true; Label = ', -NoRestorePid' }
    ) {
        BeforeAll {
            # A big first-generation budget too, so that the runtime does not collect on its own during the test.
            $program = Start-DotnetCounter '4', '0' @{ DOTNET_GCgen0size = '10000000' }
            $threadsBefore = (Get-ThreadIds $program.Id).Count
            $cycles = @(Invoke-RestartCycles $program 3 $TestDrive -NoRestorePid:$NoRestorePid)
        }
        AfterAll {
            Stop-RestartedPrograms
            Stop-TestProgram $program
        }

        It 'checkpoints every thread of the runtime and the program each time' {
            foreach ($c in $cycles) { $c.Threads | Should -Be $threadsBefore -Because "cycle $($c.Cycle)" }
            (Get-ThreadNames $cycles[-1].Id).Values | Should -Contain 'counter-3'
        }

        It 'goes on counting in its 4 threads after each restart, from where it was, the shared count equal to the sum' {
            foreach ($c in $cycles) {
                if ($NoRestorePid) { $c.Id | Should -Not -Be $program.Id } else { $c.Id | Should -Be $program.Id }
                for ($i = 0; $i -lt 4; $i++) { $c.First.Counts[$i] | Should -BeGreaterOrEqual $c.Before.Counts[$i] -Because "cycle $($c.Cycle), thread $i" }
                $c.First.Tick | Should -Be ($c.Before.Tick + 1)
                foreach ($t in $c.First, $c.Later) {
                    $t.Shared | Should -Be $t.Sum
                    $t.Bad | Should -Be 0
                }
            }
        }
    }

    Context 'with a garbage collection every 4th tick (GC_EVERY 4): 3 cycles' {
        BeforeAll {
            $program = Start-DotnetCounter '4', '4'
            $null = Wait-Until { $t = Get-LastTick $program; $t -and $t.Gc -ge 2 } -Because 'two collections before the checkpoint'
            $cycles = [System.Collections.Generic.List[object]]::new()
            $failure = $null
            try { Invoke-RestartCycles $program 3 $TestDrive -WaitGc | ForEach-Object { $cycles.Add($_) } }
            catch { $failure = $_ }
        }
        AfterAll {
            Stop-RestartedPrograms
            Stop-TestProgram $program
        }

        # The runtime registered for private expedited membarrier at start; a restarted process without the
        # registration (see threads_membarrier in Threads.Tests.ps1) dies at its first collection with
        # "FATAL ERROR: Failed to flush using membarrier" (SIGABRT).
        It 'goes on counting and collecting after each restart (the collector suspends every thread)' {
            $failure | Should -BeNullOrEmpty -Because "the restarted program must keep running (it failed after $($cycles.Count) complete cycle(s))"
            foreach ($c in $cycles) {
                $c.Later.Gc | Should -BeGreaterThan $c.Before.Gc -Because "cycle $($c.Cycle): collections happened after the restart"
                $c.Later.Shared | Should -Be $c.Later.Sum
                $c.Later.Bad | Should -Be 0
            }
        }
    }

    Context 'asked through its diagnostics server before and after: 2 cycles' {
        BeforeAll {
            # The runtime listens on /tmp/dotnet-diagnostic-PID-KEY-socket, from a thread blocked in poll(),
            # for dotnet-trace, dotnet-counters and debuggers.
            function Request-ProcessInfo([string] $Socket) {
                $client = [System.Net.Sockets.Socket]::new('Unix', 'Stream', 'Unspecified')
                try {
                    $client.ReceiveTimeout = 10000
                    $client.Connect([System.Net.Sockets.UnixDomainSocketEndPoint]::new($Socket))
                    # The IPC header: magic, total size, command set 4 (Process), command 0 (ProcessInfo), reserved.
                    $header = [byte[]]::new(20)
                    [System.Text.Encoding]::ASCII.GetBytes("DOTNET_IPC_V1").CopyTo($header, 0)
                    [BitConverter]::GetBytes([uint16]20).CopyTo($header, 14)
                    $header[16] = 4
                    $null = $client.Send($header)
                    $reply = [byte[]]::new(28)
                    for ($got = 0; $got -lt 28; $got += $n) {
                        $n = $client.Receive($reply, $got, 28 - $got, 'None')
                        if ($n -eq 0) { throw "the diagnostics server closed the connection after $got bytes" }
                    }
                    # The reply: command set 0xFF (Server), command 0 (OK), then the process id as a uint64.
                    [pscustomobject]@{ Ok = $reply[16] -eq 0xFF -and $reply[17] -eq 0; ProcessId = [BitConverter]::ToUInt64($reply, 20) }
                }
                finally { $client.Dispose() }
            }

            $program = Start-DotnetCounter '2', '0' @{}
            $socket = @(Get-ChildItem /tmp -Filter "dotnet-diagnostic-$($program.Id)-*-socket")[0].FullName
            $before = Request-ProcessInfo $socket
            $cycles = @(Invoke-RestartCycles $program 2 $TestDrive)
        }
        AfterAll {
            Stop-RestartedPrograms
            Stop-TestProgram $program
        }

        It 'checkpoints the runtime with its diagnostics socket listening, and goes on counting after each restart' {
            $before.Ok | Should -BeTrue
            $before.ProcessId | Should -Be $program.Id
            foreach ($c in $cycles) {
                $c.Id | Should -Be $program.Id
                $c.First.Tick | Should -Be ($c.Before.Tick + 1)
                $c.Later.Shared | Should -Be $c.Later.Sum
            }
        }

        It 'answers diagnostics clients again from the restarted runtime, on the same socket' {
            $after = Request-ProcessInfo $socket
            $after.Ok | Should -BeTrue
            $after.ProcessId | Should -Be $program.Id
        }
    }
}

Describe 'Java (java-counter): the JVM, its threads and its collector, counting in 4 threads' -Skip:(-not (Get-Command javac -ErrorAction Ignore)) {
    BeforeAll {
        $classes = Join-Path $TestDrive 'java-classes'
        $messages = & javac -d $classes (Join-Path (Get-RepositoryRoot) 'tests/programs/java-counter/Counter.java') 2>&1
        if ($LASTEXITCODE -ne 0) { throw "javac failed:`n$($messages -join "`n")" }
        $program = Start-TestProgram -FilePath java -ArgumentList '-cp', $classes, 'Counter', '4' -WaitFor '^TICK 2 ' -TimeoutSec 30
        $threadsBefore = (Get-ThreadIds $program.Id).Count
        $cycles = @(Invoke-RestartCycles $program 2 $TestDrive -WaitGc)
    }
    AfterAll {
        Stop-RestartedPrograms
        Stop-TestProgram $program
    }

    It 'checkpoints every thread of the JVM (its compiler and collector threads too) and recreates each' {
        # The JVM starts and stops compiler threads as it needs them, so the count is compared with the context.
        $threadsBefore | Should -BeGreaterThan 10
        foreach ($c in $cycles) {
            $c.Threads | Should -BeGreaterThan 10 -Because "cycle $($c.Cycle)"
            $c.Restart.Messages -match "$($c.Threads - 1) more thread\(s\) created" | Should -Not -BeNullOrEmpty -Because "cycle $($c.Cycle)"
        }
        (Get-ThreadNames $cycles[-1].Id).Values | Should -Contain 'counter-3'
    }

    It 'goes on counting in its 4 threads and collecting after each restart, the shared count equal to the sum' {
        foreach ($c in $cycles) {
            $c.Id | Should -Be $program.Id
            for ($i = 0; $i -lt 4; $i++) { $c.First.Counts[$i] | Should -BeGreaterOrEqual $c.Before.Counts[$i] -Because "cycle $($c.Cycle), thread $i" }
            $c.First.Tick | Should -Be ($c.Before.Tick + 1)
            $c.Later.Gc | Should -BeGreaterThan $c.Before.Gc -Because "cycle $($c.Cycle): collections happened after the restart"
            foreach ($t in $c.First, $c.Later) {
                $t.Shared | Should -Be $t.Sum
                $t.Bad | Should -Be 0
            }
        }
    }
}

Describe 'node (node-counter.js): timers on the event loop and jobs on libuv''s thread pool' -Skip:(-not (Get-Command node -ErrorAction Ignore)) {
    BeforeAll {
        $script = Join-Path (Get-RepositoryRoot) 'tests/programs/node-counter.js'
        $program = Start-TestProgram -FilePath node -ArgumentList $script -WaitFor '^TICK 2 ' -TimeoutSec 30
        $cycles = @(Invoke-RestartCycles $program 2 $TestDrive)
    }
    AfterAll {
        Stop-RestartedPrograms
        Stop-TestProgram $program
    }

    It 'goes on with its timer and its thread pool jobs after each restart, every result right' {
        foreach ($c in $cycles) {
            $c.Id | Should -Be $program.Id
            $c.First.Tick | Should -Be ($c.Before.Tick + 1) -Because "cycle $($c.Cycle): the timer fires next"
            $c.Later.Counts[1] | Should -BeGreaterThan $c.Before.Counts[1] -Because "cycle $($c.Cycle): jobs finish on the thread pool"
            $c.Later.Bad | Should -Be 0
        }
        $c.Threads | Should -BeGreaterThan 4 -Because 'node runs its thread pool and helper threads'
    }
}
