//! `berth spec`: write a default config.json into a bundle directory, like
//! `runc spec`. It never overwrites an existing config.json.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};

use anyhow::{anyhow, bail, Result};

use crate::cli::SpecArgs;
use crate::spec::{self, absolute, io_reason, CONFIG_FILE};

pub fn run(args: &SpecArgs) -> Result<u8> {
    let mut config = spec::example()?;
    if args.rootless {
        let (uid, gid) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        spec::to_rootless(&mut config, uid, gid)?;
    }
    let text = spec::to_pretty_json(&config)?;

    let bundle = absolute(&args.bundle);
    match std::fs::metadata(&bundle) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => bail!("bundle {}: not a directory", bundle.display()),
        Err(e) => bail!("bundle {}: {}", bundle.display(), io_reason(&e)),
    }
    let path = bundle.join(CONFIG_FILE);
    // create_new makes "exists" and "create" one step, so two concurrent
    // `berth spec` runs cannot both write.
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            bail!("File {CONFIG_FILE} exists. Remove it first")
        }
        Err(e) => bail!("create {}: {}", path.display(), io_reason(&e)),
    };
    file.write_all(text.as_bytes())
        .map_err(|e| anyhow!("write {}: {}", path.display(), io_reason(&e)))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn args(bundle: &Path, rootless: bool) -> SpecArgs {
        SpecArgs {
            bundle: bundle.to_path_buf(),
            rootless,
        }
    }

    #[test]
    fn writes_a_config_that_loads_and_validates() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("rootfs")).expect("mkdir rootfs");
        assert_eq!(run(&args(dir.path(), false)).expect("spec"), 0);
        let config = spec::load(dir.path()).expect("load");
        spec::validate(&config, dir.path()).expect("validate");
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(CONFIG_FILE), "keep").expect("write");
        let err = format!("{:#}", run(&args(dir.path(), false)).expect_err("exists"));
        assert_eq!(err, "File config.json exists. Remove it first");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CONFIG_FILE)).expect("read"),
            "keep"
        );
    }

    #[test]
    fn missing_bundle() {
        let err = format!(
            "{:#}",
            run(&args(Path::new("/nonexistent/bundle"), false)).expect_err("missing")
        );
        assert_eq!(err, "bundle /nonexistent/bundle: No such file or directory");
    }

    #[test]
    fn rootless_maps_the_caller() {
        let dir = tempfile::tempdir().expect("tempdir");
        run(&args(dir.path(), true)).expect("spec --rootless");
        let config = spec::load(dir.path()).expect("load");
        let linux = config.linux().as_ref().expect("linux");
        let has_user = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|ns| ns.typ() == crate::spec::types::LinuxNamespaceType::User);
        assert!(has_user);
        let uid = linux.uid_mappings().as_ref().expect("uid map")[0];
        assert_eq!(uid.host_id(), nix::unistd::geteuid().as_raw());
    }
}
