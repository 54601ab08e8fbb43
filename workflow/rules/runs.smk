# One job per run (dataset, method, anomaly ratio, variant, seed), or, with `seeds_in_one_job: true`
# (the synthetic configurations), one job per table row that runs its seeds one after the other:
# `sagan run` trains and then evaluates in the same process, so a run costs one Python + torch start
# (a row job: one for all its seeds), not two.


# checkpoints/ is deliberately not an output: Snakemake deletes outputs before it reruns an
# interrupted or failed job, and `sagan run` resumes from checkpoints/last.pt when the run's identity
# (config, code, data; not the thread count) is unchanged, and otherwise trains from scratch; a run
# whose training had finished is only evaluated again.
RUN_OUTPUTS = {
    "config": "config.yaml",
    "train_log": "train_log.csv",
    **({"val_log": "val_log.csv"} if VALIDATION else {}),
    "metrics": "metrics.json",
    "scores": "scores.csv",
    "maps": "maps.npz",
}
# a job's run folders ({seed} is a wildcard of a run job, every seed of a row job) and its log name
JOB_RUNS = {f"seed{s}": f"{ROW}/seed{s}" for s in SEEDS} if SEEDS_IN_ONE_JOB else {"seed": RUN}
JOB_LOG = ROW_LOG if SEEDS_IN_ONE_JOB else RUN_LOG


rule run:
    input:
        data="data/prepared/{dataset}",
        # the splits job runs first, but a run does not read its file (`sagan run` draws its own
        # split from the data and its ratio): ancient, so that adding an anomaly ratio (Table 4), which
        # rewrites the dataset's split file, does not rerun the runs that were already there
        splits=ancient(f"{RESULTS}/splits/{{dataset}}.json"),
    output:
        **{f"{key}_{tag}": f"{run}/{name}" for tag, run in JOB_RUNS.items() for key, name in RUN_OUTPUTS.items()},
    log:
        f"{RESULTS}/logs/run/{JOB_LOG}.log",
    benchmark:
        f"{RESULTS}/benchmarks/run/{JOB_LOG}.tsv"
    params:
        run=run_dir,
        seeds=lambda w: " ".join(map(str, SEEDS)) if SEEDS_IN_ONE_JOB else w.seed,
        preset=config["preset"],
        sets=train_sets,
        maps=config["maps"],
        code=lambda w: code("run", w.method),
    threads: JOBS["run"]["threads"]
    resources:
        **job_resources("run"),
    conda:
        "../envs/sagan.yaml"
    shell:
        "sagan run --data {input.data} --method {wildcards.method} --seed {params.seeds}"
        " --out {params.run:q} --preset {params.preset} {params.sets} --set train.threads={threads}"
        " --maps {params.maps} > {log} 2>&1"
