# Intermediate targets, called by dvc.yaml stages: `data` (prepared data and split summaries) and
# `runs` (every trained and evaluated run). The default target `all` is in the Snakefile.


rule data:
    input:
        expand(f"{RESULTS}/splits/{{dataset}}.json", dataset=DATASETS),


rule runs:
    input:
        run_files("metrics.json"),
