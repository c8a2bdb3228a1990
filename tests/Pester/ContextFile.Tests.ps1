# Get-CrContext refuses damaged context files: truncated anywhere, a bit flipped in a header, in metadata or
# (with -Verify) in page data, bytes after the end, files that are not context files at all. Each refusal is a
# non-terminating error "Context.<Reason>" of category InvalidData whose target is the path.

BeforeAll {
    Import-Module "$PSScriptRoot/../../CrCheckpoint.psd1"
    Import-Module "$PSScriptRoot/TestHelpers.psm1"

    $script:Suffix = ',CrCheckpoint.PowerShell.GetCrContextCommand'

    $program = Start-TestProgram counter
    $good = Join-Path $TestDrive 'good.ctx'
    $null = Invoke-CrCheckpoint -Id $program.Id -Path $good -ErrorAction Stop
    Stop-TestProgram $program
    $length = (Get-Item $good).Length
    $image = (Get-CrContext -Path $good -Verify -ErrorAction Stop).Processes[0]
    $pages = $image.Regions | Where-Object SavedPages -GT 4 | Select-Object -First 1
    # The executable's path is in the metadata (JSON) of the Process record, the first record after the Image.
    $bytes = [System.IO.File]::ReadAllBytes($good)
    $text = [System.Text.Encoding]::Latin1.GetString($bytes)
    $executableAt = $text.IndexOf($image.Executable)
    $imageRecordEnd = $text.IndexOf([char]0x89 + 'REC', 64 + 1)

    # Reads a file with Get-CrContext; returns its output and its errors.
    function Read-Context([string] $Path, [switch] $Verify) {
        $errors = $null
        $output = @(Get-CrContext -LiteralPath $Path -Verify:$Verify -ErrorAction SilentlyContinue -ErrorVariable errors)
        [pscustomobject]@{ Output = $output; Errors = @($errors) }
    }

    function New-Damaged([string] $Name, [scriptblock] $Damage) {
        $path = Join-Path $TestDrive $Name
        Copy-Item -LiteralPath $good -Destination $path -Force
        & $Damage $path
        $path
    }

    function Assert-Refused($Read, [string] $Reason, [string] $Path) {
        $Read.Output | Should -BeNullOrEmpty
        $Read.Errors | Should -HaveCount 1
        $Read.Errors[0].FullyQualifiedErrorId | Should -Be "Context.$Reason$Suffix"
        "$($Read.Errors[0].CategoryInfo.Category)" | Should -Be 'InvalidData'
        $Read.Errors[0].TargetObject | Should -Be $Path
        $Read.Errors[0].Exception.Message | Should -BeLike "*$Path*"
    }
}

Describe 'The intact context file' {
    It 'reads with and without -Verify' {
        (Read-Context $good -Verify).Output[0].Verified | Should -BeTrue
        (Read-Context $good).Output[0].Verified | Should -BeFalse
        (Read-Context $good).Output[0].Processes[0].Name | Should -Be 'counter'
        $executableAt | Should -BeGreaterThan $imageRecordEnd -Because 'the test damages the Process record there'
        $pages | Should -Not -BeNullOrEmpty
    }
}

Describe 'A truncated context file is refused as Truncated, with or without -Verify: cut at <Where>' -ForEach @(
    @{ Where = 'byte 0 (empty)'; At = { 0 } }
    @{ Where = 'byte 5 (inside the magic)'; At = { 5 } }
    @{ Where = 'byte 40 (inside the file header)'; At = { 40 } }
    @{ Where = 'byte 64 (after the file header, before any record)'; At = { 64 } }
    @{ Where = 'byte 100 (inside the first record header)'; At = { 100 } }
    @{ Where = 'the middle of the Process record metadata'; At = { $executableAt + 3 } }
    @{ Where = 'the middle of page data'; At = { $pages.DataOffset + 3 * 4096 + 17 } }
    @{ Where = 'the end of page data (its trailer missing)'; At = { $pages.DataOffset + $pages.SavedBytes } }
    @{ Where = '8 bytes before the end (inside the End record trailer)'; At = { $length - 8 } }
    @{ Where = '1 byte before the end'; At = { $length - 1 } }
) {
    BeforeAll {
        $cut = & $At
        $path = New-Damaged "cut-$cut.ctx" { param($p) Set-FileLength $p $cut }
    }

    It 'with -Verify' {
        Assert-Refused (Read-Context $path -Verify) Truncated $path
    }

    It 'without -Verify' {
        Assert-Refused (Read-Context $path) Truncated $path
    }
}

Describe 'A bit flipped in <Where>' -ForEach @(
    @{ Where = 'the magic (byte 0)'; At = { 0 }; Reason = 'Foreign'; Unverified = 'Foreign' }
    @{ Where = 'the file header (data alignment field)'; At = { 21 }; Reason = 'Corrupt'; Unverified = 'Corrupt' }
    @{ Where = 'the file header checksum'; At = { 60 }; Reason = 'Corrupt'; Unverified = 'Corrupt' }
    @{ Where = 'the first record header (its kind)'; At = { 64 + 4 }; Reason = 'Corrupt'; Unverified = 'Corrupt' }
    @{ Where = 'the metadata of the Process record'; At = { $executableAt + 2 }; Reason = 'Corrupt'; Unverified = 'Corrupt' }
    @{ Where = 'page data'; At = { $pages.DataOffset + 2 * 4096 + 123 }; Reason = 'Corrupt'; Unverified = $null }
    @{ Where = 'the checksum after page data'; At = { $pages.DataOffset + $pages.SavedBytes + 3 }; Reason = 'Corrupt'; Unverified = $null }
    @{ Where = 'the End record'; At = { $length - 20 }; Reason = 'Corrupt'; Unverified = 'Corrupt' }
) {
    BeforeAll {
        $offset = & $At
        $path = New-Damaged "flip-$offset.ctx" { param($p) Invoke-FlipBit $p $offset -Bit 3 }
    }

    It 'is refused by Get-CrContext -Verify as <Reason>' {
        Assert-Refused (Read-Context $path -Verify) $Reason $path
    }

    It 'without -Verify: <Unverified> (page data is skipped over unread, so a flip there goes unseen)' {
        $read = Read-Context $path
        if ($Unverified) {
            Assert-Refused $read $Unverified $path
        }
        else {
            $read.Errors | Should -BeNullOrEmpty
            $read.Output[0].Verified | Should -BeFalse
            $read.Output[0].Processes[0].Name | Should -Be 'counter'
        }
    }
}

Describe 'Other files that are not intact context files' {
    It 'bytes after the End record: Corrupt' {
        $path = New-Damaged 'appended.ctx' { param($p) [System.IO.File]::AppendAllText($p, 'x') }
        Assert-Refused (Read-Context $path -Verify) Corrupt $path
        Assert-Refused (Read-Context $path) Corrupt $path
    }

    It 'a newer major version (with a correct header checksum): UnsupportedVersion, saying to upgrade' {
        $path = New-Damaged 'v2.ctx' {
            param($p)
            $b = [System.IO.File]::ReadAllBytes($p)
            $b[8] = 2; $b[9] = 0
            $header = [byte[]]::new(56)
            [System.Array]::Copy($b, $header, 56)
            $sum = [System.BitConverter]::GetBytes([System.IO.Hashing.XxHash3]::HashToUInt64($header))
            [System.Array]::Copy($sum, 0, $b, 56, 8)
            [System.IO.File]::WriteAllBytes($p, $b)
        }
        $read = Read-Context $path -Verify
        Assert-Refused $read UnsupportedVersion $path
        $read.Errors[0].Exception.Message | Should -Match 'newer'
    }

    It 'a program (ELF): Foreign, saying what it looks like' {
        $path = Join-Path $TestDrive 'sleep'
        Copy-Item (Get-Command sleep -CommandType Application | Select-Object -First 1).Source $path
        $read = Read-Context $path -Verify
        Assert-Refused $read Foreign $path
        $read.Errors[0].Exception.Message | Should -Match 'ELF'
    }

    It 'a text file: Foreign' {
        $path = Join-Path $TestDrive 'notes.txt'
        Set-Content -Path $path -Value 'hello, this is not a checkpoint'
        Assert-Refused (Read-Context $path -Verify) Foreign $path
    }

    It 'a file that does not exist: NotFound (ObjectNotFound)' {
        $path = Join-Path $TestDrive 'missing.ctx'
        $read = Read-Context $path
        $read.Errors | Should -HaveCount 1
        $read.Errors[0].FullyQualifiedErrorId | Should -Be "Context.NotFound$Suffix"
        "$($read.Errors[0].CategoryInfo.Category)" | Should -Be 'ObjectNotFound'
    }

    It 'are each refused on their own: the good files among them are still read' {
        $bad = New-Damaged 'bad-among-good.ctx' { param($p) Set-FileLength $p 1000 }
        $errors = $null
        $output = @(Get-CrContext -LiteralPath $good, $bad, $good -Verify -ErrorAction SilentlyContinue -ErrorVariable errors)
        $output | Should -HaveCount 2
        $errors | Should -HaveCount 1
        $errors[0].TargetObject | Should -Be $bad
    }
}
