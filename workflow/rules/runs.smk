# Training and evaluation: one job each per (dataset, method, anomaly ratio, variant, seed).


rule train:
    input:
        data="data/prepared/{dataset}",
        splits=f"{RESULTS}/splits/{{dataset}}.json",
    output:
        # checkpoints/ is deliberately not an output: Snakemake deletes outputs before it reruns an
        # interrupted job, and `sagan train` resumes from checkpoints/last.pt when config, code and
        # data are unchanged (otherwise it trains from scratch).
        config=f"{RUN}/config.yaml",
        train_log=f"{RUN}/train_log.csv",
    log:
        f"{RESULTS}/logs/train/{RUN_LOG}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{RUN_LOG}.tsv"
    params:
        run=lambda w, output: Path(output.config).parent,
        preset=config["preset"],
        sets=train_sets,
        code=lambda w: CODE["train"][w.method],
    threads: config["resources"]["train"]["threads"]
    resources:
        gpu=config["resources"]["train"]["gpu"],
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=config["resources"]["train"]["runtime"],
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
        run=lambda w, input: Path(input.config).parent,
        maps=config["maps"],
        code=lambda w: CODE["evaluate"][w.method],
    threads: config["resources"]["evaluate"]["threads"]
    resources:
        gpu=config["resources"]["evaluate"]["gpu"],
        mem_mb=config["resources"]["evaluate"]["mem_mb"],
        runtime=config["resources"]["evaluate"]["runtime"],
    conda:
        "../envs/sagan.yaml"
    shell:
        "sagan evaluate {params.run} --maps {params.maps} > {log} 2>&1"
