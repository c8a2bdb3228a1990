# Memory comes back with more than its bytes: what madvise, mlock and MADV_GUARD_INSTALL did to each area,
# the access mode of the files behind shared mappings (what mprotect may later do), and memfds with their mode,
# flags, seals and separate open descriptions. The program (memory_exact) reports all of it from its own side,
# once before the checkpoint and once after the restart; the two reports must be the same.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/RestartHelpers.psm1"
}

AfterAll {
    Stop-AllRestartedProcesses
    Stop-AllTestPrograms
}

Describe 'vma flags, guard pages, file access modes and memfds survive a restart (memory_exact)' {
    BeforeAll {
        $program = Start-TestProgram memory_exact
        $before = ConvertFrom-KeyValueLine (@(Get-ProgramLines $program) -match '^MEM ')[0]
        $rwFile = Join-Path $program.Directory 'rw.bin'
        $rwModified = (Get-Item -LiteralPath $rwFile).LastWriteTimeUtc
        $path = Join-Path $TestDrive 'memory.ctx'
        $null = Invoke-CheckpointKill $program.Id $path
        $areas = @((Get-CrContext -Path $path -ErrorAction Stop).Processes[0].Map.Areas)
        $result = Invoke-TestRestart $path
        $id = $result.ProcessIds[0]
        $unlinkedBefore = ConvertFrom-KeyValueLine (@(Get-ProgramLines $program) -match '^UNLINKED ')[0]
        $after = Request-Report $program -Id $id -Word MEM
        $unlinkedAfter = ConvertFrom-KeyValueLine (@(Get-ProgramLines $program) -match '^UNLINKED ')[-1]
    }
    AfterAll { Stop-RestartedProcess $result.ProcessIds }

    It 'had set every state it reports before the checkpoint' {
        foreach ($name in 'dontfork', 'wipeonfork', 'dontdump', 'hugepage', 'nohugepage', 'mergeable', 'sequential', 'random', 'locked', 'guard', 'privsees', 'roread') {
            $before[$name] | Should -Be '1' -Because "$name before the checkpoint"
        }
        $before.fork | Should -Be '3'
        $before.rwprot | Should -Be 'ok'
        $before.roprot | Should -Be 'EACCES'
    }

    It 'saves the flags and guard pages in the context' {
        foreach ($flag in 'dc', 'wf', 'dd', 'hg', 'nh', 'mg', 'sr', 'rr', 'lo') {
            @($areas | Where-Object { $_.VmFlags -contains $flag }).Count | Should -BeGreaterThan 0 -Because "an area has '$flag'"
        }
        @($areas | Where-Object { $_.GuardPages }).Count | Should -Be 1
    }

    It 'gives every area its madvise flag and lock back, as the program''s own smaps shows' -ForEach @(
        'dontfork', 'wipeonfork', 'dontdump', 'hugepage', 'nohugepage', 'mergeable', 'sequential', 'random', 'locked' | ForEach-Object { @{ Name = $_ } }
    ) {
        $after[$Name] | Should -Be '1'
    }

    It 'keeps the guard page a guard page, the data around it intact, and DONTFORK/WIPEONFORK working in a child' {
        $after.guard | Should -Be '1'
        $after.guardflag | Should -Be '0'
        $after.bad | Should -Be '0'
        $after.fork | Should -Be '3'
    }

    It 'maps files with the access mode they were opened with: mprotect to write works on the O_RDWR one, EACCES on the O_RDONLY and the sealed ones' {
        $after.rwprot | Should -Be 'ok'
        $after.roprot | Should -Be 'EACCES'
        $after.sealedprot | Should -Be 'EACCES'
        $after.sealedmw | Should -Be '0'
    }

    It 'gives the memfds back their mode, flags, seals, both open descriptions and the private mapping that follows the shared one' {
        foreach ($name in 'memfdmode', 'memfdfl', 'memfdfd', 'memfdseals', 'memfdpos', 'ropos', 'rofl', 'roread', 'rowrite', 'privsees', 'sealedseals') {
            $after[$name] | Should -Be $before[$name] -Because $name
        }
    }

    It 'keeps an unlinked file one file: its private mapping sees writes through a descriptor, its other descriptor sees writes through its shared mapping' {
        $unlinkedBefore.private | Should -Be '1'
        $unlinkedBefore.ro | Should -Be '1'
        foreach ($name in 'private', 'ro', 'ropos', 'rwpos') { $unlinkedAfter[$name] | Should -Be $unlinkedBefore[$name] -Because $name }
    }

    It 'does not write to the file behind a shared mapping (its modification time is unchanged)' {
        (Get-Item -LiteralPath $rwFile).LastWriteTimeUtc | Should -Be $rwModified
    }
}

Describe 'An area no restart can make again (MAP_DROPPABLE) is refused at checkpoint, naming it' {
    BeforeAll {
        $program = Start-TestProgram memory_exact droppable
        $address = (@(Get-ProgramLines $program) -match '^READY ')[0].Split(' ')[2]
        $path = Join-Path $TestDrive 'droppable.ctx'
        $errors = @()
        $results = @(Invoke-CrCheckpoint -Id $program.Id -Path $path -Kill -ErrorAction SilentlyContinue -ErrorVariable errors)
    }
    AfterAll { Stop-TestProgram $program }

    It 'fails with Unsupported, naming the process, the area and what it is, and writes no context file' {
        $results | Should -BeNullOrEmpty
        $errors[0].FullyQualifiedErrorId | Should -BeLike 'Checkpoint.Unsupported,*'
        $errors[0].Exception.Message | Should -Match "process $($program.Id)\b"
        $errors[0].Exception.Message | Should -Match "0x$address-"
        $errors[0].Exception.Message | Should -Match 'droppable'
        Test-Path $path | Should -BeFalse
    }

    It 'leaves the program running and working, although -Kill was asked for' {
        Test-ProcessUntouched $program.Id | Should -BeTrue
        $skip = @(Get-ProgramLines $program).Count
        Send-Signal $program.Id USR1
        Wait-ProgramLine $program '^ALIVE 1$' -Skip $skip -Id $program.Id | Should -Be 'ALIVE 1'
    }

    It 'is foreseen by Get-CrCheckpointable with the same reason' {
        $report = Get-CrCheckpointable -Id $program.Id
        $report.Checkpointable | Should -BeFalse
        "$($report.Failure)" | Should -Be 'Unsupported'
        $report.Reason | Should -Match 'droppable'
    }
}
