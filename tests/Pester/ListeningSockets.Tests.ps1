# Servers on listening unix sockets: the socket comes back bound to the same name (a path, with its socket file's
# mode, or a name in the abstract namespace) with the same backlog, and the restarted server accepts the next
# client where it left off. A name a live socket still holds is refused before anything is built; -Relocate
# moves it. Connections that waited to be accepted at the checkpoint cannot come along, and the restart says so.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/RestartHelpers.psm1"

    # Connects to a unix socket (a path, or @name in the abstract namespace) and returns the line the server sent.
    function Request-Line([string] $Name, [double] $TimeoutSec = 10) {
        $address = if ($Name.StartsWith('@')) { "`0" + $Name.Substring(1) } else { $Name }
        $client = [System.Net.Sockets.Socket]::new('Unix', 'Stream', 'Unspecified')
        try {
            $client.ReceiveTimeout = [int]($TimeoutSec * 1000)
            $client.Connect([System.Net.Sockets.UnixDomainSocketEndPoint]::new($address))
            $reader = [System.IO.StreamReader]::new([System.Net.Sockets.NetworkStream]::new($client, $false))
            $reader.ReadLine()
        }
        finally { $client.Dispose() }
    }

    function Get-ListeningDescriptor($Context) {
        @($Context.Processes[0].Files.Descriptors | Where-Object { "$($_.Kind)" -eq 'ListeningSocket' })
    }

    function Get-SocketFileMode([string] $Path) { [int][System.IO.File]::GetUnixFileMode($Path) }
}

AfterAll {
    Stop-AllRestartedProcesses
    Stop-AllTestPrograms
}

Describe 'A server listening on a socket file (unix_server, mode 0640, backlog 7)' {
    BeforeAll {
        $dir = Join-Path $TestDrive 'file'
        $null = New-Item -ItemType Directory $dir
        $socket = Join-Path $dir 'server.sock'
        $program = Start-TestProgram unix_server $socket, '640', '7'
        $first = Request-Line $socket
        $null = Wait-TestProgramOutput $program '^SERVED 1$'
        $path = Join-Path $TestDrive 'file.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $context = Get-CrContext -Path $path -ErrorAction Stop
        $leftBehind = Test-Path $socket
        $result = Invoke-TestRestart $path
    }
    AfterAll { Stop-RestartedProcess $result.ProcessIds }

    It 'served its first client before the checkpoint' {
        $first | Should -Be "HELLO 1 $($program.Id)"
    }

    It 'saves the descriptor as a listening socket with its path, backlog and file mode' {
        $d = Get-ListeningDescriptor $context
        $d | Should -HaveCount 1
        $d[0].SocketName | Should -Be $socket
        $d[0].ListenBacklog | Should -Be 7
        $d[0].SocketFileMode | Should -Be ([Convert]::ToInt32('640', 8))
        $d[0].PendingConnections | Should -Be 0
    }

    It 'listens on the same path again after the restart, the socket file with its mode (the killed server had left its file)' {
        $leftBehind | Should -BeTrue
        (Get-Item $socket).UnixFileMode | Should -Not -BeNullOrEmpty
        Get-SocketFileMode $socket | Should -Be ([Convert]::ToInt32('640', 8))
        $result.Messages -match [regex]::Escape("listening again on $socket (backlog 7)") | Should -Not -BeNullOrEmpty
    }

    It 'gives the next clients to the restarted server (same pid), which counts on from where it was' {
        Request-Line $socket | Should -Be "HELLO 2 $($program.Id)"
        Request-Line $socket | Should -Be "HELLO 3 $($program.Id)"
        $null = Wait-ProgramLine $program '^SERVED 3$' -Id $program.Id
    }
}

Describe 'A server listening on a name in the abstract namespace' {
    BeforeAll {
        $name = "@crtest-$([guid]::NewGuid().ToString('N'))"
        $program = Start-TestProgram unix_server $name, '600', '3'
        $first = Request-Line $name
        $path = Join-Path $TestDrive 'abstract.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $context = Get-CrContext -Path $path -ErrorAction Stop
        $result = Invoke-TestRestart $path -Parameters @{ NoRestorePid = $true }
    }
    AfterAll { Stop-RestartedProcess $result.ProcessIds }

    It 'saves the abstract name' {
        $first | Should -Be "HELLO 1 $($program.Id)"
        (Get-ListeningDescriptor $context)[0].SocketName | Should -Be $name
    }

    It 'answers on the same name from the restarted process (a new pid with -NoRestorePid)' {
        $id = $result.ProcessIds[0]
        $id | Should -Not -Be $program.Id
        Request-Line $name | Should -Be "HELLO 2 $id"
    }
}

Describe 'A name that a live socket still holds' {
    BeforeAll {
        $dir = Join-Path $TestDrive 'held'
        $moved = Join-Path $TestDrive 'moved'
        $null = New-Item -ItemType Directory $dir, $moved
        $socket = Join-Path $dir 'server.sock'
        $program = Start-TestProgram unix_server $socket, '600', '5'
        $path = Join-Path $TestDrive 'held.ctx'
        # The server goes on running: its socket still holds the name.
        $null = Invoke-CrCheckpoint -Id $program.Id -Path $path -ErrorAction Stop
    }

    It 'is a FileInUse error (ResourceExists) that names the path and suggests -Relocate; nothing is left running' {
        $errors = Invoke-FailingRestart $path -Parameters @{ NoRestorePid = $true }
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be 'Restart.FileInUse,CrCheckpoint.PowerShell.InvokeCrRestartCommand'
        "$($errors[0].CategoryInfo.Category)" | Should -Be 'ResourceExists'
        "$($errors[0].TargetObject)" | Should -Be $socket
        $errors[0].Exception.Message | Should -Match '-Relocate'
        Get-LeftRunning | Should -BeNullOrEmpty
    }

    It 'leaves the running server its socket: it still answers' {
        Request-Line $socket | Should -Be "HELLO 1 $($program.Id)"
    }

    It 'restarts beside the original with -Relocate, listening at the new path' {
        $result = Invoke-TestRestart $path -Parameters @{ NoRestorePid = $true; Relocate = @{ $dir = $moved } }
        try {
            $id = $result.ProcessIds[0]
            Request-Line (Join-Path $moved 'server.sock') | Should -Be "HELLO 1 $id"
            Request-Line $socket | Should -Match "^HELLO \d+ $($program.Id)$" -Because 'the original keeps its own socket'
        }
        finally { Stop-RestartedProcess $result.ProcessIds }
    }
}

Describe 'Connections waiting to be accepted at the checkpoint' {
    BeforeAll {
        $socket = Join-Path $TestDrive 'hold.sock'
        $program = Start-TestProgram unix_server $socket, '600', '4', 'hold'
        # Connected, but the server does not accept before SIGUSR1: the connection waits in the backlog.
        $waiting = [System.Net.Sockets.Socket]::new('Unix', 'Stream', 'Unspecified')
        $waiting.Connect([System.Net.Sockets.UnixDomainSocketEndPoint]::new($socket))
        $path = Join-Path $TestDrive 'hold.ctx'
        $failures = $null
        $refused = Invoke-CrCheckpoint -Id $program.Id -Path $path -Kill -ErrorAction SilentlyContinue -ErrorVariable failures
        $aliveAfterRefusal = Test-ProcessAlive $program.Id
        $checkpoint = Invoke-CheckpointKill $program.Id $path -Parameters @{ AcceptLoss = $true }
        $context = Get-CrContext -Path $path -ErrorAction Stop
        $result = Invoke-TestRestart $path
    }
    AfterAll {
        $waiting.Dispose()
        Stop-RestartedProcess $result.ProcessIds
    }

    It 'is refused without -AcceptLoss, naming the waiting connection, and the server goes on' {
        $refused | Should -BeNullOrEmpty
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'Checkpoint.Unsupported,*'
        $failures[0].Exception.Message | Should -Match '1 connection\(s\) waiting to be accepted.*-AcceptLoss'
        $aliveAfterRefusal | Should -BeTrue
    }

    It 'with -AcceptLoss, names the loss in the checkpoint''s messages' {
        $checkpoint.Messages -match '1 connection\(s\) waiting to be accepted; lost, as -AcceptLoss allows' | Should -Not -BeNullOrEmpty
    }

    It 'records how many were waiting' {
        (Get-ListeningDescriptor $context)[0].PendingConnections | Should -Be 1
    }

    It 'says at restart that they are not carried over' {
        $result.Messages -match '1 connection\(s\) waiting to be accepted on .*hold\.sock at the checkpoint are not carried over' | Should -Not -BeNullOrEmpty
    }

    It 'serves new clients once released; the one that waited is not among them' {
        Send-Signal $program.Id USR1
        $null = Wait-ProgramLine $program '^RELEASED$' -Id $program.Id
        Request-Line $socket | Should -Be "HELLO 1 $($program.Id)"
    }
}

Describe 'python3 serving on a unix socket from a thread blocked in accept()' {
    BeforeAll {
        $socket = Join-Path $TestDrive 'py.sock'
        $script = Join-Path $TestDrive 'server.py'
        Set-Content $script @'
import os, socket, sys, threading
path = sys.argv[1]
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(16)
served = 0
def serve():
    global served
    while True:
        connection, _ = server.accept()
        served += 1
        connection.sendall(f"HELLO {served} {os.getpid()}\n".encode())
        connection.close()
threading.Thread(target=serve, daemon=True).start()
print("READY", os.getpid(), flush=True)
threading.Event().wait()
'@
        $program = Start-TestProgram -FilePath python3 -ArgumentList $script, $socket -WaitFor '^READY '
        $first = Request-Line $socket
        $path = Join-Path $TestDrive 'py.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $result = Invoke-TestRestart $path
    }
    AfterAll { Stop-RestartedProcess $result.ProcessIds }

    It 'answers the next client from the restarted interpreter, its count going on' {
        $first | Should -Be "HELLO 1 $($program.Id)"
        Request-Line $socket | Should -Be "HELLO 2 $($program.Id)"
        Request-Line $socket | Should -Be "HELLO 3 $($program.Id)"
    }
}
