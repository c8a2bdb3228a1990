# A restart that cannot be done is a non-terminating error with a fitting id, and leaves nothing behind: no
# process running, the original pid not taken, no file recreated. Damage anywhere in a context file (header,
# record metadata, saved pages, saved file contents, a cut-off end) is ContextInvalid; no file is ContextNotFound.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/RestartHelpers.psm1"

    $script:Suffix = ',CrCheckpoint.PowerShell.InvokeCrRestartCommand'

    function Assert-NothingRestarted([int] $OriginalId, [string] $Directory) {
        Get-LeftRunning | Should -BeNullOrEmpty -Because 'a failed restart leaves nothing running'
        Test-Path "/proc/$OriginalId" | Should -BeFalse -Because 'the original pid is not taken'
        if ($Directory) {
            @(Get-ChildItem -Force -LiteralPath $Directory -Filter '.crrestart.*') | Should -BeNullOrEmpty -Because 'no recreated file is left behind'
        }
    }
}

AfterAll {
    Stop-AllRestartedProcesses
    Stop-AllTestPrograms
}

Describe 'A context file that is not there' {
    It 'is a ContextNotFound error (ObjectNotFound) naming the path' {
        $path = Join-Path $TestDrive 'nothing-here.ctx'
        $errors = Invoke-FailingRestart $path
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be "Restart.ContextNotFound$Suffix"
        "$($errors[0].CategoryInfo.Category)" | Should -Be 'ObjectNotFound'
        $errors[0].TargetObject | Should -Be $path
        $errors[0].Exception.Message | Should -BeLike "*$path*"
        Get-LeftRunning | Should -BeNullOrEmpty
    }

    It 'does not stop the next files of the pipeline: one error, then one restart' {
        $program = Start-TestProgram restart_state
        try {
            $null = Wait-Ticks $program 20 -Id $program.Id
            $good = Join-Path $TestDrive 'next.ctx'
            $null = Invoke-CheckpointKill $program.Id $good
            $all = @(& { $ErrorActionPreference = 'Continue'; (Join-Path $TestDrive 'absent.ctx'), $good | Invoke-CrRestart } 2>&1)
            $results = @($all | Where-Object { $_ -isnot [System.Management.Automation.ErrorRecord] })
            foreach ($r in $results) { Register-RestartedProcess $r.ProcessIds }
            @($all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] }) | Should -HaveCount 1
            $results | Should -HaveCount 1
            $results[0].ProcessIds | Should -Be @($program.Id)
        }
        finally {
            Stop-AllRestartedProcesses
            Stop-TestProgram $program
        }
    }
}

Describe 'A damaged context file' {
    BeforeAll {
        $program = Start-TestProgram restart_files
        $null = Wait-Ticks $program 20 -Id $program.Id
        $good = Join-Path $TestDrive 'good.ctx'
        $null = Invoke-CheckpointKill $program.Id $good
        $image = (Get-CrContext -Path $good -ErrorAction Stop).Processes[0]
        $length = (Get-Item $good).Length
        $data = Join-Path $program.Directory 'data'
        $pages = $image.Regions | Where-Object { $_.SavedPages -gt 0 } | Sort-Object SavedPages -Descending | Select-Object -First 1
        $unlinked = $image.FileContents | Where-Object { $_.Record.Reason -eq 'unlinked' } | Select-Object -First 1
    }
    AfterAll {
        Stop-AllRestartedProcesses
        Stop-TestProgram $program
    }

    It 'cut to <Label> is ContextInvalid (InvalidData) naming the file, and leaves nothing behind' -ForEach @(
        @{ Label = 'nothing'; Keep = { 0 } }
        @{ Label = '10 bytes (inside the header)'; Keep = { 10 } }
        @{ Label = 'its header'; Keep = { 64 } }
        @{ Label = 'half'; Keep = { [long]($length / 2) } }
        @{ Label = 'all but its last byte'; Keep = { $length - 1 } }
        @{ Label = 'all but its End record'; Keep = { $length - 64 } }
    ) {
        $copy = Copy-ContextFile $good (Join-Path $TestDrive 'cut.ctx')
        Set-FileLength $copy (& $Keep)
        $errors = Invoke-FailingRestart $copy
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be "Restart.ContextInvalid$Suffix"
        "$($errors[0].CategoryInfo.Category)" | Should -Be 'InvalidData'
        $errors[0].TargetObject | Should -Be $copy
        Assert-NothingRestarted $program.Id $data
    }

    It 'with a bit flipped in <Label> is ContextInvalid, and leaves nothing behind' -ForEach @(
        @{ Label = 'the magic'; Offset = { 1 } }
        @{ Label = 'the version'; Offset = { 8 } }
        @{ Label = 'the header checksum'; Offset = { 60 } }
        @{ Label = 'the first record''s header'; Offset = { 64 + 8 } }
        @{ Label = 'the first record''s metadata'; Offset = { 64 + 56 + 4 } }
        @{ Label = 'the saved pages (found while the process is being built)'; Offset = { $pages.DataOffset + 4096 + 100 } }
        @{ Label = 'the saved contents of the unlinked file'; Offset = { $unlinked.DataOffset + 5000 } }
        @{ Label = 'the End record'; Offset = { $length - 20 } }
    ) {
        $copy = Copy-ContextFile $good (Join-Path $TestDrive 'flipped.ctx')
        Invoke-FlipBit $copy (& $Offset) -Bit 3
        $errors = Invoke-FailingRestart $copy
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be "Restart.ContextInvalid$Suffix"
        Assert-NothingRestarted $program.Id $data
        Test-Path (Join-Path $data 'scratch.tmp') | Should -BeFalse -Because 'the unlinked file is not left on disk'
    }

    It 'with a bit flipped in <Label>, names the context file as the error''s TargetObject<Bug>' -ForEach @(
        @{ Label = 'the header'; Offset = { 8 }; Bug = '' }
        @{ Label = 'the first record''s metadata'; Offset = { 64 + 56 + 4 }; Bug = '' }
        @{ Label = 'the saved pages'; Offset = { $pages.DataOffset + 4096 + 100 }; Bug = '' }
        @{ Label = 'the saved contents of the unlinked file'; Offset = { $unlinked.DataOffset + 5000 }; Bug = '' }
    ) {
        $copy = Copy-ContextFile $good (Join-Path $TestDrive 'target.ctx')
        Invoke-FlipBit $copy (& $Offset) -Bit 5
        $errors = Invoke-FailingRestart $copy
        $errors[0].FullyQualifiedErrorId | Should -Be "Restart.ContextInvalid$Suffix"
        $errors[0].TargetObject | Should -Be $copy
    }

    It 'that is not a context file at all (text) is ContextInvalid' {
        $text = Join-Path $TestDrive 'text.ctx'
        Set-Content -LiteralPath $text -Value ('not a context file' * 100)
        $errors = Invoke-FailingRestart $text
        $errors[0].FullyQualifiedErrorId | Should -Be "Restart.ContextInvalid$Suffix"
        Assert-NothingRestarted $program.Id
    }

    It 'did not spoil the good file: it still restarts, and the program carries on' {
        $result = Invoke-TestRestart $good
        $report = Request-Report $program -Id $result.ProcessIds[0] -Word FILES
        $report.unlinked | Should -Be '1'
        $report.map | Should -Be '1'
    }
}
