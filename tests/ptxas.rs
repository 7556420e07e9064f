//! Every kernel in ptx/ assembles, for every GPU generation p2ptop supports, with ptxas's
//! strictest useful flags: any warning, register spill or local-memory use is an error.
//!
//! ptxas comes from the PyPI wheel `nvidia-cuda-nvcc-cu12` (installed by `.ci/run`), from
//! `$P2PTOP_PTXAS`, or from PATH. Without it these tests fail, unless `P2PTOP_ALLOW_SKIP` lists
//! ptxas (never under `CI=true`), so CI cannot pass without checking the kernels.

mod skip;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Pascal, Volta, Turing, Ampere (GA100, GA10x), Ada, Hopper, Blackwell (datacenter, GeForce).
const TARGETS: [&str; 9] = [
    "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_100", "sm_120",
];

const STRICT: [&str; 3] = [
    "-Werror",
    "--warn-on-spills",
    "--warn-on-local-memory-usage",
];

fn kernels() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ptx");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("ptx/ exists")
        .map(|entry| entry.expect("readable ptx/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "ptx"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the four kernels in {}",
        dir.display()
    );
    files
}

/// ptxas, or `None` (after saying SKIPPED) when it is not installed and `P2PTOP_ALLOW_SKIP`
/// lists ptxas; missing otherwise, the test fails (see `tests/skip`).
fn ptxas() -> Option<PathBuf> {
    let found = std::env::var_os("P2PTOP_PTXAS")
        .map(PathBuf::from)
        .filter(|path| path.is_file())
        .or_else(from_python_wheel)
        .or_else(|| skip::which("ptxas"));
    if found.is_none() {
        skip::skip(
            &["ptxas", "nvidia-cuda-nvcc-cu12"],
            "ptxas not found (not in $P2PTOP_PTXAS, the nvidia-cuda-nvcc-cu12 wheel or PATH), \
             the kernels were not assembled",
            "pip install nvidia-cuda-nvcc-cu12==12.9.86",
        );
    }
    found
}

fn from_python_wheel() -> Option<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import nvidia.cuda_nvcc, os; print(os.path.join(nvidia.cuda_nvcc.__path__[0], 'bin', 'ptxas'))",
        ])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    (output.status.success() && path.is_file()).then_some(path)
}

/// Runs ptxas on `kernel` for `target`; the error is ptxas's own output.
fn assemble(ptxas: &Path, kernel: &Path, target: &str) -> Result<String, String> {
    let out = std::env::temp_dir().join(format!(
        "p2ptop-{}-{target}-{}.cubin",
        kernel.file_stem().unwrap().to_string_lossy(),
        std::process::id()
    ));
    let result = Command::new(ptxas)
        .arg(format!("-arch={target}"))
        .args(STRICT)
        .arg("-v")
        .arg(kernel)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run ptxas");
    let _ = std::fs::remove_file(&out);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    if result.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

#[test]
fn every_kernel_assembles_for_every_target_without_spills() {
    let Some(ptxas) = ptxas() else { return };
    let mut failures = Vec::new();
    for kernel in kernels() {
        for target in TARGETS {
            match assemble(&ptxas, &kernel, target) {
                Ok(report) => assert!(
                    report
                        .contains("0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads"),
                    "{} for {target}: unexpected resource report:\n{report}",
                    kernel.display()
                ),
                Err(output) => {
                    failures.push(format!("{} for {target}:\n{output}", kernel.display()))
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "ptxas rejected:\n{}",
        failures.join("\n")
    );
}

/// The registers ptxas reports for the kernel in `report` (its `-v` output).
fn registers_used(report: &str) -> Option<u32> {
    let at = report.find("Used ")? + "Used ".len();
    report[at..].split_whitespace().next()?.parse().ok()
}

#[test]
fn the_emulators_register_table_is_what_ptxas_allocates() {
    let Some(ptxas) = ptxas() else { return };
    let mut wrong = Vec::new();
    for kernel in kernels() {
        let name = format!("p2p_{}", kernel.file_stem().unwrap().to_string_lossy());
        for target in TARGETS {
            let report = assemble(&ptxas, &kernel, target).unwrap_or_else(|e| panic!("{e}"));
            let used = registers_used(&report);
            let table = p2ptop_ptx::registers::registers(&name, target);
            if used != table {
                wrong.push(format!("{name} {target}: ptxas {used:?}, table {table:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "update tests/emu/ptx/src/registers.rs:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn ptxas_rejects_a_broken_kernel() {
    // The assembly check is only worth something if a bad kernel fails it.
    let Some(ptxas) = ptxas() else { return };
    let copy = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ptx/copy.ptx"))
        .expect("read copy.ptx");
    let broken = copy.replacen("ld.global.cg.v4.u32", "ld.global.cg.v4.u33", 1);
    assert_ne!(broken, copy, "the mutation must apply");
    let path = std::env::temp_dir().join(format!("p2ptop-broken-{}.ptx", std::process::id()));
    std::fs::write(&path, broken).expect("write the broken kernel");
    let result = assemble(&ptxas, &path, "sm_60");
    let _ = std::fs::remove_file(&path);
    assert!(result.is_err(), "ptxas accepted an invalid instruction");
}

#[test]
fn every_kernel_declares_the_version_and_target_it_explains() {
    for kernel in kernels() {
        let text = std::fs::read_to_string(&kernel).expect("read kernel");
        let name = kernel.display();
        assert!(
            text.contains("\n.version 6.0\n"),
            "{name}: expected .version 6.0"
        );
        assert!(
            text.contains("\n.target sm_60\n"),
            "{name}: expected .target sm_60"
        );
        let header: String = text.lines().take_while(|l| l.starts_with("//")).collect();
        assert!(
            header.contains(".version 6.0") && header.contains("R470"),
            "{name}: the header comment must say why this version and target"
        );
    }
}
