//! AppArmor: `process.apparmorProfile`, set as the exec label of the
//! container process so that the kernel confines it from its execve on.
//!
//! A profile asked for on a host without AppArmor is an error (validation
//! calls [`check`]); the profile itself must already be loaded in the kernel.

use anyhow::{bail, Context, Result};

use super::procattr;

/// The kernel's switch: "Y" when AppArmor is built in, enabled and active.
const ENABLED: &str = "/sys/module/apparmor/parameters/enabled";

/// The exec label of the calling thread, below the (container's) /proc: the
/// LSM-specific file first, the shared one of kernels before 5.8 second.
const EXEC_ATTRS: &[&str] = &["thread-self/attr/apparmor/exec", "thread-self/attr/exec"];

/// Whether this host has AppArmor enabled.
pub fn enabled() -> bool {
    std::fs::read_to_string(ENABLED).is_ok_and(|s| s.trim() == "Y")
}

/// Validation of `process.apparmorProfile` (an empty one means none).
pub fn check(profile: &str) -> Result<()> {
    if profile.is_empty() {
        return Ok(());
    }
    if profile.chars().any(|c| c.is_control()) {
        bail!("process.apparmorProfile {profile:?}: contains a control character");
    }
    if !enabled() {
        bail!("process.apparmorProfile {profile:?}: AppArmor is not enabled on this host");
    }
    Ok(())
}

/// Make `profile` the profile this thread changes to at its next execve,
/// through the hardened procfs handle of [`procattr`].
pub fn apply_on_exec(profile: &str) -> Result<()> {
    if profile.is_empty() {
        return Ok(());
    }
    procattr::write_exec_attr(EXEC_ATTRS, &format!("exec {profile}"))
        .with_context(|| format!("process.apparmorProfile {profile:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_profile_is_none() {
        assert!(check("").is_ok());
        assert!(apply_on_exec("").is_ok());
    }

    #[test]
    fn check_follows_the_host() {
        let err = check("berth-test").err().map(|e| format!("{e:#}"));
        if enabled() {
            assert_eq!(err, None);
        } else {
            assert_eq!(
                err.as_deref(),
                Some(
                    r#"process.apparmorProfile "berth-test": AppArmor is not enabled on this host"#
                )
            );
        }
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(check("a\nb").is_err());
    }
}
