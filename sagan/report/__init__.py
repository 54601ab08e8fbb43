"""Tables and figures, regenerated from the stored run outputs (never typed in).

`runs.load_runs(results)` reads every run's metrics.json under results/<name>/runs/; `tables`
renders Tables 1-4, the localization table and the top-level metrics file; `figures` draws
heatmaps, ROC/PR curves, the anomaly-ratio curve, training curves and the localization grids.
"""
