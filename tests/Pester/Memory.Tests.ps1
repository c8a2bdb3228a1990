# The memory a checkpoint saves is the memory of the process: region by region, compared by hash with the live
# process. The checkpoint is taken with -Stop, so the process stops right as it was checkpointed (no instruction
# runs in between: see "-Stop stops the process exactly as it was checkpointed" in AfterCheckpoint.Tests.ps1)
# and its memory cannot change before the comparison. The memhog details are checked on a process stopped
# before the checkpoint, which a default -Run leaves stopped.

BeforeDiscovery {
    $programs = @(
        @{ Label = 'memhog (heap, 48 MiB mmap with holes, private file mapping, PROT_NONE, read-only, shared anonymous)'; Kind = 'memhog' }
        @{ Label = 'counter (checks its own memory in a loop)'; Kind = 'counter' }
        @{ Label = 'python3'; Kind = 'python3' }
        @{ Label = 'sleep'; Kind = 'sleep' }
        @{ Label = 'bash (a builtin-only loop)'; Kind = 'bash' }
    )
}

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"

    function Start-Example([string] $Kind, [string] $DataFile) {
        switch ($Kind) {
            # 48 MiB with a hole every 7 pages: some 1750 runs, more than the engine copies in one
            # process_vm_readv (1024 iovecs) and more bytes than its 8 MiB buffer.
            'memhog' { Start-TestProgram memhog 48, $DataFile }
            'counter' { Start-TestProgram counter }
            default { Start-RealProgram $Kind }
        }
    }
}

Describe 'Saved memory matches the live process, region by region: <Label>' -ForEach $programs {
    BeforeAll {
        $dataFile = Join-Path $TestDrive 'data.bin'
        [System.IO.File]::WriteAllBytes($dataFile, [byte[]](0..65535 | ForEach-Object { $_ % 251 }))
        $program = Start-Example $Kind $dataFile
        $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive "$Kind.ctx") -Stop -ErrorAction Stop
        $context = Get-CrContext -Path $result.Path -Verify -ErrorAction Stop
        $image = $context.Processes[0]
    }
    AfterAll {
        Stop-TestProgram $program
    }

    It 'leaves the process stopped and no longer traced, with a context file that verifies' {
        # The stop takes effect when the released process next runs (in the kernel): wait for it.
        Wait-Until { (Get-ProcessState $program.Id) -eq 'T' } -TimeoutSec 5 | Should -BeTrue
        (Get-ProcStatus $program.Id)['TracerPid'] | Should -Be '0'
        $context.Verified | Should -BeTrue
        $context.Processes | Should -HaveCount 1
        $image.Pid | Should -Be $program.Id
    }

    It 'records exactly the regions of /proc/PID/maps (and leaves no mapping of its own behind)' {
        $live = Get-ProcMaps $program.Id | ForEach-Object { '{0:x}-{1:x} {2} {3}' -f $_.Start, $_.End, $_.Protection, $_.Path }
        $saved = $image.Regions | ForEach-Object { '{0:x}-{1:x} {2} {3}' -f $_.Start, $_.End, $_.Protection, $_.Path }
        $saved | Should -Be $live
    }

    It 'holds for every region the same bytes as the process memory (XxHash3 of the saved runs)' {
        $withPages = @($image.Regions | Where-Object SavedPages -GT 0)
        $withPages.Count | Should -BeGreaterThan 3
        Compare-SavedMemory -Id $program.Id -ProcessImage $image -ContextPath $result.Path | Should -BeNullOrEmpty
    }

    It 'holds the bytes of every shared anonymous mapping, saved once as a shared memory object' {
        Compare-SharedMemory -Id $program.Id -Context $context -ProcessImage $image | Should -BeNullOrEmpty
    }

    It 'counts saved pages consistently: runs, SavedPages, SavedBytes and the MemoryBytes of the result' {
        foreach ($region in $image.Regions) {
            $runPages = 0
            foreach ($run in $region.SavedRuns) {
                $run[0] | Should -BeGreaterOrEqual 0
                ($run[0] + $run[1]) * 4096 | Should -BeLessOrEqual ($region.End - $region.Start)
                $runPages += $run[1]
            }
            $runPages | Should -Be $region.SavedPages -Because "the runs of $($region.Range) add up to its SavedPages"
            $region.SavedBytes | Should -Be ($region.SavedPages * 4096)
            if ($region.SavedPages -gt 0) { $region.DataOffset % 4096 | Should -Be 0 -Because 'page data is aligned in a context file' }
        }
        ($image.Regions | Measure-Object -Property SavedBytes -Sum).Sum | Should -Be $result.MemoryBytes
    }

    It 'saves every private page the process has (pagemap) in anonymous, heap, stack and private file regions' {
        Get-UnsavedPrivatePages -Id $program.Id -ProcessImage $image | Should -BeNullOrEmpty
    }

    It 'saves no page of the vdso, vvar, vsyscall or of shared file mappings' {
        $image.Regions | Where-Object { "$($_.Kind)" -in @('Vdso', 'Vvar', 'VvarVclock', 'Vsyscall', 'SharedFile') } |
            Where-Object SavedPages -NE 0 | ForEach-Object Range | Should -BeNullOrEmpty
    }

    It 'goes on running once continued' {
        Send-Signal $program.Id CONT
        Wait-Until { (Get-ProcessState $program.Id) -in @('R', 'S') } -TimeoutSec 5 | Should -BeTrue
    }
}

Describe 'Each kind of memory is saved as it should be (memhog)' {
    BeforeAll {
        $dataFile = Join-Path $TestDrive 'data.bin'
        [System.IO.File]::WriteAllBytes($dataFile, [byte[]](0..65535 | ForEach-Object { $_ % 253 }))
        $program = Start-TestProgram memhog 4, $dataFile
        Send-Signal $program.Id STOP
        $null = Wait-Until { (Get-ProcessState $program.Id) -eq 'T' } -TimeoutSec 5
        $regions = @{}
        foreach ($line in Get-TestProgramOutput $program | Where-Object { $_ -like 'REGION *' }) {
            $f = $line.Split(' ')
            $regions[$f[1]] = [pscustomobject]@{ Address = ConvertFrom-Hex $f[2]; Bytes = [long]$f[3]; Written = [long]$f[4] }
        }
        $result = Invoke-CrCheckpoint -Id $program.Id -Path (Join-Path $TestDrive 'memhog.ctx') -ErrorAction Stop
        $context = Get-CrContext -Path $result.Path -Verify -ErrorAction Stop
        $image = $context.Processes[0]
        function Get-RegionAt([uint64] $Address) { $image.Regions | Where-Object { $_.Start -le $Address -and $Address -lt $_.End } }
    }
    AfterAll {
        Stop-TestProgram $program
    }

    It 'saves the written pages of an anonymous mapping and skips the pages never touched' {
        $anon = $regions['anon']
        $region = Get-RegionAt $anon.Address
        "$($region.Kind)" | Should -Be 'Anonymous'
        $firstPage = [long](($anon.Address - $region.Start) / 4096)
        $expected = @(0..($anon.Bytes / 4096 - 1) | Where-Object { $_ % 7 -ne 6 } | ForEach-Object { $_ + $firstPage })
        $saved = @(Expand-SavedRuns $region.SavedRuns)
        $saved | Should -Be $expected
        $region.SavedPages | Should -Be $anon.Written
    }

    It 'saves only the written (copied) pages of a private file mapping, not those read from the file' {
        $region = Get-RegionAt $regions['filepriv'].Address
        "$($region.Kind)" | Should -Be 'PrivateFile'
        $region.Path | Should -Be $dataFile
        ($region.SavedRuns | ForEach-Object { "$($_[0])+$($_[1])" }) -join ' ' | Should -Be '1+1 3+1'
    }

    It 'saves a PROT_NONE page that holds data' {
        $region = Get-RegionAt $regions['none'].Address
        $region.Protection | Should -Be '---p'
        $region.SavedPages | Should -Be 1
    }

    It 'saves a read-only anonymous region that holds data' {
        $region = Get-RegionAt $regions['rdonly'].Address
        $region.Protection | Should -Be 'r--p'
        $region.SavedPages | Should -Be 2
    }

    It 'saves a shared anonymous mapping as a SharedAnonymous area whose object holds its 16 written pages' {
        $region = Get-RegionAt $regions['shared'].Address
        "$($region.Kind)" | Should -Be 'SharedAnonymous'
        $area = $image.Map.Areas | Where-Object Start -EQ $region.Start
        if ($area.SavedFileKey) {
            $content = @($context.FileContents | Where-Object { $_.Record.Key -eq $area.SavedFileKey })
            $content | Should -HaveCount 1
            $content[0].Record.Reason | Should -Be 'shmem'
            $content[0].DataLength | Should -Be 65536
        }
        else {
            $region.SavedPages | Should -Be 16
        }
        Compare-SharedMemory -Id $program.Id -Context $context -ProcessImage $image | Should -BeNullOrEmpty
    }

    It 'saves the memory grown with sbrk as part of the heap' {
        $brk = $regions['brk']
        $region = Get-RegionAt $brk.Address
        "$($region.Kind)" | Should -Be 'Heap'
        $first = [long](($brk.Address - $region.Start) / 4096)
        $saved = [System.Collections.Generic.HashSet[long]]::new([long[]](Expand-SavedRuns $region.SavedRuns))
        @($first..($first + 15) | Where-Object { -not $saved.Contains($_) }) | Should -BeNullOrEmpty
    }

    It 'records the break (brk) and the stack start that /proc/PID/stat and the program show' {
        $stat = [System.IO.File]::ReadAllText("/proc/$($program.Id)/stat")
        $f = $stat.Substring($stat.LastIndexOf(')') + 2).Split(' ')
        # Fields 47 (start_brk) and 28 (startstack), counted from 1 with pid first: index = field - 3 here.
        $image.Process.MemoryLayout.StartBrk | Should -Be ([uint64]$f[44])
        $image.Process.MemoryLayout.StartStack | Should -Be ([uint64]$f[25])
        $image.Process.MemoryLayout.Brk | Should -Be ($regions['brk'].Address + 65536) -Because 'the program moved the break up by 64 KiB from there'
    }
}
