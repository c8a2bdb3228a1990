# Get-Process | Invoke-CrCheckpoint: every process it is given is either checkpointed to its own context.PID, or
# gets its own non-terminating error that names it and says why. The set is restricted to processes the test
# knows (programs it started, this PowerShell, kthreadd): checkpointing every process of the machine would
# freeze system services one after the other.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"

    $dir = (New-Item -ItemType Directory (Join-Path $TestDrive 'all')).FullName
    $takeable = @(
        Start-TestProgram counter
        Start-RealProgram sleep
        Start-RealProgram python3
        Start-RealProgram bash
    )
    $socket = Start-TestProgram unsupported userfaultfd
    # What each refused process is, its pid, and the words its error must contain.
    $refusedByKind = @{
        'this PowerShell' = [pscustomobject]@{ Id = $PID; Reason = 'PowerShell process' }
        'kthreadd' = [pscustomobject]@{ Id = 2; Reason = 'kernel thread' }
        'a userfaultfd holder' = [pscustomobject]@{ Id = $socket.Id; Reason = 'descriptor 3\b.*userfaultfd' }
    }
    $refused = @{}
    foreach ($r in $refusedByKind.Values) { $refused[$r.Id] = $r.Reason }
    $ids = @($takeable.Id) + @($refused.Keys)
    $counterTicks = @(Get-TestProgramOutput $takeable[0]).Count

    Push-Location $dir
    try {
        $errors = $null
        $results = @(Get-Process | Where-Object { $_.Id -in $ids } | Invoke-CrCheckpoint -ErrorAction SilentlyContinue -ErrorVariable errors)
    }
    finally { Pop-Location }
    function Get-ErrorFor([int] $Id) {
        @($errors | Where-Object { $(if ($_.TargetObject -is [System.Diagnostics.Process]) { $_.TargetObject.Id } else { $_.TargetObject }) -eq $Id })
    }
}

AfterAll {
    Stop-TestProgram (@($takeable) + $socket)
}

Describe 'Get-Process | Invoke-CrCheckpoint over a mix of processes' {
    It 'checkpoints each process it can take, each to its own context.PID in the current location' {
        $results | Should -HaveCount $takeable.Count
        foreach ($program in $takeable) {
            $result = @($results | Where-Object { $_.ProcessIds -contains $program.Id })
            $result | Should -HaveCount 1 -Because "$($program.Name) ($($program.Id)) is checkpointed once"
            $result[0].Path | Should -Be (Join-Path $dir "context.$($program.Id)")
            (Get-CrContext -Path $result[0].Path -Verify -ErrorAction Stop).Processes[0].Pid | Should -Be $program.Id
        }
    }

    It 'gives <Kind> its own non-terminating error (Unsupported) naming it and the reason' -ForEach @(
        @{ Kind = 'this PowerShell' }
        @{ Kind = 'kthreadd' }
        @{ Kind = 'a userfaultfd holder' }
    ) {
        $expected = $refusedByKind[$Kind]
        $mine = Get-ErrorFor $expected.Id
        $mine | Should -HaveCount 1
        $mine[0].FullyQualifiedErrorId | Should -Be 'Checkpoint.Unsupported,CrCheckpoint.PowerShell.InvokeCrCheckpointCommand'
        "$($mine[0].CategoryInfo.Category)" | Should -Be 'NotImplemented'
        $mine[0].Exception.Message | Should -Match "process $($expected.Id)\b"
        $mine[0].Exception.Message | Should -Match $expected.Reason
    }

    It 'gives one error per refused process, no more' {
        $errors | Should -HaveCount $refused.Count
    }

    It 'writes no file for a refused process, and nothing else in the directory' {
        $expected = @($takeable | ForEach-Object { "context.$($_.Id)" } | Sort-Object)
        @(Get-ChildItem -Force $dir | ForEach-Object Name | Sort-Object) | Should -Be $expected
    }

    It 'leaves every process running and untraced (the default -Run)' {
        foreach ($program in $takeable) { Test-ProcessUntouched $program.Id | Should -BeTrue -Because "$($program.Name) ($($program.Id)) runs on" }
        Test-ProcessUntouched $socket.Id | Should -BeTrue
        $null = Wait-TestProgramOutput $takeable[0] '^TICK \d+ 0$' -Skip $counterTicks
    }

    It 'agrees with Get-CrCheckpointable on which processes can be taken' {
        foreach ($report in Get-CrCheckpointable -Id $ids) {
            $report.Checkpointable | Should -Be ($report.Id -in $takeable.Id) -Because "process $($report.Id) ($($report.Name))"
            if (-not $report.Checkpointable) { $report.Reason | Should -Match $refused[[int]$report.Id] }
        }
    }
}

Describe 'Get-Process | Invoke-CrCheckpoint without the privilege to trace a process of another user' {
    # This suite runs as root, which may trace anything. A pwsh running as root without any capability
    # (setpriv --bounding-set=-all) may trace only processes of its own user that have no more capabilities
    # than itself: a sleep running as nobody is "a process of another user without the privilege".
    BeforeAll {
        $dir = (New-Item -ItemType Directory (Join-Path $TestDrive 'unprivileged')).FullName
        $sleeper = (Get-Command sleep -CommandType Application | Select-Object -First 1).Source
        $others = Start-TestProgram -FilePath setpriv -ArgumentList '--reuid=65534', '--regid=65534', '--clear-groups', $sleeper, '1000' -WaitFor {
            param($id)
            $s = Get-ProcStat $id
            $s -and $s.Name -eq 'sleep' -and $s.State -eq 'S'
        }
        $own = Start-TestProgram -FilePath setpriv -ArgumentList '--bounding-set=-all', (Build-TestProgram counter) -WaitFor '^READY '
        $module = Join-Path (Get-RepositoryRoot) 'CrCheckpoint.psd1'
        $script = @"
Import-Module '$module'
Set-Location '$dir'
`$errors = `$null
Get-Process -Id $($others.Id), $($own.Id) | Invoke-CrCheckpoint -ErrorAction SilentlyContinue -ErrorVariable errors | ForEach-Object { "RESULT `$(`$_.ProcessIds -join ',') `$(`$_.Path)" }
foreach (`$e in `$errors) { "ERROR `$(`$e.TargetObject) `$(`$e.FullyQualifiedErrorId) `$(`$e.CategoryInfo.Category) `$(`$e.Exception.Message)" }
Get-CrCheckpointable -Id $($others.Id) | ForEach-Object { "REPORT `$(`$_.Checkpointable) `$(`$_.Failure) `$(`$_.Reason)" }
'DONE'
"@
        $run = Invoke-ChildPwsh $script -TimeoutSec 60 -Prefix 'setpriv', '--bounding-set=-all'
    }
    AfterAll { Stop-TestProgram $others, $own }

    It 'ran (the pwsh without capabilities finished)' {
        $run.Output | Should -Contain 'DONE' -Because "it printed: $($run.Output -join '; ') $($run.Errors)"
    }

    It 'gives the process of another user a PermissionDenied error that names it and the missing privilege' {
        $errors = @($run.Output | Where-Object { $_ -like 'ERROR *' })
        $errors | Should -HaveCount 1
        $errors[0] | Should -BeLike "ERROR $($others.Id) Checkpoint.PermissionDenied,CrCheckpoint.PowerShell.InvokeCrCheckpointCommand PermissionDenied *"
        $errors[0] | Should -Match "process $($others.Id)\b"
        $errors[0] | Should -Match 'privilege'
    }

    It 'still checkpoints the process it may trace, to its own context.PID' {
        $run.Output | Should -Contain "RESULT $($own.Id) $(Join-Path $dir "context.$($own.Id)")"
        (Get-CrContext -Path (Join-Path $dir "context.$($own.Id)") -Verify -ErrorAction Stop).ProcessIds | Should -Be @($own.Id)
        @(Get-ChildItem -Force $dir | ForEach-Object Name) | Should -Be @("context.$($own.Id)")
    }

    It 'leaves both processes running and untraced' {
        Test-ProcessUntouched $others.Id | Should -BeTrue
        Test-ProcessUntouched $own.Id | Should -BeTrue
    }

    It 'is foreseen by Get-CrCheckpointable (PermissionDenied)' {
        @($run.Output | Where-Object { $_ -like 'REPORT False PermissionDenied *' }) | Should -HaveCount 1
    }

    It 'says in both the error and the Get-CrCheckpointable reason that the process belongs to another user' {
        # ProcessSelection.Admit has this very message ("it belongs to another user and this session lacks the
        # privilege"), but its test !File.Exists("/proc/PID/exe") is never true: .NET's File.Exists falls back to
        # lstat(), and the symlink itself always exists. The error then comes from PTRACE_SEIZE ("already being
        # traced, or ... lacks the privilege"), and Get-CrCheckpointable gives .NET's "Access to the path
        # '/proc/PID/fd' is denied."
        @($run.Output | Where-Object { $_ -like 'ERROR *' })[0] | Should -Match 'another user'
        @($run.Output | Where-Object { $_ -like 'REPORT *' })[0] | Should -Match 'another user'
    }
}
