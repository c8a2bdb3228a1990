#!/usr/bin/env pwsh
# The round trip a user makes: start a job, checkpoint it (-Kill), look inside the context file,
# restart it, and see it carry on from where it was.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$root = Split-Path $PSScriptRoot
Import-Module (Join-Path $root 'CrCheckpoint.psd1') -Force

$work = Join-Path ([IO.Path]::GetTempPath()) "crcheckpoint-demo-$PID"
New-Item -ItemType Directory -Force $work | Out-Null
$program = Join-Path $work 'counter'
$log = Join-Path $work 'counter.log'
$context = Join-Path $work 'counter.ctx'

function Wait-Until([scriptblock] $Condition, [string] $What, [int] $TimeoutSec = 15) {
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSec)
    while (-not (& $Condition)) {
        if ([DateTime]::UtcNow -gt $deadline) { throw "timed out waiting for $What" }
        Start-Sleep -Milliseconds 20
    }
}
function Get-LastLine { if (Test-Path $log) { Get-Content $log -Tail 1 } }

$jobPid = $null
try {
    & gcc -O2 -o $program (Join-Path $PSScriptRoot 'counter.c')
    if ($LASTEXITCODE) { throw 'gcc failed' }

    # Start-CrProcess (cr_run): a job started so that it can be checkpointed (own session, /dev/null streams).
    Write-Host "`n== Start-CrProcess $program $log" -ForegroundColor Cyan
    $jobPid = (Start-CrProcess $program -ArgumentList $log).Id
    Wait-Until { (Get-LastLine) -match 'count 5 ' } 'the job to start counting'
    Write-Host "`n== The job is running (pid $jobPid):" -ForegroundColor Cyan
    Get-Content $log -Tail 2 | Write-Host

    Write-Host "`n== Invoke-CrCheckpoint -Id $jobPid -Path $context -Kill" -ForegroundColor Cyan
    $checkpoint = Invoke-CrCheckpoint -Id $jobPid -Path $context -Kill
    $checkpoint | Format-Table | Out-Host
    $lastBefore = Get-LastLine
    Write-Host "last line before the checkpoint: $lastBefore"
    Wait-Until { -not (Test-Path "/proc/$jobPid") -or (Get-Content "/proc/$jobPid/stat" -ErrorAction Ignore) -match '\) [ZX] ' } 'the job to die'

    Write-Host "`n== Get-CrContext -Path $context -Verify" -ForegroundColor Cyan
    $info = Get-CrContext -Path $context -Verify
    $info | Format-Table | Out-Host
    $info.Processes | Format-List | Out-Host

    Write-Host "== Invoke-CrRestart -Path $context" -ForegroundColor Cyan
    $restart = Invoke-CrRestart -Path $context
    $restart | Format-Table Path, ProcessIds, Duration | Out-Host
    $before = [long]([regex]::Match($lastBefore, 'count (\d+)').Groups[1].Value)
    Wait-Until { [long]([regex]::Match((Get-LastLine), 'count (\d+)').Groups[1].Value) -ge $before + 5 } 'the restarted job to count on'
    Write-Host "The restarted job carries on (same pid, next counts, same heap checksum):"
    Get-Content $log | Select-String "count ($before|$($before + 1)|$($before + 2)) " | ForEach-Object { Write-Host $_.Line }
    $jobPid = $restart.ProcessIds[0]
    Write-Host "`nDemo complete." -ForegroundColor Green
}
finally {
    if ($jobPid) { Stop-Process -Id $jobPid -Force -ErrorAction Ignore }
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}
