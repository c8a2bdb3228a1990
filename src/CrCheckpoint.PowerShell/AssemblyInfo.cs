// The engine runs on Linux only; so do the cmdlets over it.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
