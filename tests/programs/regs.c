/*
 * regs: waits in a raw pause system call with known values in callee-saved and vector registers.
 *
 * Prints "FSBASE <fs_base>" (arch_prctl(ARCH_GET_FS)), "TLS <address of a thread-local>",
 * "RIP <address right after the syscall instruction>", then "READY <pid>", then loops on
 * syscall(SYS_pause) with r12-r15 and xmm15 set to the constants below, which the kernel keeps
 * across the call.
 */
#include "common.h"
#include <asm/prctl.h>
#include <sys/syscall.h>

#define R12 0x1111222233334444ULL
#define R13 0x5555666677778888ULL
#define R14 0x99990000aaaabbbbULL
#define R15 0xccccddddeeeeffffULL
#define XMM15_LO 0x0123456789abcdefULL
#define XMM15_HI 0xfedcba9876543210ULL

extern char regs_after_syscall[];
static __thread volatile int thread_local_marker = 42;

int main(void)
{
    unsigned long fs = 0;
    if (syscall(SYS_arch_prctl, ARCH_GET_FS, &fs) == -1) die("arch_prctl");
    say("FSBASE 0x%lx\n", fs);
    say("TLS %p\n", (void *)&thread_local_marker);
    say("RIP %p\n", (void *)regs_after_syscall);
    say("READY %d\n", (int)getpid());

    static const unsigned long long xmm[2] __attribute__((aligned(16))) = { XMM15_LO, XMM15_HI };
    __asm__ volatile(
        "movdqa (%0), %%xmm15\n\t"
        "movabs $0x1111222233334444, %%r12\n\t"
        "movabs $0x5555666677778888, %%r13\n\t"
        "movabs $0x99990000aaaabbbb, %%r14\n\t"
        "movabs $0xccccddddeeeeffff, %%r15\n\t"
        "1:\n\t"
        "mov $34, %%eax\n\t"          /* SYS_pause */
        "syscall\n\t"
        ".globl regs_after_syscall\n"
        "regs_after_syscall:\n\t"
        "jmp 1b\n\t"
        :
        : "r"(xmm)
        : "rax", "rcx", "r11", "r12", "r13", "r14", "r15", "xmm15", "memory");
    return 0;
}
