global using System.Runtime.InteropServices;
// Record metadata types are used throughout the engine: the schema is one namespace, one folder.
global using CrCheckpoint.Engine.Schema;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
