# Sockets come back exactly as they were, or the checkpoint refuses: the options a program set (unix, UDP,
# IPv6, listening TCP, an established connection), an attached classic filter, the directions shut down,
# the data that waited in unix socket pairs (a seqpacket end shut both ways included: the state that once
# made the checkpoint loop for ever). The program checks all of it from its own side after the restart.
# A pipe end in flight in a unix socket (SCM_RIGHTS) rides again on its message; other descriptors in flight
# are refused, the process untouched.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/RestartHelpers.psm1"
}

AfterAll {
    Stop-AllRestartedProcesses
    Stop-AllTestPrograms
}

Describe 'Exact sockets: options, a filter and shutdowns on several kinds (socket_options)' {
    BeforeAll {
        $program = Start-TestProgram socket_options
        $path = Join-Path $TestDrive 'options.ctx'
        $checkpoint = Measure-Command { $null = Invoke-CheckpointKill $program.Id $path -Parameters @{ TimeoutSec = 60 } }
        $descriptors = @((Get-CrContext -Path $path -ErrorAction Stop).Processes[0].Files.Descriptors)
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
        $skip = @(Get-ProgramLines $program).Count
        Send-Signal $id USR1
        $done = Wait-ProgramLine $program '^DONE ' -Skip $skip -Id $id
        $checks = @(Get-ProgramLines $program | Select-Object -Skip $skip | Where-Object { $_ -like 'CHECK *' })
    }
    AfterAll { Stop-RestartedProcess $result.ProcessIds }

    It 'checkpoints without looping on the seqpacket end shut both ways' {
        $checkpoint.TotalSeconds | Should -BeLessThan 60
    }

    It 'saves the options that differ from a new socket, the filter and the shutdown state' {
        $saved = @($descriptors | Where-Object { $_.SocketOptions })
        $names = @($saved | ForEach-Object { $_.SocketOptions.Values } | ForEach-Object Name)
        foreach ($name in 'SO_RCVBUF', 'SO_MARK', 'IP_TTL', 'IP_FREEBIND', 'IPV6_UNICAST_HOPS', 'TCP_KEEPIDLE', 'TCP_CONGESTION', 'SO_LINGER') {
            $names | Should -Contain $name
        }
        @($saved | Where-Object { $_.SocketOptions.Filter }) | Should -HaveCount 1
        @($saved | ForEach-Object { $_.SocketOptions.Shutdown }) | Should -Contain 3 -Because 'the seqpacket end was shut both ways'
        @($saved | ForEach-Object { $_.SocketOptions.Shutdown }) | Should -Contain 2 -Because 'the UDP socket was shut for writing'
        @($descriptors | Where-Object { "$($_.Kind)" -eq 'UnixSocket' }) | Should -HaveCount 1 -Because 'the unix datagram socket was never bound'
    }

    It 'finds every option, the filter, the shutdowns and the queued data as it left them' {
        $checks | Where-Object { $_ -notlike '* ok' } | Should -BeNullOrEmpty
        $checks.Count | Should -BeGreaterThan 35
        $done | Should -Be 'DONE bad=0'
    }
}

Describe 'Exact sockets: a pipe end in flight in a unix socket pair (SCM_RIGHTS)' {
    BeforeAll {
        $script = Join-Path $TestDrive 'pipe-in-flight.py'
        Set-Content $script @'
import os, signal, socket
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
r, w = os.pipe()
socket.send_fds(a, [b"first"], [r])
os.close(r)
a.send(b"second")
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
print("READY", os.getpid(), flush=True)
signal.sigwait([signal.SIGUSR1])
message, fds, _, _ = socket.recv_fds(b, 16, 4, socket.MSG_DONTWAIT)
os.write(w, b"through the pipe")
print("GOT", message.decode(), len(fds), os.read(fds[0], 64).decode() if fds else "-", b.recv(16, socket.MSG_DONTWAIT).decode(), flush=True)
signal.pause()
'@
        $program = Start-TestProgram -FilePath python3 -ArgumentList '-u', $script -WaitFor '^READY '
        $path = Join-Path $TestDrive 'pipe-in-flight.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
        $skip = @(Get-ProgramLines $program).Count
        Send-Signal $id USR1
        $got = Wait-ProgramLine $program '^GOT ' -Skip $skip -Id $id
    }
    AfterAll { Stop-RestartedProcess $result.ProcessIds }

    It 'gives the message back with the pipe end on it, still the same pipe, then the next message' {
        $got | Should -Be 'GOT first 1 through the pipe second'
    }
}

Describe 'Exact sockets: another descriptor in flight in a unix socket pair (SCM_RIGHTS)' {
    BeforeAll {
        $script = Join-Path $TestDrive 'inflight.py'
        Set-Content $script @'
import os, signal, socket
a, b = socket.socketpair()
f = os.open("/dev/null", os.O_RDONLY)
socket.send_fds(a, [b"x"], [f])
print("READY", os.getpid(), b.fileno(), flush=True)
signal.pause()
'@
        $program = Start-TestProgram -FilePath python3 -ArgumentList '-u', $script -WaitFor '^READY '
        $fd = [int](@(Get-ProgramLines $program) -match '^READY ')[0].Split(' ')[2]
        $path = Join-Path $TestDrive 'inflight.ctx'
        $failures = $null
        $results = @(Invoke-CrCheckpoint -Id $program.Id -Path $path -Kill -ErrorAction SilentlyContinue -ErrorVariable failures)
    }
    AfterAll { Stop-TestProgram $program }

    It 'is refused, naming the process, the descriptor and what is in flight' {
        $results | Should -BeNullOrEmpty
        $errors = @($failures | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -BeLike 'Checkpoint.Unsupported*'
        $errors[0].Exception.Message | Should -Match "process $($program.Id)"
        $errors[0].Exception.Message | Should -Match "descriptor $fd\b.*SCM_RIGHTS.*/dev/null"
    }

    It 'leaves the process running as it was, and no context file' {
        Test-ProcessUntouched $program.Id | Should -BeTrue
        Test-Path $path | Should -BeFalse
    }
}
