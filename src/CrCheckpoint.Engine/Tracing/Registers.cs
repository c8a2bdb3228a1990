namespace CrCheckpoint.Engine.Tracing;

/// <summary>x86-64 struct user_regs_struct, as PTRACE_GETREGS returns it (fs_base and gs_base included).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Registers
{
    public ulong R15, R14, R13, R12, Rbp, Rbx, R11, R10, R9, R8, Rax, Rcx, Rdx, Rsi, Rdi, OrigRax, Rip,
        Cs, Eflags, Rsp, Ss, FsBase, GsBase, Ds, Es, Fs, Gs;

    public ulong[] ToArray()
    {
        var values = new ulong[27];
        MemoryMarshal.Write(MemoryMarshal.AsBytes(values.AsSpan()), in this);
        return values;
    }

    public static Registers FromArray(ulong[] values)
    {
        if (values.Length != 27) throw new ArgumentException($"expected 27 register values, found {values.Length}");
        return MemoryMarshal.Read<Registers>(MemoryMarshal.AsBytes(values.AsSpan()));
    }

    /// <summary>
    /// The kernel's "restart me" return codes (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND,
    /// ERESTART_RESTARTBLOCK): a thread stopped with one of these in rax was inside a system call.
    /// </summary>
    public readonly bool InInterruptedSyscall =>
        (long)OrigRax >= 0 && (long)Rax is -512 or -513 or -514 or -516;
}
