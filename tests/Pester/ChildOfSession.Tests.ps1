# A program started by this PowerShell (Start-Process, &, a job) is a child of the process that runs the engine.
# .NET reaps its own children on SIGCHLD with waitpid(), which also takes the ptrace stops the engine waits for:
# a checkpoint of such a child used to hang the session for ever. It must be refused with the reason, or work;
# it must never hang. The checkpoints run in a separate pwsh with a time limit, so that a hang fails this test
# instead of the whole suite.

BeforeAll {
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
}

Describe 'A child of the PowerShell session (Start-Process -PassThru)' {
    BeforeAll {
        $dir = (New-Item -ItemType Directory (Join-Path $TestDrive 'child')).FullName
        $module = Join-Path (Get-RepositoryRoot) 'CrCheckpoint.psd1'
        $script = @"
`$ErrorActionPreference = 'Continue'
Import-Module '$module'
`$p = Start-Process -FilePath sleep -ArgumentList 1000 -PassThru
try {
    Start-Sleep -Milliseconds 200
    foreach (`$after in 'Run', 'Run', 'Run', 'Stop', 'Kill') {
        `$switch = @{ `$after = `$true }
        `$errors = `$null
        `$result = Invoke-CrCheckpoint -InputObject `$p -Path '$dir/ctx' @switch -ErrorAction SilentlyContinue -ErrorVariable errors
        if (`$result) { "RESULT `$after OK" }
        else { "RESULT `$after `$(`$errors[0].FullyQualifiedErrorId) `$(`$errors[0].Exception.Message)" }
        if (`$after -eq 'Stop') { /bin/kill -CONT `$p.Id }
    }
    "HASEXITED `$(`$p.HasExited)"
}
finally { if (-not `$p.HasExited) { `$p.Kill(); `$p.WaitForExit() } }
'DONE'
"@
        $run = Invoke-ChildPwsh $script -TimeoutSec 60
    }

    It 'is checkpointed or refused within the time limit, never hanging the session' {
        $run.Output | Should -Contain 'DONE'
        @($run.Output | Where-Object { $_ -like 'RESULT *' }) | Should -HaveCount 5
    }

    It 'is refused with a reason that says so, or checkpointed: nothing else' {
        foreach ($line in $run.Output | Where-Object { $_ -like 'RESULT *' }) {
            $line | Should -Match '^RESULT \w+ (OK|Checkpoint\.Unsupported,\S+ .*child of this PowerShell)'
        }
    }

    It 'stays a live child that .NET has not marked exited, unless -Kill worked' {
        $killed = $run.Output -contains 'RESULT Kill OK'
        $run.Output | Should -Contain "HASEXITED $killed"
    }
}
