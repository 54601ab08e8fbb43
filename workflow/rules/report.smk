# Tables, figures and the top-level metrics file, regenerated from the runs' metrics.


rule tables:
    input:
        metrics=run_files("metrics.json"),
        scores=run_files("scores.csv"),  # the intervals and p-values of Tables 2-4
        splits=expand(f"{RESULTS}/splits/{{dataset}}.json", dataset=DATASETS),
    output:
        tables=[
            report(path, caption=f"../report/{Path(path).stem}.rst", category="Tables")
            if path.endswith(".csv")
            else path
            for path in TABLES
        ],
        metrics=f"{RESULTS}/metrics.json",
    log:
        f"{RESULTS}/logs/tables.log",
    params:
        results=lambda w, output: Path(output.metrics).parent,
        out=lambda w, output: Path(output.metrics).parent / "tables",
        code=CODE["tables"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/sagan.yaml"
    shell:
        "sagan tables --results {params.results} --out {params.out} > {log} 2>&1"


rule figures:
    input:
        metrics=run_files("metrics.json"),
        scores=run_files("scores.csv"),
        maps=run_files("maps.npz"),
        train_logs=run_files("train_log.csv"),
    output:
        heatmaps=[
            report(f, caption="../report/heatmaps.rst", category="Figures", subcategory="Heatmaps")
            for f in FIGURES["heatmaps"]
            if f.endswith(".png")
        ],
        roc_pr=[
            report(f, caption="../report/roc_pr.rst", category="Figures", subcategory="ROC and PR curves")
            for f in FIGURES["roc_pr"]
            if f.endswith(".png")
        ],
        training=[
            report(f, caption="../report/training.rst", category="Figures", subcategory="Training curves")
            for f in FIGURES["training"]
        ],
        anomaly_ratio=[
            report(f, caption="../report/anomaly_ratio.rst", category="Figures", subcategory="Anomaly ratio")
            for f in FIGURES["anomaly_ratio"]
            if f.endswith(".png")
        ],
        pdf=[f for group in FIGURES.values() for f in group if f.endswith(".pdf")],
    log:
        f"{RESULTS}/logs/figures.log",
    params:
        results=lambda w, output: Path(output.pdf[0]).parent.parent,
        out=lambda w, output: Path(output.pdf[0]).parent,
        code=CODE["figures"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../envs/sagan.yaml"
    shell:
        "sagan figures --results {params.results} --out {params.out} > {log} 2>&1"
