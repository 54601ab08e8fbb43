# Data: synthetic sets (demo) or download -> prepare (real sets), then the split summary (Table 1).


rule synth:
    output:
        directory("data/prepared/{dataset}"),
    log:
        "data/logs/synth/{dataset}.log",
    params:
        seed=lambda w: synth_option(w, "seed", 0),
        size=lambda w: synth_option(w, "size", "small"),
        image_size=config["image_size"],
        code=code("synth"),
    wildcard_constraints:
        dataset=r"synth-[a-z]+",
    conda:
        "../envs/sagan.yaml"
    shell:
        "sagan synth {wildcards.dataset} --out {output} --seed {params.seed} --size {params.size}"
        " --image-size {params.image_size} > {log} 2>&1"


# Output = the download record, not the folder: a rerun keeps (and resumes) partial downloads.
rule download:
    output:
        "data/raw/{dataset}/{dataset}.source.json",
    log:
        "data/logs/download/{dataset}.log",
    params:
        out="data/raw/{dataset}",
        source=source_args,
    wildcard_constraints:
        dataset=r"rsna|vindr|lag",
    conda:
        "../envs/sagan.yaml"
    shell:
        "sagan download {wildcards.dataset} --out {params.out} {params.source} > {log} 2>&1"


rule prepare:
    input:
        raw="data/raw/{dataset}/{dataset}.source.json",
    output:
        directory("data/prepared/{dataset}"),
    log:
        "data/logs/prepare/{dataset}.log",
    params:
        image_size=config["image_size"],
        code=code("prepare"),
    wildcard_constraints:
        dataset=r"rsna|vindr|lag",
    threads: JOBS["prepare"]["threads"]
    resources:
        **job_resources("prepare"),
    conda:
        "../envs/sagan.yaml"
    shell:
        "sagan prepare {wildcards.dataset} --source {input.raw} --out {output}"
        " --image-size {params.image_size} --workers {threads} > {log} 2>&1"


rule splits:
    input:
        data="data/prepared/{dataset}",
    output:
        f"{RESULTS}/splits/{{dataset}}.json",
    log:
        f"{RESULTS}/logs/splits/{{dataset}}.log",
    params:
        ratios=lambda w: ",".join(f"{r:g}" for r in ratios_of(w.dataset)),
        code=code("splits"),
    conda:
        "../envs/sagan.yaml"
    shell:
        "sagan splits {input.data} --out {output} --ratios {params.ratios} > {log} 2>&1"
