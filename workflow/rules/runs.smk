# Training and evaluation: one job each per (dataset, method, anomaly ratio, variant, seed).


# checkpoints/ is deliberately not an output: Snakemake deletes outputs before it reruns an
# interrupted job, and `sagan train` resumes from checkpoints/last.pt when the run's identity
# (config, code, data; not the thread count) is unchanged, and otherwise trains from scratch.
rule train:
    input:
        data="data/prepared/{dataset}",
        splits=f"{RESULTS}/splits/{{dataset}}.json",
    output:
        config=f"{RUN}/config.yaml",
        train_log=f"{RUN}/train_log.csv",
    log:
        f"{RESULTS}/logs/train/{RUN_LOG}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{RUN_LOG}.tsv"
    params:
        run=run_dir,
        preset=config["preset"],
        sets=train_sets,
        code=lambda w: code("train", w.method),
    threads: JOBS["train"]["threads"]
    resources:
        **job_resources("train"),
    conda:
        "../envs/sagan.yaml"
    shell:
        "sagan train --data {input.data} --method {wildcards.method} --seed {wildcards.seed}"
        " --out {params.run} --preset {params.preset} {params.sets} --set train.threads={threads}"
        " > {log} 2>&1"


rule evaluate:
    input:
        train_log=f"{RUN}/train_log.csv",  # written with the final checkpoints/last.pt
        config=f"{RUN}/config.yaml",
    output:
        metrics=f"{RUN}/metrics.json",
        scores=f"{RUN}/scores.csv",
        maps=f"{RUN}/maps.npz",
    log:
        f"{RESULTS}/logs/evaluate/{RUN_LOG}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{RUN_LOG}.tsv"
    params:
        run=run_dir,
        maps=config["maps"],
        code=lambda w: code("evaluate", w.method),
    threads: JOBS["evaluate"]["threads"]
    resources:
        **job_resources("evaluate"),
    conda:
        "../envs/sagan.yaml"
    shell:
        "sagan evaluate {params.run} --maps {params.maps} > {log} 2>&1"
