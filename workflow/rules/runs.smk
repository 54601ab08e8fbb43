# One job per run (dataset, method, anomaly ratio, variant, seed): `sagan run` trains and then
# evaluates in the same process, so a run costs one Python + torch start, not two.


# checkpoints/ is deliberately not an output: Snakemake deletes outputs before it reruns an
# interrupted or failed job, and `sagan run` resumes from checkpoints/last.pt when the run's identity
# (config, code, data; not the thread count) is unchanged, and otherwise trains from scratch; a run
# whose training had finished is only evaluated again.
rule run:
    input:
        data="data/prepared/{dataset}",
        splits=f"{RESULTS}/splits/{{dataset}}.json",
    output:
        config=f"{RUN}/config.yaml",
        train_log=f"{RUN}/train_log.csv",
        **({"val_log": f"{RUN}/val_log.csv"} if VALIDATION else {}),
        metrics=f"{RUN}/metrics.json",
        scores=f"{RUN}/scores.csv",
        maps=f"{RUN}/maps.npz",
    log:
        f"{RESULTS}/logs/run/{RUN_LOG}.log",
    benchmark:
        f"{RESULTS}/benchmarks/run/{RUN_LOG}.tsv"
    params:
        run=run_dir,
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
        "sagan run --data {input.data} --method {wildcards.method} --seed {wildcards.seed}"
        " --out {params.run} --preset {params.preset} {params.sets} --set train.threads={threads}"
        " --maps {params.maps} > {log} 2>&1"
