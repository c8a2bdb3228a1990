@{
    RootModule             = 'bin/CrCheckpoint.PowerShell.dll'
    ModuleVersion          = '0.1.0'
    GUID                   = 'ff379a50-f82f-4ff9-a437-7ac4fc509b46'
    Author                 = 'CrCheckpoint developers'
    CompanyName            = 'CrCheckpoint'
    Copyright              = '(c) CrCheckpoint developers. MIT License.'
    Description            = 'Transparent checkpoint/restart of unmodified Linux processes (BLCR''s cr_checkpoint, cr_restart and cr_run as cmdlets), through ptrace and /proc: no kernel module, no preloaded library.'
    PowerShellVersion      = '7.4'
    CompatiblePSEditions   = @('Core')
    FormatsToProcess       = @('CrCheckpoint.Format.ps1xml')
    CmdletsToExport        = @(
        'Invoke-CrCheckpoint'
        'Get-CrContext'
        'Get-CrCheckpointable'
        'Invoke-CrRestart'
        'Start-CrProcess'
    )
    FunctionsToExport      = @()
    AliasesToExport        = @('cr_run')
    VariablesToExport      = @()
    PrivateData            = @{
        PSData = @{
            Tags         = @('Linux', 'checkpoint', 'restart', 'BLCR', 'ptrace', 'HPC')
            ProjectUri   = ''
            ReleaseNotes = 'See CHANGELOG.md'
        }
    }
}
