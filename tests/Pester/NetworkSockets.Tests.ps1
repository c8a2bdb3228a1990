# Internet sockets that hold no connection: a listening TCP socket (python3's http.server) and a UDP socket
# (a python3 echo server) come back bound to their address and port, and serve the next client. An open TCP
# connection is refused cleanly, the server left serving.

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

Describe 'A server with an open TCP connection' {
    BeforeAll {
        $program = Start-TestProgram -FilePath python3 -ArgumentList '-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', $TestDrive -WaitFor '^Serving HTTP on 127\.0\.0\.1 port \d+'
        $port = [int]([regex]::Match((@(Get-ProgramLines $program) -match '^Serving HTTP')[0], 'port (\d+)').Groups[1].Value)
        # Connected and accepted, but no request sent: the server holds the connection open waiting for it.
        $client = [System.Net.Sockets.TcpClient]::new('127.0.0.1', $port)
        $null = Wait-Until { @(Get-ChildItem "/proc/$($program.Id)/fd" | Where-Object { $_.LinkTarget -like 'socket:*' }).Count -ge 2 } -Because 'the server to accept the connection'
        $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'conn.ctx') -ErrorAction SilentlyContinue -ErrorVariable errors
        $client.Dispose()
    }

    It 'is refused with an Unsupported error that says it is a TCP connection' {
        $result | Should -BeNullOrEmpty
        $errors | Should -HaveCount 1
        "$($errors[0].CategoryInfo.Category)" | Should -Be 'NotImplemented'
        $errors[0].Exception.Message | Should -Match 'TCP connection with 127\.0\.0\.1:\d+'
        Test-Path (Join-Path $TestDrive 'conn.ctx') | Should -BeFalse
    }

    It 'leaves the server untouched and serving' {
        Test-ProcessUntouched $program.Id | Should -BeTrue
        Get-Page $port | Should -Match 'Directory listing'
    }
}
