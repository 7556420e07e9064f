//! The README's Slurm recipe and docs/slurm/p2ptop-drain.sh under a real Slurm: munged,
//! slurmctld and one slurmd run on loopback from a scratch directory with a generated
//! slurm.conf. The node is named `p2pnode1`, not after this machine, so a file named after it
//! proves p2ptop took Slurm's name ($SLURMD_NODENAME) for `%N`.

mod daemons;

use daemons::{Daemon, Scratch, free_port, have, program, run_bounded, shown, wait_for};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const P2PTOP: &str = env!("CARGO_BIN_EXE_p2ptop");
const NODE: &str = "p2pnode1";
/// Any Slurm command or job here takes well under this; past it the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// munged, slurmctld and slurmd, stopped in that reverse order when dropped.
struct Cluster {
    conf: PathBuf,
    slurmd: Daemon,
    slurmctld: Daemon,
    _munged: Daemon,
}

impl Cluster {
    fn start(scratch: &Scratch) -> Cluster {
        let dir = &scratch.dir;
        for sub in ["state", "spool"] {
            std::fs::create_dir(dir.join(sub)).unwrap();
        }
        let key = dir.join("munge.key");
        std::fs::write(&key, fastrand_key()).unwrap();
        set_mode(&key, 0o600);
        let socket = dir.join("munge.sock");
        let mut munged = Command::new(program("munged"));
        munged
            .args(["--foreground", "--force"])
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.join("munged.pid").display()))
            .arg(format!("--seed-file={}", dir.join("munged.seed").display()));
        let mut munged = Daemon::start("munged", munged, &dir.join("munged.log"));
        wait_for(
            "munge socket",
            PATIENCE,
            || socket.exists().then_some(()),
            || munged_log(dir),
        );
        munged.assert_running();

        let conf = dir.join("slurm.conf");
        std::fs::write(&conf, slurm_conf(dir, &socket)).unwrap();
        let mut slurmctld = Command::new(program("slurmctld"));
        slurmctld
            .args(["-D", "-i", "-f"])
            .arg(&conf)
            .env("SLURM_CONF", &conf);
        let slurmctld = Daemon::start("slurmctld", slurmctld, &dir.join("slurmctld.out"));
        let mut slurmd = Command::new(program("slurmd"));
        slurmd
            .args(["-D", "-N", NODE, "-f"])
            .arg(&conf)
            .env("SLURM_CONF", &conf);
        let slurmd = Daemon::start("slurmd", slurmd, &dir.join("slurmd.out"));
        let mut cluster = Cluster {
            conf,
            slurmd,
            slurmctld,
            _munged: munged,
        };
        cluster.wait_for_state("idle");
        cluster
    }

    /// A Slurm client command with this cluster's configuration, run to its end.
    fn client(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(daemons::program(program));
        command.args(args).env("SLURM_CONF", &self.conf);
        for (k, v) in env {
            command.env(k, v);
        }
        run_bounded(command, PATIENCE)
    }

    /// The node's state as sinfo prints it (`idle`, `drained`…).
    fn state(&self) -> String {
        let out = self.client("sinfo", &["-h", "-n", NODE, "-o", "%T"], &[]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn wait_for_state(&mut self, wanted: &str) {
        self.slurmctld.assert_running();
        self.slurmd.assert_running();
        wait_for(
            &format!("node {NODE} {wanted}"),
            PATIENCE,
            || (self.state() == wanted).then_some(()),
            || format!("{}\n{}", self.slurmctld.log(), self.slurmd.log()),
        );
    }

    /// `scontrol show node`'s Reason, without its `[user@time]` suffix.
    fn reason(&self) -> String {
        let out = self.client("scontrol", &["show", "node", NODE], &[]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let reason = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Reason="))
            .unwrap_or_default();
        reason
            .rsplit_once(" [")
            .map_or(reason, |(r, _)| r)
            .to_owned()
    }
}

fn munged_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("munged.log")).unwrap_or_default()
}

/// A 1 KiB munge key (munged wants at least 32 bytes); its contents only have to match itself.
fn fastrand_key() -> Vec<u8> {
    let mut rng = fastrand::Rng::new();
    (0..1024).map(|_| rng.u8(..)).collect()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// One node, one partition, everything on loopback and in `dir`; no cgroups, no accounting.
fn slurm_conf(dir: &Path, munge_socket: &Path) -> String {
    let d = dir.display();
    format!(
        "ClusterName=p2ptoptest\n\
         SlurmctldHost=localhost(127.0.0.1)\n\
         SlurmctldPort={ctld}\n\
         SlurmdPort={slurmd}\n\
         AuthType=auth/munge\n\
         CredType=cred/munge\n\
         AuthInfo=socket={socket}\n\
         SlurmUser=root\n\
         SlurmdUser=root\n\
         StateSaveLocation={d}/state\n\
         SlurmdSpoolDir={d}/spool\n\
         SlurmctldPidFile={d}/slurmctld.pid\n\
         SlurmdPidFile={d}/slurmd.pid\n\
         SlurmctldLogFile={d}/slurmctld.log\n\
         SlurmdLogFile={d}/slurmd.log\n\
         ProctrackType=proctrack/linuxproc\n\
         TaskPlugin=task/none\n\
         JobAcctGatherType=jobacct_gather/none\n\
         AccountingStorageType=accounting_storage/none\n\
         MpiDefault=none\n\
         SelectType=select/cons_tres\n\
         SelectTypeParameters=CR_Core\n\
         ReturnToService=2\n\
         NodeName={NODE} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN\n\
         PartitionName=p2ptop Nodes={NODE} Default=YES MaxTime=10 State=UP\n",
        ctld = free_port(),
        slurmd = free_port(),
        socket = munge_socket.display(),
    )
}

/// HGX H100 whose GPU3 trained its PCIe link down to Gen4 x8.
fn faulty_machine(scratch: &Scratch) -> PathBuf {
    let path = scratch.path("hgx-gpu3-gen4.toml");
    std::fs::write(
        &path,
        "name = \"hgx-gpu3-gen4\"\nsummary = \"GPU3 at PCIe 4.0 x8\"\npreset = \"hgx-h100\"\n\
         [[faults]]\nkind = \"pcie_downgraded\"\ngpu = 3\ngeneration = 4\nwidth = 8\n",
    )
    .unwrap();
    path
}

fn report(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn drain_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/slurm/p2ptop-drain.sh")
}

#[test]
fn the_fleet_recipe_and_the_drain_script_run_under_slurm() {
    if !have(
        &[
            "munged",
            "slurmctld",
            "slurmd",
            "srun",
            "sbatch",
            "sinfo",
            "scontrol",
        ],
        "slurm-wlm munge",
    ) {
        return;
    }
    let scratch = Scratch::new("slurm");
    let mut cluster = Cluster::start(&scratch);
    let reports = scratch.path("reports");
    std::fs::create_dir(&reports).unwrap();
    let dir = scratch.dir.to_str().unwrap();

    // The README's recipe, as written there (on a simulated HGX H100).
    let pattern = format!("{dir}/reports/%N.json");
    let srun = cluster.client(
        "srun",
        &[
            "--nodes=1",
            "--ntasks-per-node=1",
            P2PTOP,
            "--sim",
            "hgx-h100",
            "check",
            "--format",
            "json",
            "-o",
            &pattern,
        ],
        &[],
    );
    assert_eq!(srun.status.code(), Some(0), "{}", shown(&srun));
    let from_srun = report(&reports.join(format!("{NODE}.json")));
    assert_eq!(from_srun["simulated"], "hgx-h100");
    assert_eq!(from_srun["verdict"]["overall"], "pass");
    assert!(!reports.join("%N.json").exists());

    // A job array: a healthy and a faulty node (one machine here, so the task id tells the
    // files apart), each a quick check; sbatch --wait exits with the worst task's code.
    let faulty = faulty_machine(&scratch);
    let script = scratch.path("fleet.sbatch");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             #SBATCH --array=0-1\n\
             #SBATCH --output={dir}/slurm-%A_%a.out\n\
             case $SLURM_ARRAY_TASK_ID in 0) sim=hgx-h100 ;; *) sim={faulty} ;; esac\n\
             exec {P2PTOP} --sim \"$sim\" check --quick --format json \
             -o \"{dir}/reports/%N-$SLURM_ARRAY_TASK_ID.json\"\n",
            faulty = faulty.display()
        ),
    )
    .unwrap();
    let sbatch = cluster.client("sbatch", &["--wait", script.to_str().unwrap()], &[]);
    assert_eq!(sbatch.status.code(), Some(1), "{}", shown(&sbatch));
    let healthy = report(&reports.join(format!("{NODE}-0.json")));
    let broken = report(&reports.join(format!("{NODE}-1.json")));
    assert_eq!(healthy["verdict"]["overall"], "pass");
    assert_eq!(broken["verdict"]["overall"], "fail");
    let said =
        std::fs::read_to_string(scratch.path(&format!("slurm-{}_1.out", job_id(&sbatch)))).unwrap();
    assert!(
        said.starts_with("FAIL: ") && said.lines().count() == 1 && said.contains("GPU3"),
        "the quick check's one line: {said:?}"
    );

    // The fleet over all three.
    let mut files: Vec<String> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_owned())
        .collect();
    files.sort();
    let fleet = Command::new(P2PTOP)
        .arg("fleet")
        .args(&files)
        .output()
        .unwrap();
    assert_eq!(fleet.status.code(), Some(0), "{}", shown(&fleet));
    let table = String::from_utf8_lossy(&fleet.stdout).into_owned();
    println!("p2ptop fleet {dir}/reports/*.json\n{table}");
    assert_eq!(
        table.lines().count(),
        4,
        "a header and three nodes:\n{table}"
    );
    assert_eq!(table.matches("FAIL").count(), 1, "{table}");
    assert!(table.contains("OUTLIER"), "GPU3's slow host path:\n{table}");

    // The drain script in a job step on a healthy node: nothing happens.
    let p2ptop_env = [("P2PTOP", P2PTOP), ("P2PTOP_OPTIONS", "--sim hgx-h100")];
    let script = drain_script();
    let healthy_run = cluster.client(
        "srun",
        &["--nodes=1", script.to_str().unwrap()],
        &p2ptop_env,
    );
    assert_eq!(
        healthy_run.status.code(),
        Some(0),
        "{}",
        shown(&healthy_run)
    );
    assert_eq!(cluster.state(), "idle");

    // As the HealthCheckProgram on the faulty machine: slurmd runs it with only
    // SLURMD_NODENAME set, so a site's wrapper supplies the rest; the node ends drained with
    // p2ptop's reason. This wrapper runs the check once (slurmd calls it every second), so no
    // check is left running when the daemons stop.
    let wrapper = scratch.path("health-check.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n\
             mkdir {once} 2>/dev/null || exit 0\n\
             export SLURM_CONF={conf} P2PTOP={P2PTOP} P2PTOP_OPTIONS=\"--sim {faulty}\"\n\
             exec {script}\n",
            once = scratch.path("health-checked").display(),
            conf = cluster.conf.display(),
            faulty = faulty.display(),
            script = script.display(),
        ),
    )
    .unwrap();
    set_mode(&wrapper, 0o755);
    let mut conf = std::fs::read_to_string(&cluster.conf).unwrap();
    conf += &format!(
        "HealthCheckProgram={}\nHealthCheckInterval=1\nHealthCheckNodeState=IDLE\n",
        wrapper.display()
    );
    std::fs::write(&cluster.conf, conf).unwrap();
    let reconfigure = cluster.client("scontrol", &["reconfigure"], &[]);
    assert!(reconfigure.status.success(), "{}", shown(&reconfigure));
    cluster.wait_for_state("drained");
    let reason = cluster.reason();
    println!("{NODE} drained, Reason={reason}");
    assert!(
        reason.starts_with("p2ptop: FAIL: ") && reason.contains("GPU3"),
        "{reason}"
    );
}

/// The job id in sbatch's "Submitted batch job N".
fn job_id(sbatch: &Output) -> String {
    String::from_utf8_lossy(&sbatch.stdout)
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// `topo --format json -o PATTERN` with `env`: the exit code, the files made in a new
/// directory named by `tag`, and what it said.
fn topo_into(tag: &str, pattern: &str, env: &[(&str, &str)]) -> (Option<i32>, Vec<String>, String) {
    let scratch = Scratch::new(tag);
    let mut command = Command::new(P2PTOP);
    command
        .args(["--sim", "h100-single", "topo", "--format", "json", "-o"])
        .arg(scratch.path(pattern))
        .env_remove("SLURMD_NODENAME");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&scratch.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    (
        out.status.code(),
        files,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn percent_n_in_an_output_path_is_slurms_node_name_else_the_short_host_name() {
    let (code, files, _) = topo_into("pct-slurm", "%N.json", &[("SLURMD_NODENAME", "gpu042")]);
    assert_eq!((code, files), (Some(0), vec!["gpu042.json".to_owned()]));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let short = host.trim().split('.').next().unwrap().to_owned();
    let (code, files, _) = topo_into("pct-host", "%N-100%%.json", &[]);
    assert_eq!((code, files), (Some(0), vec![format!("{short}-100%.json")]));
}

#[test]
fn a_pattern_p2ptop_does_not_expand_is_refused_before_anything_runs() {
    let (code, files, said) = topo_into("pct-j", "%j.json", &[("SLURMD_NODENAME", "gpu042")]);
    assert_eq!(code, Some(2));
    assert!(files.is_empty(), "{files:?}");
    assert!(said.contains("%j is not expanded"), "{said}");
}
