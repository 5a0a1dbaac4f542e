//! AppArmor: a profile asked for on a host without AppArmor is refused at
//! create, before anything is set up (the in-VM suite covers a host with it).

use crate::common::{stderr, Env};

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

#[test]
fn apparmor_profile_without_apparmor_is_refused() {
    if apparmor_enabled() {
        eprintln!("skip: this host has AppArmor enabled (tests/vm covers that case)");
        return;
    }
    let env = Env::with_config(|c| {
        c["process"]["apparmorProfile"] = "berth-test".into();
    });
    let id = env.id("aa");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let out = env.berth(&["create", "-b", &bundle, &id]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one-line error: {err}");
    assert!(
        err.contains(
            r#"process.apparmorProfile "berth-test": AppArmor is not enabled on this host"#
        ),
        "{err}"
    );
    env.assert_gone(&id);
}

#[test]
fn exec_apparmor_without_apparmor_is_refused() {
    if apparmor_enabled() {
        eprintln!("skip: this host has AppArmor enabled (tests/vm covers that case)");
        return;
    }
    let env = Env::new();
    let (id, err) = crate::exec_with_label_flag(&env, "aa-exec", "--apparmor", "berth-test");
    assert!(
        err.contains(
            r#"process.apparmorProfile "berth-test": AppArmor is not enabled on this host"#
        ),
        "{err}"
    );
    env.ok(&["delete", "--force", &id]);
    env.assert_gone(&id);
}
