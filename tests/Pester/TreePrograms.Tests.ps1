# Real programs as trees: a shell pipeline checkpointed mid-stream, a bash script with loops, subshells, command
# substitutions and pipelines, and `make -j2` building a C project, each checkpointed with -Kill, restarted, and
# judged by what it produced in the end.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"
    Import-Module "$PSScriptRoot/RestartHelpers.psm1"
    Import-Module "$PSScriptRoot/TreeHelpers.psm1"

    $script:Scripts = Join-Path (Get-RepositoryRoot) 'tests/programs/tree-scripts'

    # The processes of a tree, with their names and states.
    function Get-TreeProcesses([int] $Id) { @(Get-ProcessTreeIds $Id | ForEach-Object { Get-ProcStat $_ } | Where-Object { $_ }) }

    # A C project of COUNT modules (m1.c ... each FUNCTIONS small functions, so that cc1 takes a few tenths of a
    # second on each) and main.c printing fK(K) for every module, with a Makefile; in Directory.
    function New-CProject([string] $Directory, [int] $Count, [int] $Functions) {
        $null = New-Item -ItemType Directory -Force $Directory
        for ($k = 1; $k -le $Count; $k++) {
            $text = [System.Text.StringBuilder]::new()
            for ($i = 0; $i -lt $Functions; $i++) {
                $null = $text.AppendLine("static int g$i(int x) { int s = x; for (int k = 0; k < $($i % 7 + 3); k++) s = s * 31 + k * $($i + $k) + (s >> 3); return s ^ $i; }")
            }
            $null = $text.AppendLine("int f$k(int x) { int s = 0;")
            for ($i = 0; $i -lt $Functions; $i++) { $null = $text.AppendLine("  s += g$i(x + $i);") }
            $null = $text.AppendLine('  return s; }')
            [System.IO.File]::WriteAllText((Join-Path $Directory "m$k.c"), $text.ToString())
        }
        $main = [System.Text.StringBuilder]::new()
        $null = $main.AppendLine('#include <stdio.h>')
        for ($k = 1; $k -le $Count; $k++) { $null = $main.AppendLine("int f$k(int x);") }
        $null = $main.AppendLine('int main(void) {')
        for ($k = 1; $k -le $Count; $k++) { $null = $main.AppendLine("  printf(""f$k=%d\n"", f$k($k));") }
        $null = $main.AppendLine('  return 0; }')
        [System.IO.File]::WriteAllText((Join-Path $Directory 'main.c'), $main.ToString())
        $objects = (@(1..$Count | ForEach-Object { "m$_.o" }) + 'main.o') -join ' '
        [System.IO.File]::WriteAllText((Join-Path $Directory 'Makefile'),
            "CC = gcc`nCFLAGS = -O0`nOBJS = $objects`n`nprog: `$(OBJS)`n`t`$(CC) -o `$@ `$(OBJS)`n`n%.o: %.c`n`t`$(CC) `$(CFLAGS) -c -o `$@ `$<`n")
    }
}

AfterAll {
    Stop-AllTreeProcesses
}

Describe 'A shell pipeline (sh -c ''producer | grep | cat > records.txt'') checkpointed mid-stream with -Kill and restarted' {
    BeforeAll {
        $records = 3000
        $program = Start-TreeProgram -FilePath sh -ArgumentList '-c', "bash '$Scripts/producer.sh' $records | grep rec | cat > records.txt" -WaitFor {
            param($id) @(Get-ProcessTreeIds $id).Count -ge 4
        }
        $out = Join-Path $program.Directory 'records.txt'
        $null = Wait-Until { (Test-Path $out) -and (Get-Item $out).Length -ge 12KB } -TimeoutSec 20 -Because 'the pipeline to have written 12 KiB'
        $tree = Get-TreeProcesses $program.Id
        $path = Join-Path $TestDrive 'pipeline.ctx'
        $checkpoint = Invoke-TreeCheckpoint $program.Id $path
        $atCheckpoint = (Get-Item $out).Length
        $context = Get-CrContext -Path $path -ErrorAction Stop
        $result = Invoke-TreeRestart $path
        $exit = Wait-RestartedExit $result -TimeoutSec 30
        $lines = Get-FileLines $out
    }
    AfterAll {
        Stop-ProcessTree $program.Id, @($result.ProcessIds)
        Stop-TreeProgram $program
    }

    It 'checkpointed all four processes (sh, bash, grep, cat) mid-stream, with the two pipes between them' {
        @($checkpoint.ProcessIds | Sort-Object) | Should -Be @($tree.Id | Sort-Object)
        @($context.Processes.Name | Sort-Object) | Should -Be @('bash', 'cat', 'grep', 'sh')
        # The producer paces itself on a FIFO, whose bytes in flight are saved too: count the pipes alone.
        $pipeInodes = @($context.Processes.Files.Descriptors | Where-Object Kind -eq 'Pipe' | ForEach-Object Inode)
        @($context.Pipes | Where-Object { $_.Record.Inode -in $pipeInodes }).Count | Should -Be 2
        $total = (1..$records | ForEach-Object { "rec $_ payload-$($_ * 7919 % 10007)`n".Length } | Measure-Object -Sum).Sum
        $atCheckpoint | Should -BeLessThan $total -Because 'the consumer had not written everything yet'
    }

    It 'restarted them as the same tree: sh the parent of the three' {
        @($result.ProcessIds | Sort-Object) | Should -Be @($tree.Id | Sort-Object)
        foreach ($p in $context.Processes | Where-Object Pid -ne $program.Id) { $p.Process.ParentPid | Should -Be $program.Id }
    }

    It 'ran to the end: sh exited 0' {
        $exit.ExitCode | Should -Be 0
        $exit.Signal | Should -BeNullOrEmpty
    }

    It 'wrote every record exactly once, in order, intact' {
        $numbers = Get-LineNumbers $lines 'rec'
        $numbers.Count | Should -Be $lines.Count -Because 'every line is a record'
        Get-SequenceProblem $numbers -First 1 | Should -BeNullOrEmpty
        $numbers.Count | Should -Be $records
        $broken = @($lines | Where-Object { $_ -notmatch '^rec (\d+) payload-(\d+)$' -or [long]$Matches[2] -ne ([long]$Matches[1] * 7919 % 10007) })
        $broken | Should -BeNullOrEmpty
        (Get-Item $out).Length | Should -Be ([System.Text.Encoding]::ASCII.GetByteCount(($lines -join "`n") + "`n"))
    }
}

Describe 'A bash script with loops, subshells, command substitutions and pipelines, checkpointed with -Kill and restarted (loops.sh)' {
    BeforeAll {
        $rounds = 40
        $program = Start-TreeProgram -FilePath bash -ArgumentList "$Scripts/loops.sh", $rounds -WaitFor '^round 8 '
        # A moment when its only child is the subshell that waits 100 ms, just started: the other children live a
        # millisecond or two, and one that ends while the checkpoint lists the tree makes it fail (see Tree.Tests.ps1).
        $null = Wait-Until {
            $t = Get-TreeProcesses $program.Id
            $t.Count -eq 2 -and $t[1].Name -eq 'bash' -and $t[1].State -eq 'S' -and $t[1].ParentId -eq $program.Id -and (Get-ProcAgeMs $t[1].Id) -le 30
        } -TimeoutSec 15 -Because 'bash waiting for its subshell'
        $path = Join-Path $TestDrive 'loops.ctx'
        $checkpoint = Invoke-TreeCheckpoint $program.Id $path
        $before = @(Get-ProgramLines $program).Count
        $result = Invoke-TreeRestart $path
        $exit = Wait-RestartedExit $result -TimeoutSec 30
        $lines = @(Get-ProgramLines $program)
    }
    AfterAll {
        Stop-ProcessTree $program.Id, @($result.ProcessIds)
        Stop-TreeProgram $program
    }

    It 'checkpointed the script and its subshell' {
        $checkpoint.ProcessIds.Count | Should -BeGreaterOrEqual 2
        $checkpoint.ProcessIds | Should -Contain $program.Id
        $before | Should -BeLessThan $rounds
    }

    It 'ran to the end after the restart and exited 0' {
        $exit.ExitCode | Should -Be 0
        $lines[-1] | Should -Be "DONE rounds=$rounds total=$((1..$rounds | ForEach-Object { 4 * $_ + 10 } | Measure-Object -Sum).Sum)"
    }

    It 'printed every round once, in order, with the right values from its subshells, substitutions and pipelines' {
        $roundLines = @($lines | Where-Object { $_ -like 'round *' })
        Get-SequenceProblem (Get-LineNumbers $roundLines 'round') -First 1 | Should -BeNullOrEmpty
        $roundLines.Count | Should -Be $rounds
        $total = 0
        foreach ($line in $roundLines) {
            $i = [int]$line.Split(' ')[1]
            $total += 4 * $i + 10
            $line | Should -Be "round $i sq=$($i * $i) inner=$(4 * $i + 10) code=$($i % 7) total=$total"
        }
        @($lines | Where-Object { $_ -notlike 'round *' -and $_ -notlike 'DONE *' }) | Should -BeNullOrEmpty
    }

    It 'had its subshells append every round to rounds.log once, in order' {
        $log = Get-FileLines (Join-Path $program.Directory 'rounds.log')
        Get-SequenceProblem (Get-LineNumbers $log 'sub') -First 1 | Should -BeNullOrEmpty
        $log.Count | Should -Be $rounds
    }
}

Describe 'make -j2 building a C project, checkpointed mid-build with -Kill, finishes correctly after the restart' {
    BeforeAll {
        $modules = 12
        $project = Join-Path $TestDrive 'project'
        $reference = Join-Path $TestDrive 'reference'
        New-CProject $project $modules 800
        Copy-Item -Recurse $project $reference
        $program = Start-TreeProgram -FilePath make -ArgumentList '-j2', '-C', $project -WaitFor { param($id) (Get-ProcStat $id).Name -eq 'make' }
        $objects = { @(Get-ChildItem $project -Filter 'm*.o').Count }
        # Some objects built, some not; and a moment when every compiler driver (gcc) is waiting for its cc1 and no
        # cc1 is near its end: a process that ends while the checkpoint lists and freezes the tree makes it fail
        # (see Tree.Tests.ps1). How long a cc1 lives is learnt from those that came and went before.
        $lifetimes = [System.Collections.Generic.List[double]]::new()
        $seen = @{}
        $null = Wait-Until {
            $built = & $objects
            if ($built -ge $modules -or (Test-ProcessExited $program)) { throw "the build ended before it was checkpointed ($built objects; cc1 lifetimes seen: $($lifetimes -join ', ') ms)`n$(Get-TestProgramReport $program)" }
            $t = Get-TreeProcesses $program.Id
            $cc1 = @($t | Where-Object Name -eq 'cc1')
            $ages = @{}
            foreach ($c in $cc1) { $age = Get-ProcAgeMs $c.Id; if ($null -ne $age) { $ages[$c.Id] = $age; $seen[$c.Id] = $age } }
            foreach ($id in @($seen.Keys)) { if ($id -notin $cc1.Id) { $lifetimes.Add($seen[$id]); $seen.Remove($id) } }
            if ($built -lt 3 -or $lifetimes.Count -lt 2 -or $cc1.Count -eq 0) { return $false }
            $limit = ($lifetimes | Measure-Object -Minimum).Minimum - 100
            $gcc = @($t | Where-Object Name -eq 'gcc')
            $names = @($t.Name)
            $gcc.Count -eq $cc1.Count -and @($cc1 | Where-Object { $_.ParentId -notin $gcc.Id }).Count -eq 0 -and
                @($ages.Values | Where-Object { $_ -gt $limit }).Count -eq 0 -and
                ($names -notcontains 'as') -and ($names -notcontains 'collect2') -and ($names -notcontains 'ld')
        } -TimeoutSec 30 -Because 'make to be mid-build, compiling'
        $tree = Get-TreeProcesses $program.Id
        $path = Join-Path $TestDrive 'make.ctx'
        $checkpoint = Invoke-TreeCheckpoint $program.Id $path
        $builtAtCheckpoint = & $objects
        $result = Invoke-TreeRestart $path
        $exit = Wait-RestartedExit $result -TimeoutSec 60
        # The same project built without interruption, for comparison.
        $referenceOutput = & make -j2 -s -C $reference 2>&1
        $referenceCode = $LASTEXITCODE
    }
    AfterAll {
        Stop-ProcessTree $program.Id, @($result.ProcessIds)
        Stop-TreeProgram $program
    }

    It 'checkpointed make with its compilers running (make, gcc, cc1), some objects built and some not' {
        $checkpoint.ProcessIds | Should -Contain $program.Id
        @($checkpoint.ProcessIds).Count | Should -BeGreaterOrEqual 3
        @($tree.Name) | Should -Contain 'cc1'
        @($tree.Name) | Should -Contain 'gcc'
        $builtAtCheckpoint | Should -BeGreaterOrEqual 3
        $builtAtCheckpoint | Should -BeLessThan $modules
    }

    It 'lets make finish after the restart with exit code 0' {
        $referenceCode | Should -Be 0 -Because "the reference build works: $referenceOutput"
        $exit.ExitCode | Should -Be 0 -Because (Get-TestProgramReport $program)
    }

    It 'built every object exactly as an uninterrupted build does' {
        foreach ($name in @(1..$modules | ForEach-Object { "m$_.o" }) + 'main.o') {
            Test-Path (Join-Path $project $name) | Should -BeTrue -Because "$name was built"
            Get-FileChecksum (Join-Path $project $name) | Should -Be (Get-FileChecksum (Join-Path $reference $name)) -Because "$name is what gcc makes of its source"
        }
    }

    It 'linked a program that runs and prints what the uninterrupted build prints' {
        $output = & (Join-Path $project 'prog')
        $LASTEXITCODE | Should -Be 0
        $output | Should -Be (& (Join-Path $reference 'prog'))
        @($output).Count | Should -Be $modules
    }

    It 'left the project up to date (make -q)' {
        & make -q -C $project 2>&1 | Out-Null
        $LASTEXITCODE | Should -Be 0
    }
}
