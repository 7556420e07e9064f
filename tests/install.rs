//! What installing p2ptop gives: `cargo install` puts both binaries in one `bin/` and p2ptop
//! finds its probe there; `p2ptop completions` and `p2ptop man` come from the clap definitions.
//!
//! The install is a debug build into the target directory these tests were built in, so it
//! reuses this build's artifacts (seconds) rather than compiling a release build from nothing
//! (many minutes on a small machine); what it proves, the layout and the lookup, is the same.

mod daemons;

use daemons::{Scratch, have, program, run_bounded, shown};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const P2PTOP: &str = env!("CARGO_BIN_EXE_p2ptop");
/// The no-device libcuda that build.rs makes; on LD_LIBRARY_PATH it plays a driver with no GPUs.
const CUDA_STUB_DIR: &str = env!("P2PTOP_CUDA_STUB_DIR");

/// The target directory this test binary's p2ptop was built in.
fn target_dir() -> PathBuf {
    let exe = Path::new(P2PTOP);
    exe.parent().and_then(Path::parent).unwrap().to_owned()
}

#[test]
fn cargo_install_puts_both_binaries_in_one_bin_and_p2ptop_finds_its_probe_there() {
    let scratch = Scratch::new("install");
    let root = scratch.path("root");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut install = Command::new(cargo);
    install
        .args(["install", "--debug", "--locked", "--offline", "--path"])
        .arg(env!("CARGO_MANIFEST_DIR"))
        .arg("--root")
        .arg(&root)
        .arg("--target-dir")
        .arg(target_dir())
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    let out = run_bounded(install, Duration::from_secs(300));
    assert!(out.status.success(), "{}", shown(&out));
    let bin = root.join("bin");
    for name in ["p2ptop", "p2ptop-probe"] {
        assert!(
            bin.join(name).is_file(),
            "{name} not installed in {}",
            bin.display()
        );
    }

    // The probe beside the installed p2ptop answers, against the no-device driver stub.
    let run = || {
        Command::new(bin.join("p2ptop"))
            .arg("run")
            .env("LD_LIBRARY_PATH", CUDA_STUB_DIR)
            .env_remove("P2PTOP_PROBE")
            .output()
            .unwrap()
    };
    let found = run();
    assert_eq!(found.status.code(), Some(3), "{}", shown(&found));
    let said = String::from_utf8_lossy(&found.stderr);
    assert!(said.contains("no usable CUDA device"), "{said}");

    // Without it, p2ptop says it looked there.
    std::fs::remove_file(bin.join("p2ptop-probe")).unwrap();
    let missing = run();
    assert_eq!(missing.status.code(), Some(3), "{}", shown(&missing));
    let said = String::from_utf8_lossy(&missing.stderr);
    let expected = format!("{} is missing", bin.join("p2ptop-probe").display());
    assert!(said.contains(&expected), "{said}");
}

fn p2ptop(args: &[&str]) -> String {
    let out = Command::new(P2PTOP).args(args).output().unwrap();
    assert!(out.status.success(), "{}", shown(&out));
    String::from_utf8(out.stdout).unwrap()
}

const COMMANDS: [&str; 6] = ["run", "check", "fleet", "topo", "completions", "man"];

#[test]
fn bash_completion_completes_commands_and_options() {
    let script = p2ptop(&["completions", "bash"]);
    if !have(&["bash"], "bash") {
        return;
    }
    let scratch = Scratch::new("bash-completion");
    let file = scratch.path("p2ptop.bash");
    std::fs::write(&file, script).unwrap();
    // What bash does on Tab: set the words and the cursor's word, call the function.
    let complete = |words: &[&str]| {
        let cword = words.len() - 1;
        let line = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={cword}; _p2ptop p2ptop '{}' '{}'; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display(),
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words[cword],
            words[cword.saturating_sub(1)],
        );
        let out = Command::new(program("bash"))
            .args(["-c", &line])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", shown(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let commands = complete(&["p2ptop", ""]);
    for command in COMMANDS {
        assert!(
            commands.lines().any(|l| l == command),
            "{command}:\n{commands}"
        );
    }
    assert_eq!(complete(&["p2ptop", "check", "--qu"]).trim(), "--quick");
    let formats = complete(&["p2ptop", "check", "--format", ""]);
    assert!(formats.lines().any(|l| l == "prometheus"), "{formats}");
}

#[test]
fn zsh_and_fish_completions_name_every_command_and_the_new_options() {
    for (shell, header) in [("zsh", "#compdef p2ptop"), ("fish", "complete -c p2ptop")] {
        let script = p2ptop(&["completions", shell]);
        assert!(script.contains(header), "{shell}:\n{script}");
        for word in COMMANDS.iter().chain(&["quick", "prometheus"]) {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
}

#[test]
fn man_pages_cover_every_command_and_render_without_warnings() {
    let page = p2ptop(&["man"]);
    assert!(page.contains(".TH p2ptop 1"), "{page}");
    let scratch = Scratch::new("man");
    p2ptop(&["man", "--dir", scratch.dir.to_str().unwrap()]);
    let check = std::fs::read_to_string(scratch.path("p2ptop-check.1")).unwrap();
    assert!(check.contains("\\-\\-quick"), "{check}");
    let mut pages = vec![scratch.path("p2ptop.1")];
    pages.extend(
        COMMANDS
            .iter()
            .map(|c| scratch.path(&format!("p2ptop-{c}.1"))),
    );
    if !have(&["groff"], "groff-base") {
        return;
    }
    for page in pages {
        // -k: UTF-8 in, as man does it; -ww: every warning; -z: no output but the warnings.
        let out = Command::new(program("groff"))
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(&page)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}: {}",
            page.display(),
            shown(&out)
        );
    }
}
