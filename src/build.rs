//! Link-time settings of the berth binary.

fn main() {
    // The ELF entry point is berth_entry (src/security/exeseal/early.rs),
    // which re-executes create/run/exec from the sealed overlay before
    // glibc starts, and otherwise enters glibc's _start. Only the berth
    // binary has it: test binaries keep the default entry.
    println!("cargo:rustc-link-arg-bin=berth=-Wl,-e,berth_entry");
    println!("cargo:rerun-if-changed=src/build.rs");
}
