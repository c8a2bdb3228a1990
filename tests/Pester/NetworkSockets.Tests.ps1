# Internet sockets: a listening TCP socket (python3's http.server) and a UDP socket (a python3 echo server)
# come back bound to their address and port and serve the next client; an established TCP connection is taken
# through TCP_REPAIR and goes on after the restart, the bytes that waited in it delivered, the peer none the
# wiser; a checkpoint that leaves the server running leaves its connections working.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/RestartHelpers.psm1"

    function Get-Page([int] $Port) {
        $client = [System.Net.Http.HttpClient]::new()
        try {
            $client.Timeout = [TimeSpan]::FromSeconds(10)
            $client.GetStringAsync("http://127.0.0.1:$Port/").GetAwaiter().GetResult()
        }
        finally { $client.Dispose() }
    }

    function Request-Datagram([int] $Port, [string] $Text) {
        $udp = [System.Net.Sockets.UdpClient]::new('127.0.0.1', $Port)
        try {
            $udp.Client.ReceiveTimeout = 10000
            $bytes = [System.Text.Encoding]::ASCII.GetBytes($Text)
            $null = $udp.Send($bytes, $bytes.Length)
            $from = [System.Net.IPEndPoint]::new([System.Net.IPAddress]::Any, 0)
            [System.Text.Encoding]::ASCII.GetString($udp.Receive([ref]$from))
        }
        finally { $udp.Dispose() }
    }
}

AfterAll {
    Stop-AllRestartedProcesses
    Stop-AllTestPrograms
}

Describe 'python3 -m http.server: a listening TCP socket' {
    BeforeAll {
        $site = Join-Path $TestDrive 'site'
        $null = New-Item -ItemType Directory $site
        Set-Content (Join-Path $site 'marker-file.txt') 'hello'
        $program = Start-TestProgram -FilePath python3 -ArgumentList '-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', $site -WaitFor '^Serving HTTP on 127\.0\.0\.1 port \d+'
        $port = [int]([regex]::Match((@(Get-ProgramLines $program) -match '^Serving HTTP')[0], 'port (\d+)').Groups[1].Value)
        $before = Get-Page $port
        $path = Join-Path $TestDrive 'http.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $descriptor = @((Get-CrContext -Path $path -ErrorAction Stop).Processes[0].Files.Descriptors | Where-Object { "$($_.Kind)" -eq 'InetSocket' })
        $result = Invoke-TestRestart $path
    }
    AfterAll { Stop-RestartedProcess $result.ProcessIds }

    It 'served the directory before the checkpoint' {
        $before | Should -Match 'marker-file\.txt'
    }

    It 'saves the socket with its address, port, backlog and options' {
        $descriptor | Should -HaveCount 1
        $descriptor[0].Inet.Local | Should -Be "127.0.0.1:$port"
        $descriptor[0].Inet.Listening | Should -BeTrue
        $descriptor[0].Inet.Backlog | Should -Be 5 -Because 'socketserver listens with request_queue_size 5'
        $descriptor[0].Inet.ReuseAddress | Should -BeTrue -Because 'http.server sets SO_REUSEADDR'
    }

    It 'serves the directory again from the restarted process, on the same port' {
        $result.Messages -match "listening again on TCP 127\.0\.0\.1:$port" | Should -Not -BeNullOrEmpty
        Get-Page $port | Should -Match 'marker-file\.txt'
        Test-Path "/proc/$($result.ProcessIds[0])" | Should -BeTrue
    }
}

Describe 'A python3 UDP echo server' {
    BeforeAll {
        $script = Join-Path $TestDrive 'udp.py'
        Set-Content $script @'
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print("PORT", s.getsockname()[1], flush=True)
count = 0
while True:
    data, peer = s.recvfrom(100)
    count += 1
    s.sendto(f"{count} {data.decode()} {os.getpid()}".encode(), peer)
'@
        $program = Start-TestProgram -FilePath python3 -ArgumentList $script -WaitFor '^PORT '
        $port = [int](@(Get-ProgramLines $program) -match '^PORT ')[0].Split(' ')[1]
        $before = Request-Datagram $port 'one'
        $path = Join-Path $TestDrive 'udp.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $result = Invoke-TestRestart $path
    }
    AfterAll { Stop-RestartedProcess $result.ProcessIds }

    It 'answers the next datagram from the restarted process, its count going on' {
        $before | Should -Be "1 one $($program.Id)"
        Request-Datagram $port 'two' | Should -Be "2 two $($program.Id)"
    }
}

Describe 'An established TCP connection (python3 server, this PowerShell as the client)' {
    BeforeAll {
        $script = Join-Path $TestDrive 'conn.py'
        Set-Content $script @'
import os, signal, socket
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(4)
print("PORT", server.getsockname()[1], flush=True)
released = False
def release(*_):
    global released
    released = True
signal.signal(signal.SIGUSR1, release)
connection, _ = server.accept()
print("ACCEPTED", flush=True)
while not released:
    signal.pause()
print("READING", flush=True)
lines = connection.makefile("rb")
count = 0
for line in lines:
    count += 1
    connection.sendall(f"{count} {line.decode().strip()} {os.getpid()}\n".encode())
print("EOF", flush=True)
'@
        $program = Start-TestProgram -FilePath python3 -ArgumentList $script -WaitFor '^PORT '
        $port = [int](@(Get-ProgramLines $program) -match '^PORT ')[0].Split(' ')[1]
        $client = [System.Net.Sockets.TcpClient]::new('127.0.0.1', $port)
        $client.ReceiveTimeout = 10000
        $stream = $client.GetStream()
        $reader = [System.IO.StreamReader]::new($stream)
        $null = Wait-ProgramLine $program '^ACCEPTED$' -Id $program.Id
        # Sent before the checkpoint; the server does not read before SIGUSR1: it waits in its receive queue.
        $early = [System.Text.Encoding]::ASCII.GetBytes("early`n")
        $stream.Write($early, 0, $early.Length)
        $path = Join-Path $TestDrive 'conn.ctx'
        $checkpoint = Invoke-CheckpointKill $program.Id $path
        $connection = @((Get-CrContext -Path $path -ErrorAction Stop).Processes[0].Files.Descriptors |
            Where-Object { "$($_.Kind)" -eq 'InetSocket' -and $_.Inet.Tcp })
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
    }
    AfterAll {
        $client.Dispose()
        Stop-RestartedProcess $result.ProcessIds
    }

    It 'saves the connection with its addresses, sequence numbers and the unread bytes' {
        $connection | Should -HaveCount 1
        $connection[0].Inet.Local | Should -Be "127.0.0.1:$port"
        $connection[0].Inet.Peer | Should -Be "127.0.0.1:$(([System.Net.IPEndPoint]$client.Client.LocalEndPoint).Port)"
        [System.Text.Encoding]::ASCII.GetString($connection[0].Inet.Tcp.ReceiveQueue) | Should -Be "early`n"
        $checkpoint.Messages -match 'closed in repair mode' | Should -Not -BeNullOrEmpty
    }

    It 'delivers the bytes that waited, then answers on the same connection: the client saw no reset' {
        $id | Should -Be $program.Id
        Send-Signal $id USR1
        $reader.ReadLine() | Should -Be "1 early $id"
        $late = [System.Text.Encoding]::ASCII.GetBytes("late`n")
        $stream.Write($late, 0, $late.Length)
        $reader.ReadLine() | Should -Be "2 late $id"
    }

    It 'sees the client close the connection' {
        $client.Client.Shutdown([System.Net.Sockets.SocketShutdown]::Send)
        $null = Wait-ProgramLine $program '^EOF$' -Id $id
    }
}

Describe 'An established TCP connection of a server that goes on running after the checkpoint' {
    BeforeAll {
        $program = Start-TestProgram -FilePath python3 -ArgumentList '-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', $TestDrive -WaitFor '^Serving HTTP on 127\.0\.0\.1 port \d+'
        $port = [int]([regex]::Match((@(Get-ProgramLines $program) -match '^Serving HTTP')[0], 'port (\d+)').Groups[1].Value)
        # Connected and accepted, no request sent yet: the server holds the connection open waiting for it.
        $client = [System.Net.Sockets.TcpClient]::new('127.0.0.1', $port)
        $client.ReceiveTimeout = 10000
        $null = Wait-Until { @(Get-ChildItem "/proc/$($program.Id)/fd" | Where-Object { $_.LinkTarget -like 'socket:*' }).Count -ge 2 } -Because 'the server to accept the connection'
        $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'live.ctx') -ErrorAction Stop
    }
    AfterAll { $client.Dispose() }

    It 'takes the connection out of repair mode again: the request sent now is answered' {
        $result.Messages -match '1 TCP connection\(s\) held in repair mode' | Should -Not -BeNullOrEmpty
        $stream = $client.GetStream()
        $request = [System.Text.Encoding]::ASCII.GetBytes("GET / HTTP/1.0`r`n`r`n")
        $stream.Write($request, 0, $request.Length)
        [System.IO.StreamReader]::new($stream).ReadLine() | Should -Match '^HTTP/1\.[01] 200'
        Test-ProcessUntouched $program.Id | Should -BeTrue
    }
}

Describe 'python3 with a UDP-Lite socket and an ICMP ping socket: both bound again, both still talk' {
    BeforeAll {
        # On SIGUSR1 it sends itself a datagram through the UDP-Lite socket and pings 127.0.0.1 through the
        # ping socket, and says whether each answer came back.
        $script = @'
import signal, socket, struct, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 136)
u.bind(('127.0.0.1', 0))
p = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
u.settimeout(5); p.settimeout(5)
def check(*_):
    u.sendto(b'lite', u.getsockname())
    lite = u.recvfrom(64)[0] == b'lite'
    p.sendto(struct.pack('!BBHHH', 8, 0, 0, 0, 1) + b'ping', ('127.0.0.1', 0))
    reply = p.recvfrom(64)[0]
    print('NET port=%d udplite=%d ping=%d' % (u.getsockname()[1], lite, reply[0] == 0 and reply.endswith(b'ping')), flush=True)
signal.signal(signal.SIGUSR1, check)
print('READY %d' % u.getsockname()[1], flush=True)
while True:
    signal.pause()
'@
        $program = Start-TestProgram -FilePath python3 -ArgumentList '-c', $script -WaitFor '^READY '
        $before = Request-Report $program -Id $program.Id -Word NET
        $path = Join-Path $TestDrive 'udplite.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
        $after = Request-Report $program -Id $id -Word NET
    }
    AfterAll { Stop-RestartedProcess $id }

    It 'talked through both before the checkpoint' {
        $before.udplite | Should -Be '1'
        $before.ping | Should -Be '1'
    }

    It 'talks through both after the restart, the UDP-Lite socket on the same port' {
        $after.udplite | Should -Be '1'
        $after.ping | Should -Be '1'
        $after.port | Should -Be $before.port
    }
}
