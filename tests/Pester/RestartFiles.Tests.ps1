# Files at restart: regular files reopened at their path with their flags and offsets, unlinked files recreated
# from the context and unlinked again, -Relocate, missing and changed files (FileMissing, FileChanged), the
# -Save* options that carry mapped files in the context, and standard streams whose pipe is gone
# (-StandardOutput, -StandardError, or this PowerShell's own).

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/RestartHelpers.psm1"

    $script:Suffix = ',CrCheckpoint.PowerShell.InvokeCrRestartCommand'

    # Starts restart_files (or a copy of it at -FilePath), lets it work a little, takes its FILES report and
    # checkpoints it with -Kill (with the extra checkpoint parameters given).
    function Start-FilesCheckpointed([string] $Name, [hashtable] $Checkpoint = @{}, [string] $FilePath) {
        $program = if ($FilePath) { Start-TestProgram -FilePath $FilePath -WaitFor '^READY ' } else { Start-TestProgram restart_files }
        $null = Wait-Ticks $program 40 -Id $program.Id
        $report = Request-Report $program -Id $program.Id -Word FILES
        $path = Join-Path $TestDrive "$Name.ctx"
        $null = Invoke-CheckpointKill $program.Id $path -Parameters $Checkpoint
        [pscustomobject]@{
            Program = $program; Before = $report; Path = $path; Data = Join-Path $program.Directory 'data'
            Ticks = Get-TickNumbers $program; Lines = @(Get-ProgramLines $program).Count
        }
    }

    # Files the engine may have left behind while recreating unlinked files.
    function Get-Leftover([string] $Directory) {
        @(Get-ChildItem -Force -LiteralPath $Directory, ([System.IO.Path]::GetTempPath()) -Filter ".crrestart.$PID.*" -ErrorAction Ignore)
    }

    # Asserts a failed restart left nothing behind: no child of this PowerShell, the original pid free.
    function Assert-NothingRestarted([int] $OriginalId) {
        Get-LeftRunning | Should -BeNullOrEmpty -Because 'a failed restart leaves nothing running'
        Test-Path "/proc/$OriginalId" | Should -BeFalse -Because 'the original pid is not taken'
    }

    # Overwrites a file with other bytes of the same length.
    function Set-OtherContent([string] $Path) {
        $bytes = [System.IO.File]::ReadAllBytes($Path)
        for ($i = 0; $i -lt $bytes.Length; $i++) { $bytes[$i] = $bytes[$i] -bxor 0x5a }
        [System.IO.File]::WriteAllBytes($Path, $bytes)
    }
}

AfterAll {
    Stop-AllRestartedProcesses
    Stop-AllTestPrograms
}

Describe 'Files come back at their paths with their flags and offsets; an unlinked file comes back unlinked (restart_files)' {
    BeforeAll {
        $c = Start-FilesCheckpointed 'files'
        $before = $c.Before
        $content = (Get-CrContext -Path $c.Path -ErrorAction Stop).Processes[0].FileContents
        $result = Invoke-TestRestart $c.Path
        $id = $result.ProcessIds[0]
        $after = Request-Report $c.Program -Id $id -Word FILES
    }
    AfterAll {
        Stop-RestartedProcess $result.ProcessIds
        Stop-TestProgram $c.Program
    }

    It 'reopens each file at its path: <Key>' -ForEach @(
        @{ Key = 'fd3' }, @{ Key = 'fd4' }, @{ Key = 'fd5' }, @{ Key = 'fd6' }, @{ Key = 'cwd' }
    ) {
        $after[$Key] | Should -Be $before[$Key]
        $after[$Key] | Should -BeLike "$($c.Data)*"
    }

    It 'keeps the offsets (1000 in data.bin, 777 in the unlinked file) and the flags (O_APPEND, O_RDWR, close-on-exec)' {
        $after.pos3 | Should -Be '1000'
        $after.pos5 | Should -Be '777'
        foreach ($key in 'flags3', 'flags4', 'flags5', 'cloexec4') { $after[$key] | Should -Be $before[$key] -Because "$key is what it was" }
        [System.Convert]::ToInt32($after.flags4, 8) -band 0x400 | Should -Not -Be 0 -Because 'log.txt is O_APPEND'
        [System.Convert]::ToInt32($after.flags3, 8) -band 3 | Should -Be 2 -Because 'data.bin is O_RDWR'
        $after.cloexec4 | Should -Be '1'
    }

    It 'lets the program read back the 10000 bytes of its unlinked file, which has no name on disk again' {
        $before.unlinked | Should -Be '1'
        $after.unlinked | Should -Be '1'
        $after.fd5 | Should -BeLike '*/scratch.tmp_(deleted)'
        Test-Path (Join-Path $c.Data 'scratch.tmp') | Should -BeFalse
        Get-Leftover $c.Data | Should -BeNullOrEmpty
        @($content | Where-Object { $_.Record.Reason -eq 'unlinked' }).Count | Should -Be 1
    }

    It 'gives back its private file mapping: the file''s bytes, and its own bytes in the page it wrote' {
        $after.map | Should -Be '1'
    }

    It 'appends to its O_APPEND log on from where it was: 1, 2, 3... once each' {
        $null = Wait-Ticks $c.Program ($c.Ticks[-1] + 40) -Id $id
        Get-SequenceProblem (Get-FileNumbers (Join-Path $c.Data 'log.txt')) -First 1 | Should -BeNullOrEmpty
    }

    It 'keeps two descriptors made one by dup (3 and 7) one open file: moving the offset of one moves the other' {
        $before.shared | Should -Be '1'
        $after.shared | Should -Be '1'
        Test-SameOpenFile $id 3 7 | Should -BeTrue
    }
}

Describe '-Relocate moves the files and the working directory of a program to a new place' {
    BeforeAll {
        $c = Start-FilesCheckpointed 'relocate'
        # A new place whose name has a space and a non-ASCII letter (the program writes spaces as '_').
        $moved = Join-Path $c.Program.Directory 'moved dir ü'
        $shown = $moved -replace ' ', '_'
        Move-Item -LiteralPath $c.Data -Destination $moved
    }
    AfterAll {
        Stop-AllRestartedProcesses
        Stop-TestProgram $c.Program
    }

    It 'without -Relocate, is a FileMissing error naming a file that is gone, and leaves nothing running' {
        $errors = Invoke-FailingRestart $c.Path
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be "Restart.FileMissing$Suffix"
        "$($errors[0].CategoryInfo.Category)" | Should -Be 'ObjectNotFound'
        "$($errors[0].TargetObject)" | Should -BeLike "$($c.Data)/*"
        $errors[0].Exception.Message | Should -BeLike "*$($errors[0].TargetObject)*"
        $errors[0].Exception.Message | Should -Match '-Relocate'
        Assert-NothingRestarted $c.Program.Id
    }

    It 'with -Relocate @{ old = new }, uses the new place: files, directory, cwd, mapping; new files go there' {
        $result = Invoke-TestRestart $c.Path -Parameters @{ Relocate = @{ $c.Data = $moved } }
        $id = $result.ProcessIds[0]
        $after = Request-Report $c.Program -Id $id -Word FILES
        $after.cwd | Should -Be $shown
        $after.fd3 | Should -Be "$shown/data.bin"
        $after.fd4 | Should -Be "$shown/log.txt"
        $after.fd6 | Should -Be $shown
        $after.pos3 | Should -Be '1000'
        $after.map | Should -Be '1'
        $after.unlinked | Should -Be '1'
        Test-Path (Join-Path $moved $after.touched) | Should -BeTrue -Because 'a file it creates by a relative name lands in its new cwd'
        Test-Path $c.Data | Should -BeFalse -Because 'nothing is created at the old place'
        (Get-Item "/proc/$id/cwd").LinkTarget | Should -Be $moved
        $null = Wait-Ticks $c.Program ($c.Ticks[-1] + 40) -Id $id
        Get-SequenceProblem (Get-FileNumbers (Join-Path $moved 'log.txt')) -First 1 | Should -BeNullOrEmpty
        Get-Leftover $moved | Should -BeNullOrEmpty
    }
}

Describe 'A regular file that is gone at restart' {
    AfterEach {
        Stop-AllRestartedProcesses
        Stop-AllTestPrograms
    }

    It 'is a FileMissing error (ObjectNotFound) naming it; nothing is left running; once put back, the restart works' {
        $c = Start-FilesCheckpointed 'missing'
        $data = Join-Path $c.Data 'data.bin'
        $copy = Join-Path $TestDrive 'data.bin.saved'
        Move-Item -LiteralPath $data -Destination $copy
        $errors = Invoke-FailingRestart $c.Path
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be "Restart.FileMissing$Suffix"
        "$($errors[0].CategoryInfo.Category)" | Should -Be 'ObjectNotFound'
        $errors[0].TargetObject | Should -Be $data
        $errors[0].Exception.Message | Should -BeLike "*$data*"
        Assert-NothingRestarted $c.Program.Id

        Move-Item -LiteralPath $copy -Destination $data
        $result = Invoke-TestRestart $c.Path
        (Request-Report $c.Program -Id $result.ProcessIds[0] -Word FILES).pos3 | Should -Be '1000'
    }

    It 'is a FileMissing error for a working directory that is gone, found while the process is being built: it is killed, its pid freed' {
        $program = Start-TestProgram restart_state
        $null = Wait-Ticks $program 20 -Id $program.Id
        $path = Join-Path $TestDrive 'nocwd.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $work = Join-Path $program.Directory 'work'
        Remove-Item -LiteralPath $work
        $errors = Invoke-FailingRestart $path
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be "Restart.FileMissing$Suffix"
        $errors[0].TargetObject | Should -Be $work
        Assert-NothingRestarted $program.Id
    }
}

Describe 'A file mapped privately that changed or vanished since the checkpoint' {
    AfterEach {
        Stop-AllRestartedProcesses
        Stop-AllTestPrograms
    }

    It 'changed: a FileChanged error (InvalidData) naming it, and nothing left running' {
        $c = Start-FilesCheckpointed 'changed'
        $mapped = Join-Path $c.Data 'mapped.bin'
        Set-OtherContent $mapped
        $errors = Invoke-FailingRestart $c.Path
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be "Restart.FileChanged$Suffix"
        "$($errors[0].CategoryInfo.Category)" | Should -Be 'InvalidData'
        $errors[0].TargetObject | Should -Be $mapped
        $errors[0].Exception.Message | Should -BeLike "*$mapped*"
        $errors[0].Exception.Message | Should -Match '-SavePrivate'
        Assert-NothingRestarted $c.Program.Id
    }

    It 'deleted: a FileMissing error naming it' {
        $c = Start-FilesCheckpointed 'vanished'
        $mapped = Join-Path $c.Data 'mapped.bin'
        Remove-Item -LiteralPath $mapped
        $errors = Invoke-FailingRestart $c.Path
        $errors[0].FullyQualifiedErrorId | Should -Be "Restart.FileMissing$Suffix"
        $errors[0].TargetObject | Should -Be $mapped
        Assert-NothingRestarted $c.Program.Id
    }

    It 'checkpointed with <Save>: the mapping travels in the context (Get-CrContext shows it), so the restart works after the file <Change>' -ForEach @(
        @{ Save = '-SavePrivate'; Checkpoint = @{ SavePrivate = $true }; Reason = 'save-private'; Change = 'changed' }
        @{ Save = '-SavePrivate'; Checkpoint = @{ SavePrivate = $true }; Reason = 'save-private'; Change = 'was deleted' }
        @{ Save = '-SaveAll'; Checkpoint = @{ SaveAll = $true }; Reason = 'save-private'; Change = 'changed' }
        @{ Save = '-Save Private'; Checkpoint = @{ Save = 'Private' }; Reason = 'save-private'; Change = 'was deleted' }
    ) {
        $c = Start-FilesCheckpointed 'saved' -Checkpoint $Checkpoint
        $mapped = Join-Path $c.Data 'mapped.bin'
        $content = (Get-CrContext -Path $c.Path -ErrorAction Stop).Processes[0].FileContents | Where-Object { $_.Record.Path -eq $mapped }
        $content | Should -HaveCount 1
        $content.Record.Reason | Should -Be $Reason
        $content.DataLength | Should -Be (8 * 4096)
        if ($Change -eq 'changed') { Set-OtherContent $mapped } else { Remove-Item -LiteralPath $mapped }
        $result = Invoke-TestRestart $c.Path
        $after = Request-Report $c.Program -Id $result.ProcessIds[0] -Word FILES
        $after.map | Should -Be '1' -Because 'the program sees the bytes the file had at the checkpoint'
        $after.pos3 | Should -Be '1000'
    }

    It 'with -SaveExe, a program whose executable was deleted restarts; without it, that is FileMissing naming the executable' {
        $exe = Join-Path $TestDrive 'restart_files_copy'
        Copy-Item -LiteralPath (Build-TestProgram restart_files) -Destination $exe
        $c = Start-FilesCheckpointed 'saveexe' -FilePath $exe -Checkpoint @{ SaveExe = $true }
        $saved = (Get-CrContext -Path $c.Path -ErrorAction Stop).Processes[0].FileContents | Where-Object { $_.Record.Path -eq $exe }
        $saved | Should -HaveCount 1
        $saved.Record.Reason | Should -Be 'save-exe'

        $plain = Start-FilesCheckpointed 'noexe' -FilePath $exe
        Remove-Item -LiteralPath $exe
        $errors = Invoke-FailingRestart $plain.Path
        $errors[0].FullyQualifiedErrorId | Should -Be "Restart.FileMissing$Suffix"
        $errors[0].TargetObject | Should -Be $exe
        Assert-NothingRestarted $plain.Program.Id

        $result = Invoke-TestRestart $c.Path
        $after = Request-Report $c.Program -Id $result.ProcessIds[0] -Word FILES
        $after.map | Should -Be '1'
        $after.unlinked | Should -Be '1'
    }
}

Describe 'Standard streams whose pipe is gone (the program ran as `prog | reader`)' {
    AfterEach {
        Stop-AllRestartedProcesses
        Stop-AllTestPrograms
    }

    It '-StandardOutput FILE gets what it writes after the restart: its ticks go on there from where the pipe stopped' {
        $program = Start-PipedTestProgram restart_state
        (Get-FdTarget $program.Id 1) | Should -Match '^pipe:\['
        $null = Wait-Ticks $program 60 -Id $program.Id
        $path = Join-Path $TestDrive 'piped.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $null = Wait-Until { $program.Collector.Completed } -Because 'the pipe to have no writer left'
        $piped = Get-TickNumbers $program
        $out = Join-Path $TestDrive 'after.out'
        $result = Invoke-TestRestart $path -Parameters @{ StandardOutput = $out }
        $id = $result.ProcessIds[0]
        Get-FdTarget $id 1 | Should -Be $out
        $file = [pscustomobject]@{ Name = 'restart_state'; Output = $out; ErrorOutput = $program.ErrorOutput }
        $null = Wait-Ticks $file ($piped[-1] + 60) -Id $id
        $ticks = [long[]]$piped + [long[]](Get-TickNumbers $file)
        Get-SequenceProblem $ticks -Step 20 -First 20 | Should -BeNullOrEmpty
        (Get-ProcFdInfo $id 1).Flags -band 0x400 | Should -Not -Be 0 -Because 'the file is opened for appending'
    }

    It '-StandardOutput /dev/null: it runs on, writing nowhere' {
        $program = Start-PipedTestProgram restart_state
        $null = Wait-Ticks $program 40 -Id $program.Id
        $path = Join-Path $TestDrive 'devnull.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $log = Join-Path $program.Directory 'append.log'
        $count = (Get-FileNumbers $log)[-1]
        $result = Invoke-TestRestart $path -Parameters @{ StandardOutput = '/dev/null' }
        $id = $result.ProcessIds[0]
        Get-FdTarget $id 1 | Should -Be '/dev/null'
        $null = Wait-Until { (Get-FileNumbers $log)[-1] -ge $count + 100 } -Because 'the program to go on counting'
        Get-SequenceProblem (Get-FileNumbers $log) -First 1 | Should -BeNullOrEmpty
        Test-ProcessUntouched $id | Should -BeTrue
    }

    It 'stdout and stderr both on the pipe go to -StandardOutput and -StandardError' {
        $program = Start-PipedTestProgram restart_state -ErrorToPipe
        (Get-FdTarget $program.Id 2) | Should -Be (Get-FdTarget $program.Id 1)
        $null = Wait-Ticks $program 40 -Id $program.Id
        $path = Join-Path $TestDrive 'both.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $out = Join-Path $TestDrive 'both.out'
        $err = Join-Path $TestDrive 'both.err'
        $result = Invoke-TestRestart $path -Parameters @{ StandardOutput = $out; StandardError = $err }
        $id = $result.ProcessIds[0]
        Get-FdTarget $id 1 | Should -Be $out
        Get-FdTarget $id 2 | Should -Be $err
        $file = [pscustomobject]@{ Name = 'restart_state'; Output = $out; ErrorOutput = $err }
        $report = Request-Report $file -Id $id
        $report.usr1 | Should -Be '1'
        $null = Wait-Until { (Get-Content -Raw $err) -match 'ERR usr1=1' } -Because 'the program to write to its stderr'
        Get-Content -Raw $out | Should -Not -Match 'ERR'
    }

    It 'without -StandardOutput, it gets this PowerShell''s own descriptors 1 and 2 (cr_restart''s behaviour; -Stop so that it writes nothing)' {
        $program = Start-PipedTestProgram restart_state -ErrorToPipe
        $null = Wait-Ticks $program 20 -Id $program.Id
        $path = Join-Path $TestDrive 'inherit.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $result = Invoke-TestRestart $path -Parameters @{ Stop = $true }
        $id = $result.ProcessIds[0]
        try {
            Get-FdTarget $id 1 | Should -Be (Get-FdTarget $PID 1)
            Get-FdTarget $id 2 | Should -Be (Get-FdTarget $PID 2)
            Get-FdTarget $id 0 | Should -Be '/dev/null' -Because 'its stdin, /dev/null, is simply reopened'
        }
        finally { Stop-RestartedProcess $id }
    }
}

Describe 'A program writing into a FIFO whose reader is gone' {
    BeforeAll {
        # The reader is cat (its output file collects the lines); the writer is restart_io write.
        function Start-FifoReader([string] $Fifo) { Start-TestProgram -FilePath cat -ArgumentList $Fifo -WaitFor { param($id) (Get-ProcessState $id) -eq 'S' } }
        function Get-LineNumbers($Reader) { [long[]]@(Get-TestProgramOutput $Reader | Where-Object { $_ -match '^LINE \d+$' } | ForEach-Object { [long]$_.Split(' ')[1] }) }
    }
    AfterEach {
        Stop-AllRestartedProcesses
        Stop-AllTestPrograms
    }

    It 'writes on into the FIFO for a new reader after the restart: every line once, none lost' {
        $fifo = Join-Path $TestDrive 'lines.fifo'
        if ([CrTest.Native]::mkfifo($fifo, [Convert]::ToInt32('600', 8)) -ne 0) { throw "mkfifo $fifo failed" }
        $first = Start-FifoReader $fifo
        $writer = Start-TestProgram restart_io -ArgumentList 'write', $fifo
        $null = Wait-Ticks $writer 40 -Id $writer.Id
        $path = Join-Path $TestDrive 'fifo.ctx'
        $null = Invoke-CheckpointKill $writer.Id $path
        Wait-TestProgramExit $first | Should -Be 'EXITED 0' -Because 'the first reader saw end-of-file'
        $second = Start-FifoReader $fifo
        $run = Invoke-GuardedRestart $path -ExpectedId $writer.Id -TimeoutSec 20
        $run.TimedOut | Should -BeFalse -Because 'the restart must not hang opening the FIFO'
        $run.Errors | Should -BeNullOrEmpty
        Get-FdTarget $writer.Id 3 | Should -Be $fifo
        $got = Get-LineNumbers $first
        $null = Wait-Until { (Get-LineNumbers $second).Count -ge 40 } -Because 'the second reader to get lines'
        Get-SequenceProblem ([long[]]$got + (Get-LineNumbers $second)) -First 1 | Should -BeNullOrEmpty
    }

    It 'with no reader at all, the restart does not hang' {
        $fifo = Join-Path $TestDrive 'nobody.fifo'
        if ([CrTest.Native]::mkfifo($fifo, [Convert]::ToInt32('600', 8)) -ne 0) { throw "mkfifo $fifo failed" }
        $reader = Start-FifoReader $fifo
        $writer = Start-TestProgram restart_io -ArgumentList 'write', $fifo
        $null = Wait-Ticks $writer 20 -Id $writer.Id
        $path = Join-Path $TestDrive 'nobody.ctx'
        $null = Invoke-CheckpointKill $writer.Id $path
        $null = Wait-TestProgramExit $reader
        $run = Invoke-GuardedRestart $path -ExpectedId $writer.Id -TimeoutSec 20
        $run.TimedOut | Should -BeFalse -Because 'the restart must return, one way or the other'
    }
}
