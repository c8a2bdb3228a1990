# Where the context goes and how it replaces what is there (BLCR's --file, --fd, --atomic, --backup, --clobber,
# --noclobber): mode 0600, context.PID by default, numbered backups, symlinks replaced and never followed.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"

    $script:Suffix = ',CrCheckpoint.PowerShell.InvokeCrCheckpointCommand'
    function Get-DirectoryEntries([string] $Path) { @(Get-ChildItem -Force -LiteralPath $Path | ForEach-Object Name | Sort-Object) }
    function New-Directory([string] $Name) { (New-Item -ItemType Directory -Path (Join-Path $TestDrive $Name)).FullName }
    # A context file verifies and holds this process.
    function Assert-Context([string] $Path, [int] $Id) {
        $context = Get-CrContext -LiteralPath $Path -Verify -ErrorAction Stop
        $context.Verified | Should -BeTrue
        $context.ProcessIds | Should -Be @($Id)
    }

    $program = Start-TestProgram counter
}

AfterAll {
    Stop-TestProgram $program
}

Describe 'Where the context file goes' {
    It 'is context.PID in the current PowerShell location when no -Path is given' {
        $dir = New-Directory default
        Push-Location $dir
        try { $result = Invoke-CrCheckpoint -Id $program.Id -ErrorAction Stop }
        finally { Pop-Location }
        $result.Path | Should -Be (Join-Path $dir "context.$($program.Id)")
        Get-DirectoryEntries $dir | Should -Be @("context.$($program.Id)")
        Assert-Context $result.Path $program.Id
    }

    It 'resolves a relative -Path against the PowerShell location, not the process''s working directory' {
        $dir = New-Directory relative
        $processDirectory = [System.Environment]::CurrentDirectory
        Push-Location $dir
        try {
            [System.Environment]::CurrentDirectory = '/'
            $result = Invoke-CrCheckpoint -Id $program.Id -Path 'sub.ctx' -ErrorAction Stop
        }
        finally {
            Pop-Location
            [System.Environment]::CurrentDirectory = $processDirectory
        }
        '/sub.ctx' | Should -Not -Exist
        $result.Path | Should -Be (Join-Path $dir 'sub.ctx')
        Assert-Context $result.Path $program.Id
    }

    It 'is created with mode 0600 whatever the umask' {
        $dir = New-Directory mode
        $old = [CrTest.Native]::umask(0)
        try { $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $dir 'm.ctx') -ErrorAction Stop }
        finally { $null = [CrTest.Native]::umask($old) }
        (Get-Item $result.Path).UnixMode | Should -Be '-rw-------'
        & stat -c %a $result.Path | Should -Be '600'
    }

    It 'replaces an existing file of mode 0644 by a new one of mode 0600' {
        $dir = New-Directory mode2
        $path = Join-Path $dir 'm.ctx'
        Set-Content -Path $path -Value 'old'
        & chmod 644 $path
        $null = Invoke-CrCheckpoint -Id $program.Id -Path $path -ErrorAction Stop
        & stat -c %a $path | Should -Be '600'
        Assert-Context $path $program.Id
    }

    It 'takes any file name the file system takes: 250 characters (NAME_MAX is 255)' {
        # The atomic write goes through ".NAME.PID.RANDOM.tmp" in the same directory, 23 or so characters longer
        # than NAME: for a NAME of more than about 232 characters that name is too long, and the checkpoint fails
        # with "cannot create a context file in DIR: File name too long" although NAME itself is fine.
        $dir = New-Directory longname
        $path = Join-Path $dir ('c' * 250)
        $null = New-Item -ItemType File -Path $path    # the file system takes the name
        Remove-Item -LiteralPath $path
        $result = Invoke-CrCheckpoint -Id $program.Id -Path $path -ErrorAction Stop
        $result.Path | Should -Be $path
        Assert-Context $path $program.Id
    }

    It 'with -NoSync is written all the same' {
        $dir = New-Directory nosync
        $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $dir 'n.ctx') -NoSync -ErrorAction Stop
        Assert-Context $result.Path $program.Id
    }
}

Describe 'Replacing an existing context file' {
    It 'by default (-Atomic) replaces it whole with a rename: a hard link to the old file keeps the old contents' {
        $dir = New-Directory atomic
        $path = Join-Path $dir 'job.ctx'
        $null = Invoke-CrCheckpoint -Id $program.Id -Path $path -ErrorAction Stop
        $old = Get-FileChecksum $path
        $null = New-Item -ItemType HardLink -Path (Join-Path $dir 'link') -Target $path
        $null = Invoke-CrCheckpoint -Id $program.Id -Path $path -Atomic -ErrorAction Stop
        Get-FileChecksum (Join-Path $dir 'link') | Should -Be $old
        Get-FileChecksum $path | Should -Not -Be $old
        Assert-Context $path $program.Id
        Get-DirectoryEntries $dir | Should -Be @('job.ctx', 'link')
    }

    It '-NoClobber writes a new file, and refuses to replace one (DestinationExists)' {
        $dir = New-Directory noclobber
        $path = Join-Path $dir 'job.ctx'
        $result = Invoke-CrCheckpoint -Id $program.Id -Path $path -NoClobber -ErrorAction Stop
        Assert-Context $result.Path $program.Id
        $old = Get-FileChecksum $path
        $errors = $null
        $again = Invoke-CrCheckpoint -Id $program.Id -Path $path -NoClobber -ErrorAction SilentlyContinue -ErrorVariable errors
        $again | Should -BeNullOrEmpty
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.DestinationExists$Suffix"
        "$($errors[0].CategoryInfo.Category)" | Should -Be 'ResourceExists'
        Get-FileChecksum $path | Should -Be $old
        Get-DirectoryEntries $dir | Should -Be @('job.ctx')
    }

    It '-Backup keeps the previous file as FILE.~1~, then FILE.~2~, newest with the highest number' {
        $dir = New-Directory backup
        $path = Join-Path $dir 'job.ctx'
        $first = Invoke-CrCheckpoint -Id $program.Id -Path $path -Backup -ErrorAction Stop
        $first.BackupPath | Should -BeNullOrEmpty -Because 'there was nothing to back up'
        $sum1 = Get-FileChecksum $path

        $second = Invoke-CrCheckpoint -Id $program.Id -Path $path -Backup -ErrorAction Stop
        $second.BackupPath | Should -Be "$path.~1~"
        Get-FileChecksum "$path.~1~" | Should -Be $sum1
        $sum2 = Get-FileChecksum $path
        $sum2 | Should -Not -Be $sum1

        $third = Invoke-CrCheckpoint -Id $program.Id -Path $path -Backup -ErrorAction Stop
        $third.BackupPath | Should -Be "$path.~2~"
        Get-FileChecksum "$path.~1~" | Should -Be $sum1
        Get-FileChecksum "$path.~2~" | Should -Be $sum2
        Get-DirectoryEntries $dir | Should -Be @('job.ctx', 'job.ctx.~1~', 'job.ctx.~2~')
        foreach ($f in $path, "$path.~1~", "$path.~2~") { Assert-Context $f $program.Id }
    }

    It '-Backup numbers after the highest existing backup' {
        $dir = New-Directory backup-gap
        $path = Join-Path $dir 'job.ctx'
        $null = Invoke-CrCheckpoint -Id $program.Id -Path $path -ErrorAction Stop
        Set-Content -Path "$path.~7~" -Value 'an old backup'
        $result = Invoke-CrCheckpoint -Id $program.Id -Path $path -Backup -ErrorAction Stop
        $result.BackupPath | Should -Be "$path.~8~"
        Get-Content "$path.~7~" | Should -Be 'an old backup'
    }

    It '-BackupPath NAME keeps the previous file under that name' {
        $dir = New-Directory backup-name
        $path = Join-Path $dir 'job.ctx'
        $null = Invoke-CrCheckpoint -Id $program.Id -Path $path -ErrorAction Stop
        $sum = Get-FileChecksum $path
        $result = Invoke-CrCheckpoint -Id $program.Id -Path $path -BackupPath (Join-Path $dir 'previous.ctx') -ErrorAction Stop
        $result.BackupPath | Should -Be (Join-Path $dir 'previous.ctx')
        Get-FileChecksum (Join-Path $dir 'previous.ctx') | Should -Be $sum
        Assert-Context $path $program.Id
    }

    It '-Clobber removes the existing file and writes the new one in its place' {
        $dir = New-Directory clobber
        $path = Join-Path $dir 'job.ctx'
        Set-Content -Path $path -Value 'not a context'
        $result = Invoke-CrCheckpoint -Id $program.Id -Path $path -Clobber -ErrorAction Stop
        $result.Path | Should -Be $path
        Assert-Context $path $program.Id
        & stat -c %a $path | Should -Be '600'
        Get-DirectoryEntries $dir | Should -Be @('job.ctx')
    }

    It 'refuses two replacement policies at once (terminating error) without touching the file or the process' {
        $dir = New-Directory conflict
        $path = Join-Path $dir 'job.ctx'
        $thrown = { Invoke-CrCheckpoint -Id $program.Id -Path $path -Clobber -NoClobber } | Should -Throw -PassThru
        $thrown.FullyQualifiedErrorId | Should -Be "ConflictingReplacePolicy$Suffix"
        "$($thrown.CategoryInfo.Category)" | Should -Be 'InvalidArgument'
        Get-DirectoryEntries $dir | Should -BeNullOrEmpty
        Test-ProcessUntouched $program.Id | Should -BeTrue
    }
}

Describe 'A symlink at the destination is replaced, never followed' {
    BeforeEach {
        $dir = New-Directory "symlink-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
        $victim = Join-Path $dir 'victim'
        Set-Content -Path $victim -Value 'must stay as it is'
        $victimSum = Get-FileChecksum $victim
        $link = Join-Path $dir 'job.ctx'
        $null = New-Item -ItemType SymbolicLink -Path $link -Target $victim
    }

    It 'with -<Policy>: the link becomes a regular context file and its target is untouched' -ForEach @(
        @{ Policy = 'Atomic' }
        @{ Policy = 'Clobber' }
        @{ Policy = 'Backup' }
    ) {
        $switch = @{ $Policy = $true }
        $null = Invoke-CrCheckpoint -Id $program.Id -Path $link @switch -ErrorAction Stop
        (Get-Item $link).LinkType | Should -BeNullOrEmpty
        (Get-Item $link).UnixMode | Should -Be '-rw-------'
        Assert-Context $link $program.Id
        Get-FileChecksum $victim | Should -Be $victimSum
    }

    It 'with -NoClobber, even a dangling symlink counts as existing: nothing is created at its target' {
        Remove-Item $victim
        $errors = $null
        $null = Invoke-CrCheckpoint -Id $program.Id -Path $link -NoClobber -ErrorAction SilentlyContinue -ErrorVariable errors
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.DestinationExists$Suffix"
        $victim | Should -Not -Exist
        (Get-Item $link -Force).LinkType | Should -Be 'SymbolicLink'
    }

    It 'a dangling symlink is replaced without creating its target' {
        Remove-Item $victim
        $null = Invoke-CrCheckpoint -Id $program.Id -Path $link -ErrorAction Stop
        $victim | Should -Not -Exist
        Assert-Context $link $program.Id
    }
}

Describe '-Fd writes the context to an open descriptor of this PowerShell' {
    It 'writes to a file opened by PowerShell; the result has no path and the file reads back whole' {
        $path = Join-Path $TestDrive 'fd.ctx'
        $handle = [System.IO.File]::OpenHandle($path, [System.IO.FileMode]::CreateNew, [System.IO.FileAccess]::Write)
        try {
            $fd = $handle.DangerousGetHandle().ToInt32()
            $result = Invoke-CrCheckpoint -Id $program.Id -Fd $fd -ErrorAction Stop
        }
        finally { $handle.Dispose() }
        $result.Path | Should -BeNullOrEmpty
        $result.ProcessIds | Should -Be @($program.Id)
        (Get-Item $path).Length | Should -Be $result.Bytes
        Assert-Context $path $program.Id
        Test-ProcessUntouched $program.Id | Should -BeTrue
    }

    It 'streams into a pipe, read at the other end while it is written' {
        $path = Join-Path $TestDrive 'pipe.ctx'
        $server = [System.IO.Pipes.AnonymousPipeServerStream]::new([System.IO.Pipes.PipeDirection]::In)
        $file = [System.IO.File]::Create($path)
        try {
            $copy = $server.CopyToAsync($file)
            $fd = $server.ClientSafePipeHandle.DangerousGetHandle().ToInt32()
            $result = Invoke-CrCheckpoint -Id $program.Id -Fd $fd -ErrorAction Stop
            # Closing the write end ends the stream for the reader.
            $server.DisposeLocalCopyOfClientHandle()
            $copy.Wait(30000) | Should -BeTrue
        }
        finally {
            $file.Dispose()
            $server.Dispose()
        }
        $result.Bytes | Should -Be 0 -Because 'a pipe has no length to report'
        $result.Path | Should -BeNullOrEmpty
        Assert-Context $path $program.Id
    }
}

Describe 'Several processes' {
    BeforeAll {
        $second = Start-TestProgram counter
    }
    AfterAll { Stop-TestProgram $second }

    It 'with one -Path is a terminating error, before any process is touched' {
        $dir = New-Directory several
        $path = Join-Path $dir 'one.ctx'
        $thrown = { $program.Id, $second.Id | Invoke-CrCheckpoint -Path $path } | Should -Throw -PassThru
        $thrown.FullyQualifiedErrorId | Should -Be "SeveralProcessesOneDestination$Suffix"
        "$($thrown.CategoryInfo.Category)" | Should -Be 'InvalidArgument'
        $thrown.Exception.Message | Should -Match '2 processes'
        Get-DirectoryEntries $dir | Should -BeNullOrEmpty
        Test-ProcessUntouched $program.Id | Should -BeTrue
        Test-ProcessUntouched $second.Id | Should -BeTrue
    }

    It 'with one -Fd is a terminating error too' {
        { Invoke-CrCheckpoint -Id $program.Id, $second.Id -Fd 1 } | Should -Throw -ErrorId "SeveralProcessesOneDestination$Suffix"
    }

    It 'without -Path go each to its own context.PID' {
        $dir = New-Directory each
        Push-Location $dir
        try { $results = @(Invoke-CrCheckpoint -Id $program.Id, $second.Id -ErrorAction Stop) }
        finally { Pop-Location }
        $results | Should -HaveCount 2
        Get-DirectoryEntries $dir | Should -Be @("context.$($program.Id)", "context.$($second.Id)" | Sort-Object)
        Assert-Context (Join-Path $dir "context.$($program.Id)") $program.Id
        Assert-Context (Join-Path $dir "context.$($second.Id)") $second.Id
    }
}

Describe 'Which process: -Id, the pipeline and -Scope' {
    It 'binds -Id from the pipeline by property name: <Property>' -ForEach @(
        @{ Property = 'Id' }
        @{ Property = 'PID' }
        @{ Property = 'ProcessId' }
    ) {
        $path = Join-Path $TestDrive "by-$Property.ctx"
        $result = [pscustomobject]@{ $Property = $program.Id } | Invoke-CrCheckpoint -Path $path -ErrorAction Stop
        $result.ProcessIds | Should -Be @($program.Id)
        Assert-Context $path $program.Id
    }

    It 'takes plain numbers, test-program objects and Process objects from the pipeline' {
        (($program.Id | Invoke-CrCheckpoint -Path (Join-Path $TestDrive 'int.ctx') -ErrorAction Stop).ProcessIds) | Should -Be @($program.Id)
        (($program | Invoke-CrCheckpoint -Path (Join-Path $TestDrive 'obj.ctx') -ErrorAction Stop).ProcessIds) | Should -Be @($program.Id)
        ((Get-Process -Id $program.Id | Invoke-CrCheckpoint -Path (Join-Path $TestDrive 'proc.ctx') -ErrorAction Stop).ProcessIds) | Should -Be @($program.Id)
        ((Invoke-CrCheckpoint -InputObject (Get-Process -Id $program.Id) -Path (Join-Path $TestDrive 'input.ctx') -ErrorAction Stop).ProcessIds) | Should -Be @($program.Id)
    }

    It 'with -Scope Group and -Scope Session takes a program that leads its own session' {
        $leader = Start-TestProgram counter -NewSession
        try {
            $stat = Get-ProcStat $leader.Id
            $stat.SessionId | Should -Be $leader.Id
            $stat.ProcessGroupId | Should -Be $leader.Id
            foreach ($scope in 'Group', 'Session') {
                $path = Join-Path $TestDrive "scope-$scope.ctx"
                $result = Invoke-CrCheckpoint -Id $leader.Id -Scope $scope -Path $path -ErrorAction Stop
                $result.ProcessIds | Should -Be @($leader.Id)
                (Get-CrContext -Path $path).Image.Scope | Should -Be $scope
                Test-ProcessUntouched $leader.Id | Should -BeTrue
            }
        }
        finally { Stop-TestProgram $leader }
    }

    It 'with -Scope Group refuses the group this PowerShell belongs to (it cannot checkpoint itself), and an empty session' {
        $group = (Get-ProcStat $program.Id).ProcessGroupId
        $group | Should -Be (Get-ProcStat $PID).ProcessGroupId -Because 'the test programs share the group of this PowerShell'
        $path = Join-Path $TestDrive 'group.ctx'
        $errors = $null
        $null = Invoke-CrCheckpoint -Id $group -Scope Group -Path $path -ErrorAction SilentlyContinue -ErrorVariable errors
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.Unsupported$Suffix"
        $errors[0].Exception.Message | Should -Match 'PowerShell process'
        $null = Invoke-CrCheckpoint -Id 999999 -Scope Session -Path $path -ErrorAction SilentlyContinue -ErrorVariable errors
        $errors[0].FullyQualifiedErrorId | Should -Be "Checkpoint.ProcessNotFound$Suffix"
        $path | Should -Not -Exist
        Test-ProcessUntouched $program.Id | Should -BeTrue
    }
}
