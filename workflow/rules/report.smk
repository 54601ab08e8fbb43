# Tables, figures and the top-level metrics file, regenerated from the runs' metrics.


rule tables:
    input:
        metrics=run_files("metrics.json"),
        scores=run_files("scores.csv"),  # the intervals and p-values of Tables 2-4
        splits=expand(f"{RESULTS}/splits/{{dataset}}.json", dataset=DATASETS),
    output:
        tables=table_outputs(),
        metrics=f"{RESULTS}/metrics.json",
    log:
        f"{RESULTS}/logs/tables.log",
    params:
        code=code("tables"),
    conda:
        "../envs/sagan.yaml"
    shell:
        f"sagan tables --results {RESULTS} --out {RESULTS}/tables > {{log}} 2>&1"


rule figures:
    input:
        metrics=run_files("metrics.json"),
        scores=run_files("scores.csv"),
        maps=run_files("maps.npz"),
        train_logs=run_files("train_log.csv"),
        val_logs=run_files("val_log.csv") if VALIDATION else [],
    output:
        figure_outputs(),
    log:
        f"{RESULTS}/logs/figures.log",
    params:
        code=code("figures"),
    conda:
        "../envs/sagan.yaml"
    shell:
        f"sagan figures --results {RESULTS} --out {RESULTS}/figures > {{log}} 2>&1"
