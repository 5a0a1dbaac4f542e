//! A short CPU probe for glibc's start-up.
//!
//! A static glibc program asks the CPU about itself before `main`: on an
//! Intel CPU about 90 CPUIDs, nearly all of them for the cache topology it
//! precomputes for `sysconf` and its `memcpy` thresholds (CPUID leaves 2
//! and 4, walked once per cache parameter). In a VM every CPUID is a VM
//! exit: 12.6 µs each on the bench machine, 1.1 ms of every berth start.
//! berth needs none of that topology.
//!
//! So, from the ELF entry point (`exeseal::early`) to the first
//! `.init_array` function, CPUID faults (`arch_prctl(ARCH_SET_CPUID, 0)`,
//! where the CPU can) and a SIGSEGV handler answers for it: leaf 0 is the
//! real vendor with 1 as the highest leaf, leaf 1 the real signature and
//! feature bits (both read once, for real, before), every other leaf zero.
//! That is what an older CPU of the same vendor reports; glibc then skips
//! the topology walks (it asks leaves 2 and 4 only of a CPU that has them)
//! and picks its string functions from the leaf-1 features, which are the
//! machine's own. Knowing no cache size, glibc clamps its non-temporal
//! threshold to its minimum (0x4040), so large copies stay correct. That
//! clamp (BZ #29953) is in glibc 2.37 and in the 2.36 of Debian 12, the
//! build machines' (checked in their `libc.a`); a glibc without it would
//! leave the threshold at 0, below what `memmove`'s large-copy loop
//! assumes, so `restore` applies the same minimum itself where it finds
//! less. Then `restore` makes CPUID work again and puts SIGSEGV back to
//! its default, before Rust's runtime installs its stack-overflow handler;
//! `execve` would re-enable CPUID anyway, so no container process ever
//! runs with it faulting.
//!
//! Nothing changes where it cannot apply: no CPUID faulting (the
//! `cpuid_fault` flag), SIGSEGV blocked (the kernel would then kill us at
//! the first fault instead of calling the handler) or not at its default.
//! A fault that is not a CPUID gets its default end: the handler restores
//! the default action and the instruction faults again.
//!
//! Like `exeseal::early`, everything before `restore` runs before glibc's
//! start-up: no relocated pointers, no TLS, no libc, raw system calls.

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::security::exeseal::early::sys;

const ARCH_SET_CPUID: usize = 0x1012;
const SIGSEGV_BIT: u64 = 1 << (libc::SIGSEGV - 1);
/// From <asm/signal.h>: the handler returns through `restorer`.
const SA_RESTORER: u64 = 0x0400_0000;

/// Leaves 0 and 1 as the CPU gave them: eax, ebx, ecx, edx.
static LEAF0: [AtomicU32; 4] = [const { AtomicU32::new(0) }; 4];
static LEAF1: [AtomicU32; 4] = [const { AtomicU32::new(0) }; 4];
/// Whether CPUID faults now and the handler is ours.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Whether glibc's start-up ran with the short probe (CPUID faulted).
static SHORTENED: AtomicBool = AtomicBool::new(false);

/// The kernel's `struct sigaction` on x86_64.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

// The return from the handler: rt_sigreturn, as glibc's __restore_rt.
global_asm!(
    ".globl berth_cpuid_restorer",
    ".type berth_cpuid_restorer, @function",
    "berth_cpuid_restorer:",
    "    mov eax, 15",
    "    syscall",
    ".size berth_cpuid_restorer, . - berth_cpuid_restorer",
);

/// The restorer's address, taken relative to rip: the usual way, through
/// the GOT, reads a slot not yet relocated.
fn restorer() -> usize {
    let at: usize;
    // SAFETY: only computes an address.
    unsafe {
        core::arch::asm!("lea {0}, [rip + berth_cpuid_restorer]", out(reg) at, options(nomem, nostack, pure));
    }
    at
}

fn set_sigsegv(act: &KernelSigaction, old: Option<&mut KernelSigaction>) -> Result<usize, i32> {
    let old = old.map_or(0, |o| o as *mut KernelSigaction as usize);
    let act = act as *const KernelSigaction as usize;
    sys(
        libc::SYS_rt_sigaction,
        [libc::SIGSEGV as usize, act, old, 8, 0],
    )
}

const DEFAULT: KernelSigaction = KernelSigaction {
    handler: 0, // SIG_DFL
    flags: 0,
    restorer: 0,
    mask: 0,
};

/// From the ELF entry point, right before glibc's `_start`: make CPUID
/// fault and answer it, where that can be done safely.
pub extern "C" fn before_libc() {
    let mut blocked: u64 = 0;
    let mask = &mut blocked as *mut u64 as usize;
    if sys(
        libc::SYS_rt_sigprocmask,
        [libc::SIG_BLOCK as usize, 0, mask, 8, 0],
    )
    .is_err()
        || blocked & SIGSEGV_BIT != 0
    {
        return;
    }
    let (l0, l1) = (
        core::arch::x86_64::__cpuid(0),
        core::arch::x86_64::__cpuid(1),
    );
    if l0.eax < 1 {
        return;
    }
    // One store each: a loop over arrays may become a memcpy, not yet
    // resolved before glibc's start-up.
    LEAF0[0].store(1, Ordering::Relaxed);
    LEAF0[1].store(l0.ebx, Ordering::Relaxed);
    LEAF0[2].store(l0.ecx, Ordering::Relaxed);
    LEAF0[3].store(l0.edx, Ordering::Relaxed);
    LEAF1[0].store(l1.eax, Ordering::Relaxed);
    LEAF1[1].store(l1.ebx, Ordering::Relaxed);
    LEAF1[2].store(l1.ecx, Ordering::Relaxed);
    LEAF1[3].store(l1.edx, Ordering::Relaxed);
    let ours = KernelSigaction {
        handler: on_fault as *const () as usize,
        flags: libc::SA_SIGINFO as u64 | SA_RESTORER,
        restorer: restorer(),
        mask: 0,
    };
    let mut old = DEFAULT;
    if set_sigsegv(&ours, Some(&mut old)).is_err() {
        return;
    }
    if old.handler != 0 {
        let _ = set_sigsegv(&old, None);
        return;
    }
    ACTIVE.store(true, Ordering::Release);
    match sys(libc::SYS_arch_prctl, [ARCH_SET_CPUID, 0, 0, 0, 0]) {
        Ok(_) => SHORTENED.store(true, Ordering::Release),
        Err(_) => undo(),
    }
}

extern "C" {
    /// glibc's size above which `memmove` uses non-temporal stores, set by
    /// its start-up from the cache sizes (`cacheinfo.h`).
    static mut __x86_shared_non_temporal_threshold: libc::c_long;
}

/// glibc's own lower bound for that threshold (BZ #29953).
const NON_TEMPORAL_MINIMUM: libc::c_long = 0x4040;

/// CPUID works again and SIGSEGV has its default action. System calls
/// only: it may run before glibc's start-up (from `before_libc` or the
/// handler), where nothing is relocated yet.
fn undo() {
    if ACTIVE.swap(false, Ordering::AcqRel) {
        let _ = sys(libc::SYS_arch_prctl, [ARCH_SET_CPUID, 1, 0, 0, 0]);
        let _ = set_sigsegv(&DEFAULT, None);
    }
}

/// The first `.init_array` function, after glibc's start-up and before
/// Rust's: [`undo`], and glibc's minimum on the threshold it computed
/// without cache sizes, where the short probe ran.
pub extern "C" fn restore() {
    undo();
    if SHORTENED.swap(false, Ordering::AcqRel) {
        // SAFETY: glibc's variable, written only by its start-up, which is
        // over (relocations applied); nothing else runs yet.
        unsafe {
            let threshold = &raw mut __x86_shared_non_temporal_threshold;
            if *threshold < NON_TEMPORAL_MINIMUM {
                *threshold = NON_TEMPORAL_MINIMUM;
            }
        }
    }
}

#[used]
#[link_section = ".init_array.00099"]
static RESTORE: extern "C" fn() = restore;

/// The SIGSEGV handler while CPUID faults: a CPUID is answered and
/// stepped over; anything else is given back its default end.
extern "C" fn on_fault(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes the interrupted context, which we own for
    // the handler's length; rip points at the faulting instruction.
    unsafe {
        let gregs = &mut (*(ctx as *mut libc::ucontext_t)).uc_mcontext.gregs;
        let rip = gregs[libc::REG_RIP as usize] as *const u8;
        let is_cpuid =
            core::ptr::read_volatile(rip) == 0x0f && core::ptr::read_volatile(rip.add(1)) == 0xa2;
        if !(is_cpuid && ACTIVE.load(Ordering::Acquire)) {
            undo();
            return;
        }
        let leaf = match gregs[libc::REG_RAX as usize] as u32 {
            0 => Some(&LEAF0),
            1 => Some(&LEAF1),
            _ => None,
        };
        let get = |i: usize| leaf.map_or(0, |l| l[i].load(Ordering::Relaxed)) as i64;
        gregs[libc::REG_RAX as usize] = get(0);
        gregs[libc::REG_RBX as usize] = get(1);
        gregs[libc::REG_RCX as usize] = get(2);
        gregs[libc::REG_RDX as usize] = get(3);
        gregs[libc::REG_RIP as usize] += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variable `restore` bounds is glibc's own: this test binary (no
    /// short probe: it keeps the default entry) has it computed from the
    /// real cache sizes, at or above glibc's minimum; and `restore` is a
    /// no-op when the probe was not shortened.
    #[test]
    fn the_threshold_is_glibcs_and_restore_without_the_probe_does_nothing() {
        // SAFETY: a read of glibc's variable, set at start-up.
        let before = unsafe { __x86_shared_non_temporal_threshold };
        assert!(before >= NON_TEMPORAL_MINIMUM, "{before:#x}");
        restore();
        // SAFETY: as above.
        assert_eq!(unsafe { __x86_shared_non_temporal_threshold }, before);
        assert!(!ACTIVE.load(Ordering::Relaxed) && !SHORTENED.load(Ordering::Relaxed));
    }
}
