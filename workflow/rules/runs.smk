# One job per run (dataset, method, anomaly ratio, variant, seed), or, with `seeds_in_one_job: true`,
# one job per table row that runs its seeds one after the other, and with `datasets_in_one_job: true`
# as well (the synthetic configurations), one job per method for its Table 2 rows, every dataset's:
# `sagan run` trains and then evaluates in the same process, so a run costs one Python + torch start
# (a row job: one for all its seeds; a method job: one for all its datasets and seeds), not two.


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
# the command of a run, row or method job (`--data` and `--seed` take one value or several)
RUN_COMMAND = (
    "sagan run --data {input.data} --method {wildcards.method} --seed {params.seeds}"
    " --out {params.run:q} --preset {params.preset} {params.sets} --set train.threads={threads}"
    " --maps {params.maps} > {log} 2>&1"
)


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
    priority: job_budget
    threads: JOBS["run"]["threads"]
    resources:
        **job_resources("run"),
    conda:
        "../envs/sagan.yaml"
    shell:
        RUN_COMMAND


if DATASETS_IN_ONE_JOB:
    # a Table 2 row's files can come from either rule: the method job makes them
    ruleorder: run_method > run

    rule run_method:
        wildcard_constraints:
            method="|".join(re.escape(m) for m in METHODS),  # Table 2's methods; Table 3's Brainomaly row is a row job
        input:
            data=expand("data/prepared/{dataset}", dataset=DATASETS),
            splits=ancient(expand(f"{RESULTS}/splits/{{dataset}}.json", dataset=DATASETS)),
        output:
            [
                f"{ROW.format(dataset=d, method='{method}', ar=ar_tag(MAIN_AR), variant='default')}/seed{s}/{name}"
                for d in DATASETS
                for s in SEEDS
                for name in RUN_OUTPUTS.values()
            ],
        log:
            f"{RESULTS}/logs/run/{{method}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/run/{{method}}.tsv"
        params:
            run=method_job_dirs,
            seeds=" ".join(map(str, SEEDS)),
            preset=config["preset"],
            sets=method_job_sets,
            maps=config["maps"],
            code=lambda w: code("run", w.method),
        priority: job_budget
        threads: JOBS["run"]["threads"]
        resources:
            **job_resources("run"),
        conda:
            "../envs/sagan.yaml"
        shell:
            RUN_COMMAND
