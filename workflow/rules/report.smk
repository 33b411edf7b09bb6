rule report:
    """Tables and figures from every run's summary and evaluations (sorlab.report)."""
    input:
        summaries=summary_files(),
        evaluations=eval_files(),
    output:
        tables=[
            report(path, caption=caption(Path(path).stem), category="Tables")
            if path.endswith(".csv") and Path(path).stem in TABLES
            else path
            for path in report_tables()
        ],
        figures=[
            report(path, caption=caption(Path(path).stem), category="Figures")
            if path.endswith(".png")
            else path
            for path in report_figures()
        ],
    params:
        final_evals=config["report"]["final_evals"],
    log:
        f"{LOGS}/report/report.log",
    benchmark:
        f"{BENCHMARKS}/report/report.tsv"
    conda:
        "../../environment.yml"
    shell:
        "sorlab report --results results --figures paper_figures "
        "--final-evals {params.final_evals} > {log} 2>&1"
