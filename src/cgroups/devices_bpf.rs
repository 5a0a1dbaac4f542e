//! cgroup v2 device access: a `BPF_PROG_TYPE_CGROUP_DEVICE` program generated
//! from the device rules, loaded with the raw `bpf(2)` syscall (no libbpf) and
//! attached to the container's cgroup with `BPF_F_ALLOW_MULTI`. Replacing it
//! (`update`) swaps the one program atomically (`BPF_F_REPLACE`) or attaches
//! the new one before detaching the old, so there is never a moment without a
//! filter and never a leaked program. This module owns the only `unsafe` of
//! the cgroups code: the `bpf(2)` calls.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{anyhow, Context, Result};

use super::resources::DeviceRule;

/// One eBPF instruction, as the kernel lays it out.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst register in the low nibble, src in the high nibble.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const LDX_MEM_W: u8 = 0x61;
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_K: u8 = 0xb4;
const ALU32_MOV_X: u8 = 0xbc;
const JMP32_JNE_K: u8 = 0x56;
const JMP32_JNE_X: u8 = 0x5e;
const JMP32_JEQ_K: u8 = 0x16;
const EXIT: u8 = 0x95;

// Registers: r1 = ctx on entry, then scratch; r2 type, r3 access, r4 major, r5 minor.
const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// `struct bpf_cgroup_dev_ctx`: access_type = (access << 16) | type.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// The program: later rules win, so test them last-to-first and return on
/// the first match. An allow rule matches when every requested access is in
/// it; a deny rule when any is. No match denies.
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        let mut checks: Vec<Insn> = Vec::new();
        match rule.kind {
            'b' => checks.push(insn(JMP32_JNE_K, 2, 0, 0, DEV_BLOCK)),
            'c' => checks.push(insn(JMP32_JNE_K, 2, 0, 0, DEV_CHAR)),
            _ => {}
        }
        let bits = rule.access.chars().fold(0, |b, c| {
            b | match c {
                'm' => ACC_MKNOD,
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                _ => 0,
            }
        });
        if bits != ACC_MKNOD | ACC_READ | ACC_WRITE {
            checks.push(insn(ALU32_MOV_X, 1, 3, 0, 0));
            checks.push(insn(ALU32_AND_K, 1, 0, 0, bits));
            checks.push(if rule.allow {
                insn(JMP32_JNE_X, 1, 3, 0, 0)
            } else {
                insn(JMP32_JEQ_K, 1, 0, 0, 0)
            });
        }
        if let Some(major) = rule.major {
            checks.push(insn(JMP32_JNE_K, 4, 0, 0, major as i32));
        }
        if let Some(minor) = rule.minor {
            checks.push(insn(JMP32_JNE_K, 5, 0, 0, minor as i32));
        }
        let catch_all = checks.is_empty();
        // Each jump skips to just past this rule's two-instruction verdict.
        let n = checks.len();
        for (i, c) in checks.iter_mut().enumerate() {
            if c.code != ALU32_MOV_X && c.code != ALU32_AND_K {
                c.off = (n - i - 1 + 2) as i16;
            }
        }
        p.extend(checks);
        p.push(insn(ALU32_MOV_K, 0, 0, 0, i32::from(rule.allow)));
        p.push(insn(EXIT, 0, 0, 0, 0));
        if catch_all {
            // Nothing before a catch-all rule can be reached.
            return p;
        }
    }
    p.push(insn(ALU32_MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;
const BPF_F_REPLACE: u32 = 1 << 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `bpf(cmd, attr, sizeof attr)`.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, fully initialised #[repr(C)] bpf_attr prefix
    // of the size we pass; any pointers in it point at buffers the caller
    // keeps alive across the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fd_from(rc: libc::c_long) -> OwnedFd {
    // SAFETY: a successful bpf() that returns a file descriptor hands us its
    // only reference; nothing else closes it.
    unsafe { OwnedFd::from_raw_fd(rc as i32) }
}

/// Load the program; on a verifier refusal, load again with a log to say why.
pub fn load(insns: &[Insn]) -> Result<OwnedFd> {
    let license = c"Apache";
    let mut log = vec![0u8; 0];
    for attempt in 0..2 {
        if attempt == 1 {
            log = vec![0u8; 64 * 1024];
        }
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: u32::from(attempt == 1),
            log_size: log.len() as u32,
            log_buf: if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            expected_attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        attr.prog_name[..5].copy_from_slice(b"berth");
        match bpf(BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => return Ok(fd_from(fd)),
            Err(e) if attempt == 1 || e.raw_os_error() != Some(libc::EACCES) => {
                let text = String::from_utf8_lossy(&log);
                let text = text.trim_end_matches('\0').trim();
                let why = if text.is_empty() {
                    String::new()
                } else {
                    format!(" (verifier: {})", text.lines().last().unwrap_or_default())
                };
                return Err(anyhow!(
                    "load BPF device program of {} instructions: {e}{why}",
                    insns.len()
                ));
            }
            Err(_) => {}
        }
    }
    Err(anyhow!("load BPF device program"))
}

fn open_dir(dir: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .with_context(|| format!("open cgroup {}", dir.display()))
}

/// Ids of the device programs attached directly to the cgroup.
pub fn attached(cgroup: &File) -> std::io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

fn prog_fd(id: u32) -> std::io::Result<OwnedFd> {
    let mut attr = GetFdAttr {
        prog_id: id,
        ..Default::default()
    };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(fd_from)
}

/// Generate, load and attach the device program for `rules` to the cgroup
/// `dir`, replacing whatever device programs berth attached there before.
pub fn install(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let prog = load(&program(rules))?;
    let cgroup = open_dir(dir)?;
    let old = attached(&cgroup)
        .with_context(|| format!("query BPF device programs of {}", dir.display()))?;
    let attach = |flags: u32, replace: Option<&OwnedFd>| {
        let mut attr = AttachAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_bpf_fd: prog.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: flags,
            replace_bpf_fd: replace.map_or(0, |f| f.as_raw_fd() as u32),
        };
        bpf(BPF_PROG_ATTACH, &mut attr)
    };
    if let [id] = old[..] {
        // One old program: swap it in a single step.
        if let Ok(old_fd) = prog_fd(id) {
            if attach(BPF_F_ALLOW_MULTI | BPF_F_REPLACE, Some(&old_fd)).is_ok() {
                return Ok(());
            }
        }
    }
    attach(BPF_F_ALLOW_MULTI, None)
        .map_err(|e| anyhow!("attach BPF device program to {}: {e}", dir.display()))?;
    for id in old {
        let fd = prog_fd(id)
            .map_err(|e| anyhow!("open old BPF device program {id} of {}: {e}", dir.display()))?;
        let mut attr = AttachAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_bpf_fd: fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        bpf(BPF_PROG_DETACH, &mut attr).map_err(|e| {
            anyhow!(
                "detach old BPF device program {id} from {}: {e}",
                dir.display()
            )
        })?;
    }
    Ok(())
}

/// How many device programs are attached directly to `dir` (for tests and
/// leak checks).
#[cfg(test)]
pub fn count_attached(dir: &Path) -> Result<usize> {
    let cgroup = open_dir(dir)?;
    Ok(attached(&cgroup)
        .with_context(|| format!("query BPF device programs of {}", dir.display()))?
        .len())
}

#[cfg(test)]
mod tests {
    use super::super::resources::device_rules;
    use super::*;
    use crate::spec::types::LinuxDeviceCgroup;

    /// A tiny interpreter for the instructions `program` emits, so the
    /// rules' meaning is tested without loading anything.
    fn run(p: &[Insn], kind: i32, access: i32, major: u32, minor: u32) -> u32 {
        let ctx = [((access << 16) | kind) as u32, major, minor];
        let mut r = [0u32; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            let imm = i.imm as u32;
            let jump = |cond: bool| if cond { i.off as usize } else { 0 };
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = ctx[i.off as usize / 4],
                ALU32_AND_K => r[dst] &= imm,
                ALU32_RSH_K => r[dst] >>= imm,
                ALU32_MOV_K => r[dst] = imm,
                ALU32_MOV_X => r[dst] = r[src],
                JMP32_JNE_K => pc += jump(r[dst] != imm),
                JMP32_JNE_X => pc += jump(r[dst] != r[src]),
                JMP32_JEQ_K => pc += jump(r[dst] == imm),
                EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn default_rules_allow_only_default_devices() {
        let p = program(&device_rules(&[]).unwrap());
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 3), 1, "/dev/null");
        assert_eq!(run(&p, DEV_CHAR, ACC_MKNOD, 136, 7), 1, "pts");
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 4), 0, "/dev/port");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 7, 0), 0, "loop0");
        assert_eq!(
            run(&p, DEV_BLOCK, ACC_READ, 1, 3),
            0,
            "block 1:3 is not char 1:3"
        );
    }

    #[test]
    fn spec_rules_and_partial_access() {
        let spec: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":true,"type":"b","major":7,"minor":0,"access":"rm"},{"allow":false,"type":"c","major":1,"minor":3,"access":"w"}]"#,
        )
        .unwrap();
        let rules = device_rules(&spec).unwrap();
        let p = program(&rules);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 7, 0), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_MKNOD, 7, 0), 1);
        assert_eq!(
            run(&p, DEV_BLOCK, ACC_READ | ACC_WRITE, 7, 0),
            0,
            "w not allowed"
        );
        // The default allow of c 1:3 comes after the deny, so it wins.
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 1, 3), 1);
        let all: Vec<LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow":true,"access":"rwm"}]"#).unwrap();
        let privileged = device_rules(&all).unwrap();
        let p = program(&privileged);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ | ACC_WRITE, 8, 0), 1);
        assert!(p.len() < 60, "rules before a catch-all are dropped");
    }
}
