//! SELinux: a process label, a mount label or `exec --process-label` asked
//! for on a host without SELinux is refused with one line naming the field,
//! before anything is set up (the second boot of tests/vm covers a host
//! with SELinux and a policy).

use crate::common::{stderr, Env};

const LABEL: &str = "system_u:system_r:container_t:s0";

/// SELinux is enabled when selinuxfs is mounted (berth's rule, as runc's).
fn selinux_enabled() -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(2) == Some("selinuxfs")))
}

/// `berth run` of the env's bundle fails with exactly `want` as its one
/// line, and leaves no state dir, layer dir, mount or listed container.
fn assert_refused(env: &Env, name: &str, want: &str) {
    let id = env.id(name);
    let bundle = env.bundle.to_string_lossy().into_owned();
    for cmd in ["create", "run"] {
        let out = env.berth(&[cmd, "-b", &bundle, &id]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{cmd}: stderr: {err}");
        assert_eq!(err.trim_end(), format!("berth: {want}"), "{cmd}: one line");
        env.assert_gone(&id);
        assert_eq!(env.ok(&["list", "-q"]).trim(), "", "{cmd}: berth list");
    }
}

#[test]
fn selinux_label_without_selinux_is_refused() {
    if selinux_enabled() {
        eprintln!("skip: this host has SELinux enabled (tests/vm covers that case)");
        return;
    }
    let env = Env::with_config(|c| {
        c["process"]["selinuxLabel"] = LABEL.into();
    });
    assert_refused(
        &env,
        "se-label",
        &format!(
            r#"config.json: process.selinuxLabel "{LABEL}": SELinux is not enabled on this host"#
        ),
    );
}

#[test]
fn mount_label_without_selinux_is_refused() {
    if selinux_enabled() {
        eprintln!("skip: this host has SELinux enabled (tests/vm covers that case)");
        return;
    }
    let label = "system_u:object_r:container_file_t:s0:c1,c2";
    let env = Env::with_config(|c| {
        c["linux"]["mountLabel"] = label.into();
    });
    assert_refused(
        &env,
        "se-mount",
        &format!(r#"config.json: linux.mountLabel "{label}": SELinux is not enabled on this host"#),
    );
}

#[test]
fn exec_process_label_without_selinux_is_refused() {
    if selinux_enabled() {
        eprintln!("skip: this host has SELinux enabled (tests/vm covers that case)");
        return;
    }
    let env = Env::new();
    let (id, err) = crate::exec_with_label_flag(&env, "se-exec", "--process-label", LABEL);
    assert_eq!(
        err.trim_end(),
        format!(r#"berth: --process-label "{LABEL}": SELinux is not enabled on this host"#),
        "one line"
    );
    // The refused exec left the container as it was, with nothing else running.
    assert_eq!(env.status(&id), "created");
    let ps = env.ok(&["ps", &id]);
    assert_eq!(ps.lines().count(), 2, "only the container's process: {ps}");
    env.ok(&["delete", "--force", &id]);
    env.assert_gone(&id);
}
