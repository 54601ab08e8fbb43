"""A real single-node SLURM (Debian slurm-wlm + munge, one fake GPU) running part of the demo
through snakemake-executor-plugin-slurm and the repository's SLURM profile: synth -> splits ->
run (training and evaluation in one job; asks gpu=1, gets the fake GPU).

Skipped, with the reason, where slurm-wlm is not installed or the test cannot act as root (it starts
munged, slurmctld and slurmd and writes /etc/slurm/slurm.conf, where the plugin's jobs look for it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = Path("/etc/slurm")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("slurmctld") is None or shutil.which("slurmd") is None or shutil.which("munged") is None,
        reason="SLURM not installed (slurmctld/slurmd/munged not on PATH): apt-get install -y slurm-wlm munge",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="starting munged/slurmctld/slurmd needs root"),
]


def memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4000


def slurm_conf(state: Path) -> str:
    # node size = what slurmd detects (a larger declared size would drain the node)
    cpus, mem = os.cpu_count() or 1, int(memory_mb() * 0.9)
    return f"""\
ClusterName=sagan-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/d
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=600
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """munged + slurmctld + slurmd on this machine; stopped (by pid) and config restored afterwards."""
    state = tmp_path_factory.mktemp("slurm")
    for sub in ("ctld", "d"):
        (state / sub).mkdir()
    CONF_DIR.mkdir(parents=True, exist_ok=True)
    backups = {}
    for name in ("slurm.conf", "gres.conf"):
        if (CONF_DIR / name).exists():
            backups[name] = (CONF_DIR / name).read_bytes()
    (CONF_DIR / "slurm.conf").write_text(slurm_conf(state))
    (CONF_DIR / "gres.conf").write_text("NodeName=localhost Name=gpu File=/dev/null\n")  # a fake GPU

    procs: list[subprocess.Popen] = []
    log = open(state / "daemons.log", "w")
    try:
        Path("/run/munge").mkdir(exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
            procs.append(
                subprocess.Popen(["runuser", "-u", "munge", "--", "munged", "-F"], stdout=log, stderr=log)
            )
            time.sleep(1)
        procs.append(subprocess.Popen(["slurmctld", "-D", "-i"], stdout=log, stderr=log))
        time.sleep(1)
        procs.append(subprocess.Popen(["slurmd", "-D", "-N", "localhost"], stdout=log, stderr=log))
        deadline = time.time() + 60
        while time.time() < deadline:
            states = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True
            ).stdout.split()
            if states and all(s == "idle" for s in states):
                break
            time.sleep(1)
        else:
            logs = "\n".join(p.read_text()[-2000:] for p in state.glob("*.log"))
            pytest.fail(f"the SLURM node did not become idle within 60 s; sinfo: {states}\n{logs}")
        yield state
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        for name in ("slurm.conf", "gres.conf"):
            if name in backups:
                (CONF_DIR / name).write_bytes(backups[name])
            else:
                (CONF_DIR / name).unlink(missing_ok=True)


def test_demo_part_through_the_slurm_executor(cluster, tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    config = {
        "name": "slurm",
        "preset": "demo",
        "datasets": {"synth-rsna": {"seed": 0}},
        "methods": ["sagan"],
        "seeds": [0],
        "table3": None,
        "table4": None,
        "overrides": {"all": {"train.iterations": 10, "train.log_every": 5, "train.checkpoint_every": 10}},
        "resources": {"run": {"threads": 1, "gpu": 1, "mem_mb": 2000, "runtime": 10}},
    }  # fmt: skip
    (work / "slurm.yaml").write_text(yaml.safe_dump(config))
    run = "results/slurm/runs/synth-rsna/sagan/ar0.6/default/seed0"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    t0 = time.perf_counter()
    done = subprocess.run(
        [
            "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), f"{run}/metrics.json",
            "--profile", str(REPO / "workflow/profiles/slurm"), "--configfile", str(work / "slurm.yaml"),
            # a cluster without accounting: ask squeue; first status check after 1 s (MinJobAge = 600)
            "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
            "--slurm-no-account", "--slurm-keep-successful-logs", "--latency-wait", "5", "--retries", "0",
            "--verbose",
        ],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-5000:]
    print(f"SLURM run (synth + splits + run): {seconds:.1f} s")

    metrics = json.loads((work / run / "metrics.json").read_text())
    assert metrics["method"] == "sagan" and 0.0 <= metrics["auc"] <= 1.0
    # every job went through sbatch; the training job asked for the (fake) GPU
    sbatch = [line for line in out.splitlines() if "sbatch call" in line]
    assert len(sbatch) == 3 and sum("--gpus=1" in line for line in sbatch) == 1, "\n".join(sbatch)
    assert "rule_run" in next(line for line in sbatch if "--gpus=1" in line)
    # each job's SLURM log is kept; the training job's shows the fake GPU SLURM handed it
    logs = {
        p.relative_to(work / ".snakemake/slurm_logs").parts[0]: p
        for p in (work / ".snakemake/slurm_logs").glob("rule_*/**/*.log")
    }
    assert set(logs) == {"rule_synth", "rule_splits", "rule_run"}
