// The engine under test runs on Linux only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
